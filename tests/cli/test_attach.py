"""`ask` with piped text and `-a FILE`: they join the prompt (as fenced blocks before it), are
stored with the message, and every bad input is one line with exit 2. The scripted backend
checks the plumbing fast; the embedded model checks that the prompt really grows."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import cli, run_env


def ask(
    *args: str, stdin: str | bytes | None = None, scripted: Path | None = None, **popen: object
) -> subprocess.CompletedProcess:
    env = run_env(**({"REFLECTCHAT_SCRIPTED_REPLY": str(scripted)} if scripted else {}))
    kwargs: dict = {"capture_output": True, "env": env, "timeout": 300, **popen}
    if stdin is None:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
    else:
        kwargs["input"] = stdin.encode() if isinstance(stdin, str) else stdin
    return subprocess.run(cli("ask", *args), **kwargs)


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert proc.stdout == b"" and err.count("\n") == 1 and "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def scripted(tmp_path: Path) -> Path:
    path = tmp_path / "reply.json"
    path.write_text('["<output>", "done", "</output>"]')
    return path


def stored_user_message(cid: int) -> dict:
    proc = subprocess.run(
        cli("history", "export", str(cid), "--format", "json"),
        capture_output=True, text=True, env=run_env(), timeout=60,
    )  # fmt: skip
    return json.loads(proc.stdout)["messages"][0]


def test_piped_text_and_files_join_the_prompt_and_are_stored(
    tmp_path: Path, scripted: Path
) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.md"
    a.write_text("alpha\n")
    b.write_text("beta")
    alone = ask("Summarize", "--json", scripted=scripted)
    joined = ask(
        "Summarize", "-a", str(a), "--attach", str(b), "--json", stdin="piped\n", scripted=scripted
    )
    assert joined.returncode == 0, joined.stderr
    data, before = json.loads(joined.stdout), json.loads(alone.stdout)
    assert data["answer"] == "done"
    # The scripted tokenizer counts words: 3 blocks' names, fences and contents were added.
    assert data["stats"]["prompt_tokens"] > before["stats"]["prompt_tokens"]
    message = stored_user_message(data["conversation_id"])
    assert message["content"] == "Summarize"
    assert message["attachments"] == [
        {"name": "stdin", "text": "piped\n"},
        {"name": str(a), "text": "alpha\n"},
        {"name": str(b), "text": "beta"},
    ]


def test_blank_stdin_or_dev_null_adds_nothing(scripted: Path) -> None:
    for stdin in (None, "  \n"):
        proc = ask("Hello", "--json", stdin=stdin, scripted=scripted)
        assert proc.returncode == 0, proc.stderr
        assert "attachments" not in stored_user_message(json.loads(proc.stdout)["conversation_id"])


def test_a_dash_still_makes_stdin_the_prompt(scripted: Path) -> None:
    proc = ask("-", "--json", stdin="What is 2+2?", scripted=scripted)
    message = stored_user_message(json.loads(proc.stdout)["conversation_id"])
    assert message["content"] == "What is 2+2?" and "attachments" not in message


def test_bad_attachments_are_one_line_errors(tmp_path: Path, scripted: Path) -> None:
    binary = tmp_path / "photo.jpg"
    binary.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF")
    latin1 = tmp_path / "old.txt"
    latin1.write_bytes(b"caf\xe9")
    big = tmp_path / "huge.log"
    with big.open("wb") as f:
        f.truncate(17 * 1024 * 1024)
    one_line_error(ask("x", "-a", str(binary), scripted=scripted), "photo.jpg", "looks binary")
    one_line_error(ask("x", "-a", str(latin1), scripted=scripted), "not UTF-8", "0xe9")
    one_line_error(ask("x", "-a", str(tmp_path / "gone"), scripted=scripted), "no such file")
    one_line_error(ask("x", "-a", str(big), scripted=scripted), "17.0 MiB", "at most 16 MiB")
    one_line_error(ask("x", stdin=b"\x00\x01", scripted=scripted), "piped text", "looks binary")
    # nothing was stored for any of them
    listed = subprocess.run(
        cli("history", "list", "--json"), capture_output=True, text=True, env=run_env()
    )
    assert json.loads(listed.stdout) == {"conversations": []}


# -- on the real embedded model -------------------------------------------------------------------


def test_on_the_demo_model_the_prompt_grows_by_the_attachment(tmp_path: Path) -> None:
    from reflectchat.core.chat.attachments import Attachment, with_attachments
    from reflectchat.core.chat.setup import default_system_prompt
    from reflectchat.core.engine.base import Message
    from reflectchat.core.engine.llama import LlamaBackend, LoadOptions
    from reflectchat.core.models.resolve import resolve_model

    doc = tmp_path / "report.txt"
    doc.write_text("The quarterly report shows revenue up 12% and costs down 3%.\n" * 20)
    common = ("--max-tokens", "4", "--seed", "1", "--no-save", "--json")
    plain = ask("Summarize this", *common)
    piped = ask("Summarize this", *common, stdin=doc.read_text())
    attached = ask("Summarize this", "-a", str(doc), *common)
    for proc in (plain, piped, attached):
        assert proc.returncode == 0, proc.stderr
    tokens = [json.loads(p.stdout)["stats"]["prompt_tokens"] for p in (plain, piped, attached)]
    # Exactly what each block adds, measured with the model's own tokenizer and template.
    model = resolve_model("smollm2")
    backend = LlamaBackend(model, LoadOptions(n_ctx=2048))
    system = default_system_prompt(model.entry)
    head = [Message("system", system)] if system else []

    def count(*attachments: Attachment) -> int:
        text = with_attachments("Summarize this", attachments)
        return backend.count_prompt_tokens([*head, Message("user", text)])

    text = doc.read_text()
    file_adds = count(Attachment(str(doc), text)) - count()
    pipe_adds = count(Attachment("stdin", text)) - count()
    assert file_adds > 250  # 20 lines of ~15 tokens
    assert tokens[2] - tokens[0] == file_adds
    assert tokens[1] - tokens[0] == pipe_adds


def test_on_the_demo_model_an_attachment_too_big_for_the_context(tmp_path: Path) -> None:
    doc = tmp_path / "long.txt"
    doc.write_text("word " * 3000)
    proc = ask("Summarize", "-a", str(doc), "--ctx", "512", "--max-tokens", "64", "--no-save")
    err = proc.stderr.decode()
    assert proc.returncode == 1 and proc.stdout == b"" and err.count("\n") == 1, err
    assert "with its 1 attachment (" in err and "15,000 characters)" in err
    assert "plus 64 for the reply, but the context holds 512; attach less" in err


# -- chat -------------------------------------------------------------------------------------


def test_chat_checks_its_attachments_before_opening(tmp_path: Path) -> None:
    binary = tmp_path / "x.bin"
    binary.write_bytes(b"\x00")
    proc = subprocess.run(
        cli("chat", "-a", str(binary), "--prompt", "hi"),
        capture_output=True, env=run_env(), timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    one_line_error(proc, "cannot attach", "looks binary")


def test_chat_with_piped_text_and_no_terminal_says_so() -> None:
    # A new session has no controlling terminal: the app would have nowhere to read keys.
    proc = subprocess.run(
        cli("chat", "--prompt", "Summarize"),
        input=b"some text", capture_output=True, env=run_env(), timeout=60,
        start_new_session=True,
    )  # fmt: skip
    one_line_error(proc, "needs a terminal", "reflectchat ask")


def test_chat_on_a_terminal_takes_piped_text_then_reads_keys_from_the_terminal(
    tmp_path: Path,
) -> None:
    """`cat notes | reflectchat chat --prompt …` on the real demo model: the pipe is read, the
    first message goes with it, and the app then reads keys from the terminal (Ctrl+Q quits)."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios
    import time

    main_fd, child_fd = pty.openpty()
    # Wide enough that the reply's footer (model · tokens · thinking · speed · why it stopped)
    # stays on one line beside the sidebar: the needle below must not be wrapped apart.
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))

    def controlling_terminal() -> None:
        os.setsid()
        fcntl.ioctl(child_fd, termios.TIOCSCTTY, 0)

    env = run_env(LINES="40", TERM="xterm-256color")
    env["COLUMNS"] = "160"  # run_env sets 100
    proc = subprocess.Popen(
        cli("chat", "--prompt", "Summarize", "--max-tokens", "8", "--no-save"),
        stdin=subprocess.PIPE, stdout=child_fd, stderr=child_fd, env=env,
        preexec_fn=controlling_terminal, pass_fds=(child_fd,),
    )  # fmt: skip
    os.close(child_fd)
    assert proc.stdin is not None
    proc.stdin.write(b"The meeting moved to Thursday.\n")
    proc.stdin.close()
    seen = b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and b"stopped at the token" not in seen:
            ready, _, _ = select.select([main_fd], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(main_fd, 65536)
                except OSError:
                    break
        assert b"Attached: stdin" in seen and b"stopped at the token" in seen, seen[-2000:]
        os.write(main_fd, b"\x11")  # Ctrl+Q: keys come from the terminal, not the pipe
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main_fd)


def test_history_show_folds_attachments_and_strips_their_controls(
    tmp_path: Path, scripted: Path
) -> None:
    evil = tmp_path / "evil\x1b]0;pwned\x07.txt"
    evil.write_text("payload \x1b[2J here\n")
    done = ask("Read it", "-a", str(evil), "--json", scripted=scripted)
    cid = json.loads(done.stdout)["conversation_id"]
    shown = subprocess.run(
        cli("history", "show", str(cid)), capture_output=True, env=run_env(), timeout=60
    )
    out = shown.stdout.decode()
    assert shown.returncode == 0 and "\x1b" not in out and "\x07" not in out
    assert "<details><summary>Attached: " in out and "payload" in out
