"""Issue #13's benchmark: `reflectchat ask` rendering on a terminal, in linear time.

The real `reflectchat ask` CLI runs on a real pseudo-terminal (python's pty module, 100x40);
the benchmark reads and discards what it writes. The reply comes from the scripted backend
(REFLECTCHAT_SCRIPTED_REPLY, see reflectchat/cli/scripted_hook.py), which emits tokens as fast
as they are taken, so the figure is the rendering's own cost.

1. A code answer: one fenced Python block, 400 and 1,600 tokens (~4 tokens a line).
   Target: the 1,600-token run >= 2,000 tokens/s, and its time <= 5x the 400-token run
   (4x is linear; the old quadratic re-render was ~13x).
2. One long paragraph (~17 KB, 4,000 tokens): the block still being written at every token.

Each run is timed two ways: `stream`, from the footer (the scripted backend's decode time: first
token to last, rendering included), and `wall`, the whole process (Python start-up and imports
too). Medians over --runs runs. Usage: python benchmarks/bench_ask_render.py [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pty
import re
import select
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOOTER = re.compile(rb"(\d+) tokens \xc2\xb7 ([\d.]+) tok/s \xc2\xb7 ([\d.]+) s")


def code_answer(n_tokens: int) -> list[str]:
    tokens = ["```python\n"]
    i = 0
    while len(tokens) < n_tokens - 1:
        tokens += [f"result_{i}", " = ", f"compute({i}, ", "'text')\n"]
        i += 1
    return [*tokens[: n_tokens - 1], "```\n"]


def paragraph(n_tokens: int) -> list[str]:
    return [f"word{i} " for i in range(n_tokens)]


def run_once(tokens: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        reply = Path(home) / "reply.json"
        reply.write_text(json.dumps(tokens))
        env = dict(os.environ, REFLECTCHAT_HOME=home, REFLECTCHAT_SCRIPTED_REPLY=str(reply))
        env.update(TERM="xterm-256color", COLUMNS="100", LINES="40")
        env.setdefault("PYTHONPATH", str(REPO))
        args = [sys.executable, "-m", "reflectchat", "ask", "go", "--no-save"]
        args += ["--max-tokens", str(len(tokens) + 10)]
        start = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:
            os.execvpe(args[0], args, env)
        out = bytearray()
        while True:
            ready, _, _ = select.select([fd], [], [], 60)
            if not ready:
                os.kill(pid, 9)
                raise SystemExit("reflectchat ask wrote nothing for 60 s")
            try:
                data = os.read(fd, 1 << 16)
            except OSError:
                break
            if not data:
                break
            out += data
        _, status = os.waitpid(pid, 0)
        wall = time.perf_counter() - start
        os.close(fd)
    match = FOOTER.search(bytes(out))
    if os.waitstatus_to_exitcode(status) != 0 or match is None:
        raise SystemExit(f"reflectchat ask failed:\n{out[-2000:].decode(errors='replace')}")
    if int(match[1]) != len(tokens):
        raise SystemExit(f"{match[1].decode()} tokens rendered of {len(tokens)}")
    # The footer's tok/s has more digits than its seconds: the stream time from it.
    return {"stream_s": len(tokens) / float(match[2]), "wall_s": wall}


def measure(name: str, tokens: list[str], runs: int) -> dict[str, float | str]:
    results = [run_once(tokens) for _ in range(runs)]
    stream = statistics.median(r["stream_s"] for r in results)
    wall = statistics.median(r["wall_s"] for r in results)
    return {
        "case": name,
        "tokens": len(tokens),
        "stream_s": stream,
        "stream_tok_s": len(tokens) / stream if stream else float("inf"),
        "wall_s": wall,
        "wall_tok_s": len(tokens) / wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args()
    rows = [
        measure("code 400", code_answer(400), opts.runs),
        measure("code 1600", code_answer(1600), opts.runs),
        measure("paragraph 4000 (~17 KB)", paragraph(4000), opts.runs),
    ]
    small, big = rows[0], rows[1]
    ratios = {
        "code 1600 / 400 (stream)": float(big["stream_s"]) / float(small["stream_s"]),
        "code 1600 / 400 (wall)": float(big["wall_s"]) / float(small["wall_s"]),
    }
    verdict = {
        "code 1600 >= 2000 tok/s (stream)": float(big["stream_tok_s"]) >= 2000,
        "code 1600 <= 5x 400 (stream)": ratios["code 1600 / 400 (stream)"] <= 5,
    }
    if opts.json:
        print(json.dumps({"rows": rows, "ratios": ratios, "pass": verdict}, indent=2))
        return 0
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"{'case':26} {'tokens':>7} {'stream s':>9} {'tok/s':>9} {'wall s':>7} {'tok/s':>8}")
    for r in rows:
        print(
            f"{r['case']:26} {r['tokens']:>7} {r['stream_s']:>9.3f} {r['stream_tok_s']:>9.0f}"
            f" {r['wall_s']:>7.2f} {r['wall_tok_s']:>8.0f}"
        )
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}x")
    for k, ok in verdict.items():
        print(f"{k}: {'yes' if ok else 'NO'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
