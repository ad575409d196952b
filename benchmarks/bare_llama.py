"""The baseline: a bare llama-cpp-python streaming loop, with nothing of reflectchat in it.

Usage: python bare_llama.py MODEL PROMPT_TOKENS_JSON N_TOKENS THREADS N_CTX SEED TEMP TOP_P
Prints one JSON line: decode tokens/s (first token to last, as reflectchat reports it).
"""

import json
import sys
import time

from llama_cpp import Llama

model, tokens_file, n_tokens, threads, n_ctx, seed, temp, top_p = sys.argv[1:9]
with open(tokens_file) as f:
    tokens = json.load(f)
llm = Llama(
    model,
    n_ctx=int(n_ctx),
    n_threads=int(threads),
    n_threads_batch=int(threads),
    n_gpu_layers=0,
    seed=int(seed),
    verbose=False,
)
llm.set_seed(int(seed))
out = []
n = 0
first = 0.0
for token in llm.generate(
    tokens, temp=float(temp), top_p=float(top_p), top_k=40, min_p=0.05, repeat_penalty=1.0
):
    if n == 0:
        first = time.perf_counter()
    n += 1
    out.append(llm.detokenize([token], special=True))  # a streaming loop must decode to print
    if n >= int(n_tokens):
        break
end = time.perf_counter()
print(json.dumps({"tokens": n, "tokens_per_second": (n / (end - first)) if n > 1 else 0.0}))
