"""Issue #3's benchmark: KV-cache reuse across a 10-turn conversation on the demo model.

Targets: at turn 10, the prompt tokens actually evaluated (prompt - cached) are at most 1.5x the
tokens that turn 9's answer and turn 10's message add to the prompt; the time to first token at
turn 10 is within 2x of turn 2's. The conversation runs through `ChatSession`, the code `ask -c`
and the chat use. Several repetitions; medians. Usage: python benchmarks/bench_conversation.py

`--new-process`: each turn is its own `reflectchat ask [-c] --json` process, as a user at a
shell runs them, so the only cache that can help is the conversation's saved KV cache on disk;
run side by side with the same conversation and saving off (`kv_cache_mb = 0`), alternating.
Targets there: turn 10's evaluated tokens <= 1.5x what turn 9's answer and turn 10's message
add, and its time to first token <= 1.5x turn 2's. `--new-process --pty` runs the turns as a
person does: on a terminal, with the default flags (the demo model's strict format).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reflectchat.core.chat.session import ChatSession
from reflectchat.core.engine.base import GenerationParams
from reflectchat.core.engine.llama import LlamaBackend, LoadOptions, default_threads
from reflectchat.core.models.resolve import resolve_model

MESSAGES = [
    "Tell me about the history of tea in two sentences.",
    "How is green tea different from black tea?",
    "Which countries grow the most tea today?",
    "What does the word oolong mean?",
    "How hot should water be for green tea?",
    "Is matcha a kind of green tea? Explain briefly.",
    "What is a tea ceremony and where does it come from?",
    "Give me three tips for storing tea leaves.",
    "How much caffeine does a cup of black tea have?",
    "Summarise what we talked about in one paragraph.",
]


def one_conversation(backend: LlamaBackend, seed: int, strict: bool) -> list[dict]:
    # Strict format: replies are tagged, and only their answers go back — so the KV cache
    # (which holds the raw reply) diverges where the reply began, the harder case.
    params = GenerationParams(seed=seed, max_tokens=300 if strict else 96, strict_format=strict)
    session = ChatSession(backend, params, system_prompt="You are a concise assistant.")
    turns = []
    for text in MESSAGES:
        result = session.send(text).run()
        s = result.stats
        turns.append(
            {
                "prompt": s.prompt_tokens,
                "cached": s.cached_tokens,
                "evaluated": s.prompt_tokens - s.cached_tokens,
                "ttft_s": s.ttft_s,
                "completion": s.completion_tokens,
            }
        )
        assert session.last_plan is not None and session.last_plan.dropped_turns == 0
    return turns


def one_conversation_in_processes(seed: int, cache_mb: int, on_pty: bool = False) -> list[dict]:
    """Ten `reflectchat ask` processes in a fresh home folder: the first starts the
    conversation, the rest continue it with -c. `on_pty`: as a person runs them — on a
    terminal, with the default flags (the demo model's strict format, its rendering); the
    figures then come from the history the turns were saved in."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "REFLECTCHAT_HOME": home, "REFLECTCHAT_KV_CACHE_MB": str(cache_mb)}
        turns = []
        for i, text in enumerate(MESSAGES):
            cmd = [sys.executable, "-m", "reflectchat", "ask", *(["-c"] if i else []), text,
                   "--seed", str(seed), "--max-tokens", "96" if not on_pty else "300",
                   "--ctx", "4096"]  # fmt: skip
            if not on_pty:
                cmd += ["-m", "smollm2", "--no-strict-format", "--json"]
            start = time.perf_counter()
            if on_pty:
                code, err = run_on_pty(cmd, env)
            else:
                done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
                code, err = done.returncode, done.stderr
            wall = time.perf_counter() - start
            if code != 0:
                raise SystemExit(f"turn {i + 1} failed: {err.strip()}")
            s = last_reply_stats(home) if on_pty else json.loads(done.stdout)["stats"]
            turns.append(
                {
                    "prompt": s["prompt_tokens"],
                    "cached": s["cached_tokens"],
                    "evaluated": s["prompt_tokens"] - s["cached_tokens"],
                    "ttft_s": s["ttft_s"],
                    "wall_s": wall,
                    "completion": s["completion_tokens"],
                }
            )
        return turns


def run_on_pty(cmd: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run on a 120x40 pseudo-terminal, reading (and dropping) what it draws; the exit code
    and the screen's tail."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(cmd, stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other side closed
            break
        if not chunk:
            break
        seen = (seen + chunk)[-4000:]
    os.close(leader)
    return proc.wait(timeout=300), seen.decode("utf-8", "replace")


def last_reply_stats(home: str) -> dict:
    os.environ["REFLECTCHAT_HOME"] = home  # the Store reads its folder from here
    from reflectchat.core.chat.store import Store

    store = Store()
    conversation = store.get_conversation(store.latest_conversation_id())
    stats = conversation.messages[-1].stats
    assert stats is not None
    return stats


def bare_eval_ratio(cached: list[int], new: list[int], repeats: int) -> float:
    """How much longer llama.cpp itself takes to evaluate turn 10's new tokens after turn 10's
    cached prefix than turn 2's after turn 2's: attention over a longer context, which no cache
    can save. Same model, context and threads as the ask processes; alternating."""
    import random

    from llama_cpp import Llama

    path = resolve_model("smollm2").path
    llm = Llama(str(path), n_ctx=4096, n_threads=default_threads(),
                n_threads_batch=default_threads(), verbose=False)  # fmt: skip
    rng = random.Random(0)
    tokens = [rng.randrange(100, 40000) for _ in range(max(cached) + max(new))]
    times: list[list[float]] = [[], []]
    for _ in range(2 * repeats):
        for i in (0, 1):
            llm.reset()
            llm.eval(tokens[: cached[i]])
            start = time.perf_counter()
            llm.eval(tokens[cached[i] : cached[i] + new[i]])
            times[i].append(time.perf_counter() - start)
    return statistics.median(times[1]) / statistics.median(times[0])


def new_process_main(repeats: int, out: Path | None, on_pty: bool = False) -> int:
    runs: dict[str, list[list[dict]]] = {"saved cache": [], "saving off": []}
    for seed in range(1, repeats + 1):  # alternating, so drift hits both alike
        runs["saved cache"].append(one_conversation_in_processes(seed, 4096, on_pty))
        runs["saving off"].append(one_conversation_in_processes(seed, 0, on_pty))
    how = "on a terminal, default flags (strict format)" if on_pty else "plain replies, --json"
    print(f"{repeats} conversations of 10 turns, each turn a new `reflectchat ask -c` process")
    print(f"(demo model, {default_threads()} threads, {how}); medians:\n")
    print("| turn | prompt tokens | cached: saved / off | evaluated: saved / off "
          "| TTFT ms: saved / off | process s: saved / off |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    on, off = runs["saved cache"], runs["saving off"]
    for i in (1, 8, 9):
        m = {k: statistics.median(r[i][k] for r in on) for k in on[0][i]}
        o = {k: statistics.median(r[i][k] for r in off) for k in off[0][i]}
        print(
            f"| {i + 1} | {m['prompt']:.0f} | {m['cached']:.0f} / {o['cached']:.0f} "
            f"| {m['evaluated']:.0f} / {o['evaluated']:.0f} "
            f"| {m['ttft_s'] * 1000:.0f} / {o['ttft_s'] * 1000:.0f} "
            f"| {m['wall_s']:.2f} / {o['wall_s']:.2f} |"
        )
    eval_ratio = statistics.median(
        r[9]["evaluated"] / (r[9]["prompt"] - r[8]["prompt"]) for r in on
    )
    ttft_ratio = statistics.median(r[9]["ttft_s"] / r[1]["ttft_s"] for r in on)
    off_ratio = statistics.median(r[9]["ttft_s"] / r[1]["ttft_s"] for r in off)
    # Each run's ratio swings with the machine (0.9-2.3 seen on 2 shared cores); the ratio of
    # the medians is the steadier view of the same thing.
    of_medians = statistics.median(r[9]["ttft_s"] for r in on) / statistics.median(
        r[1]["ttft_s"] for r in on
    )
    re_evaluated = sum(t["evaluated"] > 60 for r in on for t in r[1:])
    print(f"\nturn 10 evaluated / tokens added since turn 9: {eval_ratio:.2f} (target <= 1.5)")
    print(f"turn 10 TTFT / turn 2 TTFT: {ttft_ratio:.2f} median of ratios, {of_medians:.2f} "
          f"ratio of medians (target <= 1.5; saving off: {off_ratio:.2f})")  # fmt: skip
    print(f"turns 2-10 that evaluated more than 60 tokens with the saved cache: {re_evaluated} "
          f"of {9 * len(on)}")  # fmt: skip
    cached = [round(statistics.median(r[i]["cached"] for r in on)) for i in (1, 9)]
    new = [round(statistics.median(r[i]["evaluated"] for r in on)) for i in (1, 9)]
    bare = bare_eval_ratio(cached, new, repeats)
    print(f"llama.cpp's own share: bare llama-cpp-python evaluating {new[1]} tokens after "
          f"{cached[1]} cached / {new[0]} after {cached[0]}: {bare:.2f}x (medians of "
          f"{2 * repeats} alternating)")  # fmt: skip
    if out:
        out.write_text(json.dumps({"runs": runs, "eval_ratio": eval_ratio, "bare_ratio": bare,
                                   "ttft_ratio": ttft_ratio}, indent=2))  # fmt: skip
    return 0 if eval_ratio <= 1.5 and ttft_ratio <= 1.5 else 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--strict-format",
        action="store_true",
        help="tagged replies (thinking stripped from history)",
    )
    parser.add_argument("--new-process", action="store_true", help="each turn a new ask -c")
    parser.add_argument(
        "--pty", action="store_true", help="with --new-process: on a terminal, default flags"
    )
    opts = parser.parse_args()
    if opts.new_process:
        return new_process_main(opts.repeats, opts.json, opts.pty)
    backend = LlamaBackend(
        resolve_model("smollm2"), LoadOptions(n_ctx=4096, n_threads=default_threads())
    )
    runs = [
        one_conversation(backend, seed, opts.strict_format) for seed in range(1, opts.repeats + 1)
    ]
    eval_ratio = statistics.median(
        r[9]["evaluated"] / (r[9]["prompt"] - r[8]["prompt"]) for r in runs
    )
    ttft_ratio = statistics.median(r[9]["ttft_s"] / r[1]["ttft_s"] for r in runs)
    mode = "strict format: tagged replies" if opts.strict_format else "plain replies"
    print(
        f"{opts.repeats} conversations of 10 turns (demo model, {default_threads()} threads, "
        f"{mode}); medians per turn:"
    )
    print("| turn | prompt tokens | cached | evaluated | TTFT (ms) |")
    print("|---|---|---|---|---|")
    for i in range(10):
        med = {k: statistics.median(r[i][k] for r in runs) for k in runs[0][i]}
        print(
            f"| {i + 1} | {med['prompt']:.0f} | {med['cached']:.0f} | {med['evaluated']:.0f} "
            f"| {med['ttft_s'] * 1000:.0f} |"
        )
    print(f"\nturn 10 evaluated / tokens added since turn 9: {eval_ratio:.2f} (target <= 1.5)")
    print(f"turn 10 TTFT / turn 2 TTFT: {ttft_ratio:.2f} (target <= 2)")
    if opts.json:
        opts.json.write_text(
            json.dumps({"runs": runs, "eval_ratio": eval_ratio, "ttft_ratio": ttft_ratio}, indent=2)
        )
    return 0 if eval_ratio <= 1.5 and ttft_ratio <= 2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
