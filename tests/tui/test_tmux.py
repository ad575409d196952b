"""The installed `reflectchat chat` in a real terminal (tmux), on the embedded model: start it,
type a prompt, wait for the answer's footer, read the screen, quit, check the exit status."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.gguf_fixtures import embedded_model_path

FOOTER = re.compile(r"\d+ tokens · .*(stop|stopped at the token limit)")


def _installed_command() -> str | None:
    beside_python = Path(sys.executable).with_name("reflectchat")
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("reflectchat")


def test_chat_in_a_real_terminal_under_tmux(tmp_path: Path) -> None:
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    command = _installed_command()
    if command is None:
        pytest.skip("reflectchat is not installed in this environment (pip install .)")
    embedded_model_path()

    socket = tmp_path / "tmux.sock"  # a private tmux server: never the user's own sessions
    status = tmp_path / "exit-status"
    home = tmp_path / "home"
    inner = (
        f"REFLECTCHAT_HOME={shlex.quote(str(home))} {shlex.quote(command)} chat"
        f" --max-tokens 40 --seed 1; echo $? > {shlex.quote(str(status))}"
    )
    env = {**os.environ, "TERM": "xterm-256color"}
    env.pop("TMUX", None)

    def tmux_run(*args: str) -> str:
        done = subprocess.run(
            [tmux, "-S", str(socket), *args], capture_output=True, text=True, env=env, timeout=30
        )
        return done.stdout

    def screen() -> str:
        return tmux_run("capture-pane", "-p", "-t", "chat")

    def wait_for(check: Callable[[str], bool], what: str, timeout: float = 180.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = screen()
            if check(text):
                return text
            if status.exists():
                break
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; the screen was:\n{text}")

    tmux_run("new-session", "-d", "-s", "chat", "-x", "120", "-y", "40", inner)
    try:
        wait_for(lambda s: "smollm2 · Q4_1 · CPU" in s, "the model to load")
        assert "demo model" in screen()  # the first-run note
        tmux_run("send-keys", "-t", "chat", "-l", "Is 9.11 bigger than 9.9?")
        tmux_run("send-keys", "-t", "chat", "Enter")
        shown = wait_for(lambda s: FOOTER.search(s) is not None, "the answer's footer")
        assert "› Is 9.11 bigger than 9.9?" in shown
        assert "Thinking" in shown  # the demo model answers in tags (strict format)
        assert "ctx " in shown and "tok/s" in shown  # the status line
        tmux_run("send-keys", "-t", "chat", "C-q")
        deadline = time.monotonic() + 30
        while not status.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status.exists(), "the app did not quit on Ctrl+Q"
        assert status.read_text().strip() == "0"
    finally:
        tmux_run("kill-server")
