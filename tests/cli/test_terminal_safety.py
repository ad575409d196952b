"""Stored and model text never acts on the terminal: history, view, JSON and the stripper.

Hostile text goes into the real store through the Store API (the title through SQL, as an older
version or another writer could have left it), then the real CLI runs in a subprocess, piped or
on a real pty, and no ESC/BEL/C1/bidi control of the text may reach what it writes.
"""

from __future__ import annotations

import json
import os
import pty
import re
import resource
import sqlite3
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reflectchat.core.chat.export import to_json
from reflectchat.core.chat.store import DB_FILENAME, Store
from reflectchat.core.reply.sanitize import ControlStripper, escape_controls, strip_controls
from tests.conftest import cli, run_env

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Payloads that must never show: a clipboard write, a title, a screen clear, 8-bit CSI/OSC.
PAYLOADS = ("]52;", "U1RFQUw", "PWNED", "[2J", "]0;", "TITLE8")
REPLY = (
    "<thinking>think \x1b]52;c;U1RFQUw=\x07 quietly \u202eevil\u202c</thinking>"
    "<output>Answer one \x1b]0;PWNED\x07 then \x1b[2J cleared, \x9b31m 8-bit \x9d0;TITLE8\x07"
    " and \u2066isolated\u2069 end</output>"
)
FORBIDDEN = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{BIDI}]")


def assert_inert(data: bytes, where: str) -> str:
    """`data` is valid UTF-8 (so no raw 0x9b/0x9d byte) with no control but newline/tab."""
    text = data.decode("utf-8")  # strict: a raw C1 byte fails here
    bad = FORBIDDEN.search(text)
    assert bad is None, f"{where}: {bad.group()!r} reached the terminal in {text!r}"
    return text


@pytest.fixture
def hostile_home(isolated_home: Path) -> tuple[Path, int]:
    with Store() as store:
        cid = store.create_conversation(
            title="placeholder", model=None, system_prompt="be \x1b[5mnice\x1b[0m \u202e"
        )
        store.add_message(cid, "user", "Question \x1b]0;PWNED\x07 with \u202ebidi")
        store.add_message(
            cid,
            "assistant",
            REPLY,
            model="evil\x1b]0;PWNED\x07model\u202e",
            finish_reason="length\x1b[2J",
        )
    with sqlite3.connect(isolated_home / "data" / DB_FILENAME) as conn:
        conn.execute(
            "UPDATE conversations SET title = ? WHERE id = ?",
            ("Title \x1b]52;c;U1RFQUw=\x07 \u202eabc \x9b2J", cid),
        )
    return isolated_home, cid


def run_cli(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        cli(*args), input=stdin, capture_output=True, timeout=60, env=env or run_env(), **kw
    )  # type: ignore[call-overload]


HISTORY_COMMANDS = [
    ("list",),
    ("list", "--json"),
    ("show", "{id}"),
    ("show", "{id}", "--reasoning", "show"),
    ("export", "{id}"),
    ("export", "{id}", "--format", "md"),
    ("export", "{id}", "--format", "json"),
    ("search", "Answer"),
    ("search", "--json", "Answer"),
    ("search", "evil"),
]


@pytest.mark.parametrize("command", HISTORY_COMMANDS, ids=" ".join)
def test_history_piped_writes_no_controls(
    hostile_home: tuple[Path, int], command: tuple[str, ...]
) -> None:
    _, cid = hostile_home
    args = [part.format(id=cid) for part in command]
    r = run_cli("history", *args)
    assert r.returncode == 0, r.stderr
    out = assert_inert(r.stdout, "stdout")
    assert_inert(r.stderr, "stderr")
    assert out.strip()
    if "--json" in args or "json" in args:
        json.loads(out)  # escaped, still valid JSON


def test_markdown_export_is_faithful_but_visible(hostile_home: tuple[Path, int]) -> None:
    _, cid = hostile_home
    md = assert_inert(run_cli("history", "export", str(cid), "--format", "md").stdout, "md")
    assert "\u241b]52;c;U1RFQUw=\u2407" in md  # ␛ and ␇: what was said, shown, not obeyed
    assert "\u241b[2J cleared, \\x9b31m 8-bit \\x9d0;TITLE8\u2407" in md
    assert "<U+202E>evil<U+202C>" in md and "<U+2066>isolated<U+2069>" in md
    assert "evil\u241b]0;PWNED\u2407model<U+202E>" in md  # the model field too
    assert md.startswith("# Title \u241b]52;c;U1RFQUw=\u2407 <U+202E>abc \\x9b2J")
    # `show` piped is the same document with reasoning folded away
    shown = assert_inert(run_cli("history", "show", str(cid)).stdout, "show")
    assert "Answer one \u241b]0;PWNED\u2407" in shown and "U1RFQUw=\u2407 quietly" not in shown


def test_json_export_keeps_the_exact_text(hostile_home: tuple[Path, int]) -> None:
    _, cid = hostile_home
    out = run_cli("history", "export", str(cid), "--format", "json").stdout
    assert b"\\u001b]52;c;" in out and b"\\u009b31m" in out and b"\\u202e" in out
    data = json.loads(assert_inert(out, "json"))
    assert data["messages"][1]["content"] == REPLY
    assert data["messages"][1]["model"] == "evil\x1b]0;PWNED\x07model\u202e"
    assert data["title"].startswith("Title \x1b]52;")


