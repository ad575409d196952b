"""`reflectchat bench`: prompt processing and generation speed, in the spirit of llama-bench.

pp: one batch of N prompt tokens evaluated from an empty cache; tg: N tokens decoded one at a
time, without sampling (what llama-bench's tg measures). Each test is repeated; mean and
standard deviation are reported.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass

from reflectchat.core.engine.llama import LlamaBackend


@dataclass(frozen=True)
class BenchResult:
    test: str  # "pp512", "tg128"
    tokens_per_second: float
    stdev: float
    samples: list[float]


def run_bench(
    backend: LlamaBackend, *, pp: int = 512, tg: int = 128, repetitions: int = 3, seed: int = 0
) -> list[BenchResult]:
    llm = backend.llm
    rng = random.Random(seed)
    vocab = llm.n_vocab()
    pp = min(pp, backend.n_ctx - 1)
    tg = min(tg, backend.n_ctx - 1)
    results = []
    if pp > 0:
        samples = []
        for _ in range(repetitions + 1):  # the first run warms caches and is dropped
            tokens = [rng.randrange(vocab) for _ in range(pp)]
            llm.reset()
            start = time.perf_counter()
            llm.eval(tokens)
            samples.append(pp / (time.perf_counter() - start))
        results.append(_result(f"pp{pp}", samples[1:]))
    if tg > 0:
        samples = []
        for _ in range(repetitions + 1):
            llm.reset()
            token = rng.randrange(vocab)
            start = time.perf_counter()
            for _ in range(tg):
                llm.eval([token])
            samples.append(tg / (time.perf_counter() - start))
        results.append(_result(f"tg{tg}", samples[1:]))
    llm.reset()
    return results


def _result(test: str, samples: list[float]) -> BenchResult:
    stdev = statistics.stdev(samples) if len(samples) > 1 else 0.0
    return BenchResult(test, statistics.mean(samples), stdev, samples)
