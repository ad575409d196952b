"""SIGTERM and SIGHUP mid-reply, as a shell, a service manager or a closed terminal sends them:
the partial reply is kept (stored, marked cancelled), the terminal is restored, and the exit
status says which signal it was (143, 129). Real processes on a real pty, the embedded model."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reflectchat.core.chat.store import Store, StoredMessage
from tests.conftest import cli, run_env
from tests.support.gguf_fixtures import embedded_model_path

THINKING_BAR = "│".encode()  # ask draws each streamed line of thinking behind it


class Terminal:
    """A child process on a pty of 120x40, with everything it writes collected."""

    def __init__(self, args: list[str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: reflectchat on a real terminal
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
                env = run_env(TERM="xterm-256color", COLUMNS="120", LINES="40")
                os.execvpe(args[0], args, env)
            finally:
                os._exit(127)  # never back into pytest
        self.output = b""
        self.eof = False

    def read_until(self, check: Callable[[bytes], bool], what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not check(self.output):
            if self.eof or time.monotonic() > deadline:
                text = self.output.decode("utf-8", "replace")[-3000:]
                raise AssertionError(f"timed out waiting for {what}; the output ended:\n{text}")
            self._read(0.1)

    def _read(self, wait: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], wait)
        if not ready:
            return
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed its end
            data = b""
        if not data:
            self.eof = True
        self.output += data

    def write(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait(self, timeout: float = 60) -> int:
        """Read to the end, then the exit status (a number, or -N for death by signal N)."""
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._read(0.1)
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                raise AssertionError("the process did not exit")
            time.sleep(0.05)
        os.close(self.fd)
        if os.WIFSIGNALED(status):
            return -os.WTERMSIG(status)
        return os.WEXITSTATUS(status)


def last_reply() -> StoredMessage:
    with Store() as store:
        conversation_id = store.latest_conversation_id()
        assert conversation_id is not None, "nothing was stored"
        messages = store.get_conversation(conversation_id).messages
    assert [m.role for m in messages] == ["user", "assistant"]
    return messages[-1]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_ask_keeps_the_partial_reply_on_term_and_hup(signum: int, code: int) -> None:
    embedded_model_path()
    term = Terminal(cli("ask", "Tell me a long story.", "--seed", "2", "--max-tokens", "900"))
    term.read_until(
        lambda out: THINKING_BAR in out and len(out) > 400, "a streamed line of thinking"
    )
    os.kill(term.pid, signum)
    status = term.wait()
    text = term.output.decode("utf-8", "replace")
    assert status == code, text
    assert "Traceback" not in text
    if signum == signal.SIGTERM:  # after a hangup nobody reads the terminal
        assert "stopped by SIGTERM; the partial reply is kept" in text
    reply = last_reply()
    assert reply.finish_reason == "cancelled"
    assert reply.content.strip()  # what was written before the signal
    assert reply.content.startswith("<thinking>")


def _installed_app() -> list[str]:
    beside_python = Path(sys.executable).with_name("reflectchat")
    return [str(beside_python)] if beside_python.exists() else cli()


def test_chat_app_keeps_the_reply_and_restores_the_terminal_on_term() -> None:
    embedded_model_path()
    term = Terminal([*_installed_app(), "chat", "--seed", "2", "--max-tokens", "900"])
    term.read_until(lambda out: b"Q4_1" in out, "the model to load")  # the status line
    loaded_at = len(term.output)
    term.write("Tell me a long story.")
    term.write("\r")
    # The thinking panel opened and some of it streamed in.
    term.read_until(lambda out: b"Thinking" in out[loaded_at:], "the reply to start")
    streaming_until = time.monotonic() + 1.5  # ~100 tokens of the 900 (~70 tokens/s here)
    term.read_until(lambda out: time.monotonic() > streaming_until, "the reply to stream")
    killed_at = len(term.output)
    os.kill(term.pid, signal.SIGTERM)
    status = term.wait()
    tail = term.output[killed_at:]
    assert status == 143, term.output[-2000:]
    assert b"Traceback" not in term.output
    # Textual's own shutdown: mouse reporting off, the cursor back, the alternate screen left.
    assert b"\x1b[?1000l" in tail
    assert b"\x1b[?25h" in tail
    assert b"\x1b[?1049l" in tail
    assert term.output.rfind(b"\x1b[?1049l") > term.output.rfind(b"\x1b[?1049h")
    reply = last_reply()
    assert reply.finish_reason == "cancelled"
    assert reply.content.startswith("<thinking>")
    assert reply.content.removeprefix("<thinking>").strip()  # some thinking came before it
