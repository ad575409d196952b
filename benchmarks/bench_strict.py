"""Issue #12's grammar benchmark: `--strict-format` decode speed against unconstrained decode.

Both sides are `reflectchat ask --json` on the demo model with the same prompt, seed, sampling,
threads and context, decoding the same 256 tokens (seeds whose unconstrained reply runs that
long, so the context grows alike); each round runs one of each, alternating which goes first,
so machine noise hits both alike. The figure is the median strict rate over the median
unconstrained rate (decode tokens/s, first token to last, as ask reports it). Target: >= 0.85.

Then each seed's strict reply runs to its end, checked to be the complete structure (the
grammar's promise), and its rate over the whole reply is reported too.
Usage: python benchmarks/bench_strict.py [--rounds N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

PROMPT = "Is 9.11 bigger than 9.9? Explain your reasoning."
N_TOKENS = 256
N_CTX = 2048


def complete(reply: dict) -> bool:
    """The grammar's promise: closed thinking, an answer, and the end of text after it."""
    return (
        reply["finish_reason"] == "stop"
        and not reply["thinking_incomplete"]
        and bool(reply["thinking"].strip())
        and bool(reply["answer"].strip())
    )


def ask(
    strict: bool, seed: int, threads: int, max_tokens: int = N_TOKENS, n_ctx: int = N_CTX
) -> dict:
    args = [
        sys.executable,
        "-m",
        "reflectchat",
        "ask",
        PROMPT,
        "--strict-format" if strict else "--no-strict-format",
        "--seed",
        str(seed),
        "--threads",
        str(threads),
        "--ctx",
        str(n_ctx),
        "--max-tokens",
        str(max_tokens),
        "--no-save",
        "--json",
    ]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", type=Path)
    opts = parser.parse_args()

    from reflectchat.core.engine.llama import default_threads

    threads = default_threads()
    seeds: list[int] = []
    for seed in range(1, 200):  # seeds whose unconstrained reply runs the full 256 tokens
        if len(seeds) == opts.rounds:
            break
        if ask(False, seed, threads)["stats"]["completion_tokens"] == N_TOKENS:
            seeds.append(seed)
    rates: dict[str, list[float]] = {"strict": [], "free": []}
    for i, seed in enumerate(seeds):
        order = (True, False) if i % 2 == 0 else (False, True)
        for strict in order:
            reply = ask(strict, seed, threads)
            rates["strict" if strict else "free"].append(reply["stats"]["tokens_per_second"])
    med = {side: statistics.median(v) for side, v in rates.items()}
    ratio = med["strict"] / med["free"]
    # Room for the grammar's longest structure (~2,700 characters: thought and answer bodies
    # of 400, three reflections), which ask's default --max-tokens 1024 can cut short.
    whole = [ask(True, seed, threads, max_tokens=3500, n_ctx=4096) for seed in seeds]
    broken = sum(not complete(reply) for reply in whole)
    whole_rate = statistics.median(r["stats"]["tokens_per_second"] for r in whole)
    whole_tokens = statistics.median(r["stats"]["completion_tokens"] for r in whole)
    import llama_cpp

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    machine = (
        f"{cpu}, {threads} threads, Python {platform.python_version()}, "
        f"llama-cpp-python {llama_cpp.__version__}"
    )
    print(f"machine: {machine}; {len(seeds)} rounds (seeds {seeds}), medians")
    print(f"| decode {N_TOKENS} tokens (tok/s) | strict format | unconstrained | ratio | target |")
    print("|---|---|---|---|---|")
    print(f"| demo model | {med['strict']:.1f} | {med['free']:.1f} | {ratio:.2f} | >= 0.85 |")
    print(
        f"whole strict replies: median {whole_tokens:.0f} tokens at {whole_rate:.1f} tok/s, "
        f"{len(whole) - broken}/{len(whole)} complete structures"
    )
    if opts.json:
        report = {
            "machine": machine,
            "seeds": seeds,
            "ratio": ratio,
            "medians": med,
            "rates": rates,
            "whole": [r["stats"] for r in whole],
            "broken": broken,
        }
        opts.json.write_text(json.dumps(report, indent=2))
    return 0 if ratio >= 0.85 and broken == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
