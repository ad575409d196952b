"""The measuring half of `benchmarks/gpu_check.sh`: on a model file (a 70B-shaped synthetic
GGUF there), in one go, each in its own process as a user would run it:

- bare llama-cpp-python decode with the requested layers offloaded (the baseline),
- `reflectchat bench --json` (prompt processing and generation, llama-bench style),
- `reflectchat ask --json` decode, the path a person uses,
- `reflectchat doctor --json`'s view of the GPU,
- `reflectchat models info --json`'s fit check and offload decision.

Prints one JSON line (also written to OUT/gpu_check.json) and a README-ready Markdown table.
A zero-weight model's tokens are meaningless; their speed is not (it depends on tensor shapes
and quantization types only).

Usage: python gpu_check.py MODEL OUT_DIR [--gpu-layers all|N] [--tokens N] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROMPT = "Explain in one paragraph why the sky is blue."

BARE = r"""
import json, sys, time
from llama_cpp import Llama
model, ngl, n, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
t0 = time.perf_counter()
llm = Llama(model, n_gpu_layers=ngl, n_ctx=2048, n_threads=threads, n_threads_batch=threads,
            verbose=False)
load_s = time.perf_counter() - t0
tokens = llm.tokenize(sys.argv[5].encode())
llm.eval(tokens)
# Decode exactly n tokens (a zero-weight model may pick an end-of-generation token: ignore it).
t1 = time.perf_counter()
for _ in range(n):
    token = llm.sample(temp=0.0)
    llm.eval([token])
decode_s = time.perf_counter() - t1
print(json.dumps({"load_s": load_s, "decode_tps": n / decode_s, "prompt_tokens": len(tokens)}))
"""


def run(cmd: list[str], timeout: float = 600) -> tuple[int, str, str, float]:
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {timeout:.0f} s", time.perf_counter() - start
    return done.returncode, done.stdout, done.stderr, time.perf_counter() - start


def last_json(text: str) -> Any:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def failure(step: str, rc: int, err: str) -> dict[str, Any]:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    return {"step": step, "exit": rc, "error": lines[-1] if lines else ""}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--gpu-layers", default="all")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 16))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ngl = -1 if args.gpu_layers == "all" else int(args.gpu_layers)
    rc_cli = [sys.executable, "-m", "reflectchat"]
    common = ["--gpu-layers", args.gpu_layers, "--threads", str(args.threads)]
    result: dict[str, Any] = {
        "model": args.model.name,
        "model_bytes": args.model.stat().st_size,
        "gpu_layers": args.gpu_layers,
        "tokens": args.tokens,
        "threads": args.threads,
        "python": platform.python_version(),
        "failures": [],
    }
    try:
        import llama_cpp

        result["llama_cpp_python"] = llama_cpp.__version__
        result["gpu_offload_supported"] = bool(llama_cpp.llama_supports_gpu_offload())
    except Exception as exc:  # the build itself failed: say so and stop
        result["failures"].append({"step": "import llama_cpp", "exit": 1, "error": str(exc)})
        return report(result, args.out)

    steps: list[tuple[str, list[str]]] = [
        ("doctor", [*rc_cli, "doctor", "--json"]),
        ("models info", [*rc_cli, "models", "info", str(args.model), "--json"]),
        (
            "bare",
            [sys.executable, "-c", BARE, str(args.model), str(ngl), str(args.tokens),
             str(args.threads), PROMPT],
        ),
        (
            "bench",
            [*rc_cli, "bench", "-m", str(args.model), *common, "-p", "512",
             "-n", str(args.tokens), "-r", "3", "--json"],
        ),
        (
            "ask",
            [*rc_cli, "ask", "-m", str(args.model), *common, "--no-save", "--json",
             "--temperature", "0", "--max-tokens", str(args.tokens), "--no-strict-format",
             PROMPT],
        ),
    ]  # fmt: skip
    for name, cmd in steps:
        rc, out, err, wall = run(cmd)
        (args.out / f"{name.replace(' ', '_')}.log").write_text(f"$ {cmd}\n{out}\n{err}")
        data = last_json(out)
        if rc != 0 or data is None:
            result["failures"].append(failure(name, rc, err))
            continue
        result[f"{name.replace(' ', '_')}_wall_s"] = round(wall, 2)
        absorb(result, name, data)
    if result.get("bare_decode_tps") and result.get("ask_decode_tps"):
        result["ask_vs_bare"] = round(result["ask_decode_tps"] / result["bare_decode_tps"], 3)
    return report(result, args.out)


def absorb(result: dict[str, Any], name: str, data: dict[str, Any]) -> None:
    """Keep the figures that matter from each step's JSON."""
    if name == "doctor":
        build = data.get("llama_cpp") or {}
        result["doctor"] = {
            "gpus": data.get("gpus"),
            "backends": build.get("backends"),
            "gpu_offload": build.get("gpu_offload"),
            "cpu": data.get("cpu"),
        }
    elif name == "models info":
        result["fit"] = data.get("fit")
        result["memory"] = data.get("memory")
    elif name == "bare":
        result["bare_decode_tps"] = round(data["decode_tps"], 2)
        result["bare_load_s"] = round(data["load_s"], 2)
    elif name == "bench":
        result["bench_backend"] = data.get("backend")
        result["bench_gpu_layers"] = data.get("gpu_layers")
        for r in data.get("results", []):
            result[f"bench_{r['test']}_tps"] = r["tokens_per_second"]
    elif name == "ask":
        stats = data.get("stats", {})
        result["ask_decode_tps"] = round(stats.get("tokens_per_second", 0.0), 2)
        result["ask_ttft_s"] = stats.get("ttft_s")
        result["ask_completion_tokens"] = stats.get("completion_tokens")


def report(result: dict[str, Any], out: Path) -> int:
    line = json.dumps(result, sort_keys=True)
    (out / "gpu_check.json").write_text(line + "\n")
    print(line)
    print()
    print("| measure | value |")
    print("|---|---|")
    rows = [
        ("model", result.get("model")),
        ("layers offloaded", result.get("gpu_layers")),
        ("llama-cpp-python", result.get("llama_cpp_python")),
        ("GPU offload in this build", result.get("gpu_offload_supported")),
        ("GPUs (`doctor`)", json.dumps((result.get("doctor") or {}).get("gpus"))),
        ("bare llama-cpp-python decode (tok/s)", result.get("bare_decode_tps")),
        ("`reflectchat ask --json` decode (tok/s)", result.get("ask_decode_tps")),
        ("ask ÷ bare", result.get("ask_vs_bare")),
    ]
    rows += [
        (f"`reflectchat bench` {key[6:-4]} (tok/s)", value)
        for key, value in sorted(result.items())
        if key.startswith("bench_") and key.endswith("_tps")
    ]
    rows.append(("fit check", json.dumps(result.get("fit")) if result.get("fit") else None))
    for label, value in rows:
        print(f"| {label} | {'—' if value is None else value} |")
    for fail in result["failures"]:
        print(f"\nfailed: {fail['step']} (exit {fail['exit']}): {fail['error']}")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
