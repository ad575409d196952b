"""`reflectchat chat` and bare `reflectchat` on the command line (no terminal needed)."""

from __future__ import annotations

import subprocess

from tests.conftest import cli, run_env
from tests.test_imports import _loaded_after


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli(*args), capture_output=True, text=True, env=run_env(), timeout=60)


def test_chat_help_is_light() -> None:
    proc = run("chat", "--help")
    assert proc.returncode == 0
    for flag in ("--conversation", "--model", "--keep-thinking-open", "--max-tokens"):
        assert flag in proc.stdout
    loaded = _loaded_after(
        "import sys, runpy\nsys.argv = ['reflectchat', 'chat', '--help']\n"
        "try:\n    runpy.run_module('reflectchat', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
    )
    assert "textual" not in loaded and "llama_cpp" not in loaded


def test_no_arguments_without_a_terminal_prints_help() -> None:
    proc = run()  # stdin/stdout are pipes here: there is no screen to draw the app on
    assert proc.returncode == 0
    assert "chat" in proc.stdout and "ask" in proc.stdout


def test_an_unknown_conversation_is_a_one_line_error() -> None:
    proc = run("chat", "--conversation", "999")
    assert proc.returncode == 2
    assert proc.stderr.startswith("reflectchat: error: no conversation 999")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_nothing_to_continue_is_a_one_line_error() -> None:
    proc = run("chat", "--continue")
    assert proc.returncode == 2
    assert "no conversation to continue" in proc.stderr
