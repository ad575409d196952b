"""The baseline for start-up cost: load the model and generate one token, nothing else."""

import sys

from llama_cpp import Llama

model, threads, n_ctx, prompt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
llm = Llama(
    model, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, n_gpu_layers=0, verbose=False
)
tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
for token in llm.generate(tokens, temp=0.7, top_p=0.95):
    print(llm.detokenize([token], special=True).decode("utf-8", "replace"))
    break
