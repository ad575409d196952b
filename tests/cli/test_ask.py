"""`reflectchat ask` and `view` as users run them: real subprocesses on the embedded model."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import cli, run_env
from tests.support.gguf_fixtures import (
    embedded_model_path,
    write_random_after_magic,
    write_small_gguf,
    write_truncated,
)
from tests.support.paths import SAMPLES, TRANSCRIPTS


def run(*args: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli(*args), input=stdin, capture_output=True, text=True, env=run_env(), timeout=timeout
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("reflectchat: error: ")
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


# -- the main job -------------------------------------------------------------------------------


def test_ask_json_on_the_demo_model() -> None:
    embedded_model_path()
    proc = run("ask", "Is 9.11 bigger than 9.9?", "--seed", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)  # exactly one JSON object
    assert set(data) >= {
        "model",
        "answer",
        "thinking",
        "reflections",
        "sections",
        "finish_reason",
        "stats",
    }
    assert data["model"] == "smollm2"
    assert data["finish_reason"] == "stop"
    assert data["thinking"] and data["answer"]  # strict format is on for the demo model
    assert data["sections"][0]["kind"] == "thinking"
    assert data["sections"][-1] == {"kind": "output", "text": data["answer"]}
    assert len(data["reflections"]) == sum(s["kind"] == "reflection" for s in data["sections"])
    stats = data["stats"]
    assert set(stats) >= {
        "prompt_tokens",
        "completion_tokens",
        "ttft_s",
        "tokens_per_second",
        "total_s",
    }
    assert stats["prompt_tokens"] > 50  # the Reflection system prompt went in
    assert stats["completion_tokens"] > 10
    assert proc.stderr == ""


def test_ask_piped_prints_only_the_answer_and_is_seed_reproducible() -> None:
    embedded_model_path()
    args = ("ask", "Name a colour.", "--seed", "3", "--max-tokens", "200")
    first = run(*args)
    assert first.returncode == 0, first.stderr
    as_json = json.loads(run(*args, "--json").stdout)
    answer = as_json["answer"]
    assert first.stdout == (answer + "\n" if answer else "")
    assert as_json["thinking"][:30] not in first.stdout
    assert "<output>" not in first.stdout and "[Thinking]" not in first.stdout
    shown = run(*args, "--reasoning", "show")
    assert shown.stdout.startswith("[Thinking]\n")
    assert shown.stdout.endswith(first.stdout)


def test_ask_piped_with_no_answer_says_why_on_stderr() -> None:
    # The demo model thinks for far more than 12 tokens: piped, there is no answer to print,
    # and an empty stdout with exit 0 and no word of explanation looked like a broken tool.
    embedded_model_path()
    proc = run("ask", "Is 9.11 bigger than 9.9?", "--seed", "3", "--max-tokens", "12")
    assert proc.returncode == 0 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "no answer" in proc.stderr, proc.stderr
    assert "--max-tokens" in proc.stderr and "--think-budget" in proc.stderr


def test_ask_reads_stdin() -> None:
    embedded_model_path()
    a = run("ask", "-", "--seed", "5", "--max-tokens", "20", "--json", stdin="Say hello.")
    b = run("ask", "--seed", "5", "--max-tokens", "20", "--json", stdin="Say hello.")
    c = run("ask", "Say hello.", "--seed", "5", "--max-tokens", "20", "--json")
    assert a.returncode == b.returncode == c.returncode == 0
    assert json.loads(a.stdout)["thinking"] == json.loads(c.stdout)["thinking"]
    assert json.loads(b.stdout)["thinking"] == json.loads(c.stdout)["thinking"]
    assert json.loads(a.stdout)["finish_reason"] == "length"


def test_system_prompt_options_change_the_prompt() -> None:
    embedded_model_path()
    base = ("ask", "Hi", "--max-tokens", "1", "--json", "--no-strict-format")
    default = json.loads(run(*base).stdout)["stats"]["prompt_tokens"]
    none = json.loads(run(*base, "--no-system").stdout)["stats"]["prompt_tokens"]
    custom = json.loads(run(*base, "--system", "Be brief.").stdout)["stats"]["prompt_tokens"]
    # SmolLM2's template adds its own short default system prompt when none is sent
    assert default > custom and default > none


# -- errors for people ---------------------------------------------------------------------------


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    real = embedded_model_path()
    folder = tmp_path / "folder.gguf"
    folder.mkdir()
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    text = tmp_path / "page.gguf"
    text.write_text("<!DOCTYPE html><html><body>404 Not Found</body></html>\n")
    return {
        "missing": tmp_path / "missing.gguf",
        "folder": folder,
        "empty": empty,
        "text": text,
        "truncated": write_truncated(real, tmp_path / "truncated.gguf", 0.5),
        "random": write_random_after_magic(tmp_path / "random.gguf", 200_000),
        "no-vocab": write_small_gguf(tmp_path / "tiny.gguf"),
    }


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("missing", "does not exist"),
        ("folder", "folder"),
        ("empty", "empty"),
        ("text", "not a GGUF"),
        ("truncated", "truncated"),
        ("random", ""),
        ("no-vocab", "llama.cpp could not load"),
    ],
)
def test_bad_model_files_give_one_line_and_exit_2(
    bad_files: dict[str, Path], case: str, words: str
) -> None:
    path = bad_files[case]
    proc = run("ask", "hi", "-m", str(path))
    assert_one_line_error(proc, 2, path.name, words)


def test_unknown_model_and_usage_errors() -> None:
    assert_one_line_error(run("ask", "hi", "-m", "no-such-model"), 2, "no-such-model")
    assert_one_line_error(run("ask", "hi", "--temperature", "hot"), 2, "--temperature")
    assert_one_line_error(run("ask", "hi", "--gpu-layers", "lots"), 2, "--gpu-layers")
    assert_one_line_error(run("ask", "   ", "--max-tokens", "3"), 2, "empty")
    assert_one_line_error(run("view", "/no/such/file.txt"), 2, "no such file")


def test_context_too_small_is_a_clear_error() -> None:
    embedded_model_path()
    proc = run("ask", "word " * 300, "--ctx", "128")
    assert_one_line_error(proc, 1, "context holds 128", "--ctx")


# -- untrusted text ------------------------------------------------------------------------------


def test_view_shows_markup_literally_and_strips_escapes(tmp_path: Path) -> None:
    reply = tmp_path / "reply.txt"
    reply.write_text(
        "<thinking>[bold]x[/bold]</thinking><output>use [/INST] \x1b]52;c;Zm9v\x07"
        "and \x1b[31mred\x1b[0m</output>"
    )
    proc = run("view", str(reply))
    assert proc.returncode == 0
    assert proc.stdout == "use [/INST] and red\n"
    data = json.loads(run("view", str(reply), "--json").stdout)
    assert data["thinking"] == "[bold]x[/bold]"
    assert set(data) == {
        "format",
        "answer",
        "thinking",
        "reflections",
        "tool_calls",
        "sections",
        "thinking_incomplete",
        "input",  # raw text: no model or finish_reason, which pasted JSON/SSE may give
    }


def test_view_splits_a_deepseek_transcript() -> None:
    # The repository's own R1-style reply (one line, double spaces for newlines).
    data = json.loads(run("view", str(TRANSCRIPTS / "r1_closed_one_line.txt"), "--json").stdout)
    assert data["thinking"].startswith("First, I note")
    assert data["answer"].startswith("**Solution:**")
    assert "boxed{28}" in data["answer"] and "boxed" not in data["thinking"]
    assert data["thinking_incomplete"] is False


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared/reference/samples is not here")
def test_view_real_deepseek_sample() -> None:
    sample = next(SAMPLES.glob("20_*.txt"))
    data = json.loads(run("view", str(sample), "--json").stdout)
    assert data["thinking"].startswith("First, I identify")
    assert "boxed{6}" in data["answer"]


# -- Ctrl+C ---------------------------------------------------------------------------------------


def test_ctrl_c_keeps_what_was_streamed_and_exits_130() -> None:
    embedded_model_path()
    pid, fd = pty.fork()
    if pid == 0:  # the child: reflectchat on a real terminal
        env = run_env(TERM="xterm-256color", COLUMNS="100", LINES="40")
        args = cli("ask", "Tell me a long story.", "--seed", "2", "--max-tokens", "900")
        os.execvpe(args[0], args, env)
    screen = b""
    deadline = time.monotonic() + 90
    interrupted = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            screen += data
        if not interrupted and screen.count(b"\xe2\x94\x82") >= 1 and len(screen) > 400:
            os.kill(pid, signal.SIGINT)  # a streamed line of thinking is on screen
            interrupted = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = screen.decode("utf-8", "replace")
    assert interrupted, text
    assert os.WEXITSTATUS(status) == 130, text
    assert "Thinking" in text
    assert "cancelled" in text
    assert "Traceback" not in text


def test_rpc_servers_need_an_rpc_build() -> None:
    import llama_cpp

    embedded_model_path()
    proc = run("ask", "hi", "--rpc", "127.0.0.1:9", "--max-tokens", "2")
    assert proc.returncode == 2
    if llama_cpp.llama_supports_rpc():
        assert_one_line_error(proc, 2, "RPC server 127.0.0.1:9")
    else:
        assert_one_line_error(proc, 2, "-DGGML_RPC=on")


# -- numbers out of range, closed streams, bad bytes ----------------------------------------------
# Past llama.cpp's limits a flag used to crash it (a segfault at 5,000,000 threads, an abort with
# a gdb backtrace at 10^20): they are usage errors now, checked before any model is loaded.


@pytest.mark.parametrize(
    ("command", "flag", "value", "words"),
    [
        ("ask", "--threads", "5000000", "from 1 to 512"),
        ("ask", "--threads", "100000000000000000000", "from 1 to 512"),
        ("ask", "--threads", "0", "from 1 to 512"),
        ("ask", "--ctx", str(2**24 + 1), "from 1 to 16777216"),
        ("ask", "--max-tokens", "99999999999", "from 1 to 16777216"),
        ("ask", "--seed", str(2**32), "from -1 to 4294967295"),
        ("ask", "--seed", "-2", "from -1 to 4294967295"),
        ("ask", "--gpu-layers", "5000000", "from 0 to 9999"),
        ("ask", "--top-p", "1.5", "from 0 to 1"),
        ("ask", "--top-p", "nan", "from 0 to 1"),
        ("ask", "--temperature", "inf", "from 0 to 5"),
        ("chat", "--threads", "5000000", "from 1 to 512"),
        ("chat", "--ctx", "100000000000000000000", "from 1 to 16777216"),
        ("bench", "--threads", "5000000", "from 1 to 512"),
        ("bench", "-p", "100000000000000000000", "from 1 to 1048576"),
        ("bench", "-n", "0", "from 1 to 1048576"),
        ("bench", "-r", "0", "from 1 to 1000"),
        ("bench", "--gpu-layers", "lots", '"all" or "auto"'),
    ],
)
def test_numbers_out_of_range_are_usage_errors(
    command: str, flag: str, value: str, words: str
) -> None:
    args = (command, "hi", flag, value) if command == "ask" else (command, flag, value)
    proc = run(*args, timeout=60)
    assert_one_line_error(proc, 2, flag.split()[0], value, words)


def test_numbers_at_the_limits_are_accepted() -> None:
    from reflectchat.cli.main import build_parser

    args = build_parser().parse_args(
        ["ask", "hi", "--threads", "512", "--ctx", str(2**24), "--seed", "4294967295"]
    )
    assert (args.threads, args.ctx, args.seed) == (512, 2**24, 2**32 - 1)
    args = build_parser().parse_args(["ask", "hi", "--seed", "-1", "--gpu-layers", "9999"])
    assert (args.seed, args.gpu_layers) == (-1, "9999")


def _closed_stdout(*args: str) -> subprocess.CompletedProcess:
    """The command as `reflectchat ARGS >&-` runs it: no standard output at all."""
    return subprocess.run(
        ["sh", "-c", 'exec "$@" >&-', "sh", *cli(*args)],
        stdout=None,
        stderr=subprocess.PIPE,
        text=True,
        env=run_env(),
        timeout=60,
    )


def test_closed_stdout_is_one_line_and_exit_1(tmp_path: Path) -> None:
    reply = tmp_path / "reply.txt"
    reply.write_text("<thinking>x</thinking><output>y</output>")
    for proc in (_closed_stdout("view", str(reply)), _closed_stdout("ask", "hi")):
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("reflectchat: error: standard output is closed")


def test_a_prompt_that_is_not_utf8_is_a_usage_error() -> None:
    # From argv: the bytes arrive as surrogate escapes.
    argv = subprocess.run(
        [*cli("ask"), b"\xff\xfe tell me"],
        capture_output=True,
        text=True,
        env=run_env(),
        timeout=60,
    )
    assert_one_line_error(argv, 2, "the prompt is not valid UTF-8", "0xff")
    # From stdin.
    piped = subprocess.run(
        cli("ask", "-"), input=b"caf\xe9\n", capture_output=True, env=run_env(), timeout=60
    )
    assert piped.returncode == 2, piped.stderr
    assert piped.stderr.decode().strip() == (
        "reflectchat: error: the prompt is not valid UTF-8 (byte 0xe9); convert it first, "
        "e.g. with iconv -t UTF-8"
    )
    system = subprocess.run(
        [*cli("ask", "hi", "--system"), b"\xff"],
        capture_output=True,
        text=True,
        env=run_env(),
        timeout=60,
    )
    assert_one_line_error(system, 2, "--system is not valid UTF-8")


@pytest.mark.parametrize("command", ["ask", "chat"])
def test_a_huge_conversation_id_is_not_found(command: str) -> None:
    args = ("ask", "hi") if command == "ask" else ("chat",)
    proc = run(*args, "--conversation", str(2**70), timeout=60)
    assert_one_line_error(proc, 2, "no conversation 1180591620717411303424")