def run_on_pty(args: list[str], stdin: bytes | None = None) -> bytes:
    """Run the CLI with stdout and stderr on a real pty; everything it wrote."""
    master, slave = pty.openpty()
    env = run_env(TERM="xterm-256color")
    proc = subprocess.Popen(
        cli(*args),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    if stdin is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the pty
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 0, b"".join(chunks)
    return b"".join(chunks)


# Rich's own styling on a terminal: SGR only (and the OSC 8 links it is told not to make).
_RICH_SGR = re.compile(r"\x1b\[[0-9;]*m")


def assert_inert_on_terminal(data: bytes, where: str) -> str:
    text = _RICH_SGR.sub("", data.decode("utf-8")).replace("\r\n", "\n")
    assert_inert(text.encode(), where)
    for payload in PAYLOADS:
        assert payload not in text, f"{where}: {payload!r} reached the terminal"
    return text


@pytest.mark.parametrize(
    "command",
    [
        ("show", "{id}", "Title"),
        ("show", "{id}", "--reasoning", "show", "quietly"),
        ("list", "Title"),
        ("search", "end", "isolated end"),
    ],
    ids=lambda command: " ".join(command[:-1]),
)
def test_history_on_a_terminal_writes_no_controls(
    hostile_home: tuple[Path, int], command: tuple[str, ...]
) -> None:
    _, cid = hostile_home
    *args, expected = (part.format(id=cid) for part in command)
    shown = assert_inert_on_terminal(run_on_pty(["history", *args]), " ".join(args))
    assert expected in shown


C1_INPUT = b"A\x9b2JB\x9d0;PWN\x07\n"  # printf 'A\x9b2JB\x9d0;PWN\a\n': invalid UTF-8 bytes


@pytest.mark.parametrize(
    "io_env",
    [{"PYTHONUTF8": "1"}, {"PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}],
    ids=["surrogateescape", "strict"],
)
@pytest.mark.parametrize("extra", [(), ("--json",)], ids=["plain", "json"])
def test_view_stdin_8bit_c1_bytes_become_replacement_chars(
    io_env: dict[str, str], extra: tuple[str, ...]
) -> None:
    r = run_cli("view", *extra, stdin=C1_INPUT, env=run_env(**io_env))
    assert r.returncode == 0, r.stderr
    out = assert_inert(r.stdout, "view")
    assert b"\x9b" not in r.stdout and b"\x9d" not in r.stdout
    if extra:
        assert json.loads(out)["answer"] == "A\ufffd2JB\ufffd0;PWN\x07"
    else:
        assert out == "A\ufffd2JB\ufffd0;PWN\n"


def test_view_file_with_c1_bytes_on_a_terminal(tmp_path: Path) -> None:
    reply = tmp_path / "reply.txt"
    reply.write_bytes(b"<output>x\x9b2Jy \xe2\x80\xae\x1b]0;PWNED\x07 z</output>\n")
    shown = assert_inert_on_terminal(run_on_pty(["view", str(reply)]), "view tty")
    assert "x\ufffd2Jy" in shown and " z" in shown
    shown = assert_inert_on_terminal(run_on_pty(["view"], stdin=C1_INPUT), "view tty stdin")
    assert "A\ufffd2JB\ufffd0;PWN" in shown


def _one_line_error(r: subprocess.CompletedProcess[bytes], *needles: str) -> None:
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def _memory_cap() -> None:
    # A regression must fail fast with an error, not take the machine's memory with it.
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_view_bounds_what_it_reads(tmp_path: Path) -> None:
    r = run_cli("view", "/dev/zero", preexec_fn=_memory_cap)
    _one_line_error(r, "/dev/zero", "16 MiB")
    r = run_cli("view", stdin=b"a" * (16 * 1024 * 1024 + 1), preexec_fn=_memory_cap)
    _one_line_error(r, "16 MiB")
    big = tmp_path / "big.txt"
    with big.open("wb") as f:
        f.truncate(16 * 1024 * 1024 + 1)  # sparse: no disk to speak of
    _one_line_error(run_cli("view", str(big), preexec_fn=_memory_cap), "big.txt", "16 MiB")
    # just under the limit is fine
    ok = run_cli("view", stdin=b"a" * 1000 + b"\n")
    assert ok.returncode == 0 and ok.stdout == b"a" * 1000 + b"\n"


def test_view_directory_or_unreadable_file_is_one_line(tmp_path: Path) -> None:
    _one_line_error(run_cli("view", str(tmp_path)), "is a directory")
    _one_line_error(run_cli("view", "/proc/self/mem"), "cannot read /proc/self/mem")


# -- the stripper itself -----------------------------------------------------------------------


def test_bidi_controls_are_stripped() -> None:
    for char in BIDI:
        assert strip_controls(f"a{char}b") == "ab"
    assert strip_controls("\u202eevil\u202c ok") == "evil ok"
    stripper = ControlStripper()
    assert stripper.feed("x\u2066y") + stripper.flush() == "xy"


def test_lone_surrogates_become_replacement_chars() -> None:
    assert strip_controls("A\udc9b2JB") == "A\ufffd2JB"
    assert escape_controls("A\udc9b") == "A\ufffd"


def test_unterminated_osc_does_not_hide_the_rest() -> None:
    # At a newline the string is over: the next lines are shown.
    shown = strip_controls("Answer \x1b]0;title\nthe rest\nand more")
    assert shown == "Answer \nthe rest\nand more"
    # With no newline, it swallows a bounded amount and the remainder is shown.
    text = "\x1b]0;" + "x" * 2000 + " the end"
    shown = strip_controls(text)
    assert shown.endswith("x the end") and len(shown) >= 2000 - 300
    # A terminated one, even long, goes whole, payload and all.
    assert strip_controls("a\x1b]52;c;" + "QUJD" * 500 + "\x07b") == "ab"
    # Endless parameters do not swallow what follows either.
    assert strip_controls("\x1b[" + "1" * 500 + "mtext").endswith("1mtext")


def test_stream_shows_text_after_an_unterminated_osc() -> None:
    stripper = ControlStripper()
    out = stripper.feed("ok \x1b]0;tit") + stripper.feed("le\nrest of the") + stripper.feed(" line")
    assert out + stripper.flush() == "ok \nrest of the line"
    # End of stream: the part a never-terminated string would not swallow is flushed.
    stripper = ControlStripper()
    out = "".join(stripper.feed(c) for c in "\x1b]0;" + "y" * 300 + " tail")
    assert (out + stripper.flush()).endswith("y tail")
    stripper = ControlStripper()
    assert stripper.feed("a\x1b]8;;http://evil") == "a"
    assert stripper.flush() == ""  # short: the payload goes with it


def test_held_text_stays_bounded() -> None:
    stripper = ControlStripper()
    shown = "".join(stripper.feed("\x1b]52;c;" if i == 0 else "QUJD") for i in range(3000))
    assert len(stripper._held) <= 4100
    assert "QUJD" in shown + stripper.flush()  # no terminator in 12 000 chars: shown in the end


@pytest.mark.parametrize("text", [REPLY, "a\x1b]52;c;AAA\x9bBBB\x07CCC", "\x1b]0;t\x1b\\x\x1b"])
def test_any_two_chunk_split_strips_like_the_whole(text: str) -> None:
    whole = strip_controls(text)
    for cut in range(len(text) + 1):
        stripper = ControlStripper()
        got = stripper.feed(text[:cut]) + stripper.feed(text[cut:]) + stripper.flush()
        assert got == whole, cut
    assert strip_controls("a\x1b]52;c;AAA\x9bBBB\x07CCC") == "aCCC"  # no payload left


_ALPHABET = st.sampled_from(
    ["a", " ", "\n", "\t", "\x1b", "[", "]", "\\", "P", "0", ";", "m", "\x07", "\x9c", "\x9b",
     "\x9d", "\x90", "\x08", "\r", "\u202e", "\udc9b", "é", "x" * 300, "1" * 70]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(_ALPHABET, max_size=40), cuts=st.lists(st.integers(1, 400), max_size=20))
def test_streaming_equals_one_shot_for_any_chunking(parts: list[str], cuts: list[int]) -> None:
    text = "".join(parts)
    stripper = ControlStripper()
    out, pos = [], 0
    for size in cuts:
        out.append(stripper.feed(text[pos : pos + size]))
        pos += size
    out.append(stripper.feed(text[pos:]))
    out.append(stripper.flush())
    got = "".join(out)
    assert got == strip_controls(text)
    assert FORBIDDEN.search(got.replace("\ufffd", "")) is None


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(_ALPHABET, max_size=30))
def test_escaped_text_is_inert_and_json_is_faithful(parts: list[str]) -> None:
    text = "".join(parts)
    escaped = escape_controls(text)
    assert FORBIDDEN.search(escaped) is None and strip_controls(escaped) == escaped
    dumped = to_json({"text": text})
    assert FORBIDDEN.search(dumped) is None and not re.search("[\ud800-\udfff]", dumped)
    assert json.loads(dumped) == {"text": text}


def test_an_unfinished_sequence_in_the_thinking_does_not_eat_the_answer() -> None:
    """The terminal renderer strips per section: a sequence left open at the end of the
    thinking is dropped there, and the answer after it shows whole."""
    import io

    from rich.console import Console

    from reflectchat.cli.render import TerminalRenderer
    from reflectchat.core.reply.sections import SectionParser

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80, markup=False, highlight=False)
    renderer = TerminalRenderer(console, show_reasoning=True)
    parser = SectionParser()
    text = "<thinking>step one \x1b]0;half</thinking><output>The answer is 42.</output>"
    for event in [*parser.feed(text), *parser.finish()]:
        renderer.handle(event)
    renderer.finish(None)
    shown = out.getvalue()
    assert "The answer is 42." in shown
    assert "\x1b]0;" not in shown
