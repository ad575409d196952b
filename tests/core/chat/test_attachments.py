"""Attachments: files and piped text that join a message — read and refused, put into the
prompt, stored apart from the typed words (history schema v3), and rebuilt on resume."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from reflectchat.core.chat.attachments import (
    MAX_ATTACHMENT_BYTES,
    Attachment,
    read_attachment,
    stdin_is_data,
    with_attachments,
)
from reflectchat.core.chat.export import to_dict, to_markdown
from reflectchat.core.chat.session import ChatSession
from reflectchat.core.chat.store import MIGRATIONS, SCHEMA_VERSION, Store
from reflectchat.core.engine.base import ContextOverflowError, GenerationParams, Message
from reflectchat.core.errors import UsageError
from reflectchat.testing.scripted_backend import ScriptedBackend

# -- reading ------------------------------------------------------------------------------------


def test_a_text_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("# Notes\nnaïve café\n", encoding="utf-8")
    assert read_attachment(str(path)) == Attachment(str(path), "# Notes\nnaïve café\n")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"PK\x03\x04\x00\x00binary", ["looks binary", "NUL byte at offset 4"]),
        (b"caf\xe9 au lait", ["not UTF-8", "byte 0xe9 at offset 3", "iconv"]),
    ],
)
def test_binaries_are_refused_in_one_line(tmp_path: Path, content: bytes, words: list[str]) -> None:
    path = tmp_path / "blob"
    path.write_bytes(content)
    with pytest.raises(UsageError) as err:
        read_attachment(str(path))
    message = str(err.value)
    assert message.startswith(f"cannot attach {path}: ") and "\n" not in message
    for word in words:
        assert word in message


def test_missing_folder_unreadable_and_too_big(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        read_attachment(str(tmp_path / "nope.txt"))
    with pytest.raises(UsageError, match="it is a folder"):
        read_attachment(str(tmp_path))
    big = tmp_path / "big.log"
    with big.open("wb") as f:  # sparse: 20 MiB apparent, nothing written
        f.truncate(20 * 1024 * 1024)
    with pytest.raises(UsageError, match=r"it is 20\.0 MiB; an attachment can be at most 16 MiB"):
        read_attachment(str(big))
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.txt"
        locked.write_text("secret")
        locked.chmod(0)
        with pytest.raises(UsageError, match="Permission denied"):
            read_attachment(str(locked))
    assert MAX_ATTACHMENT_BYTES == 16 * 1024 * 1024


def test_only_pipes_and_files_count_as_piped_input(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    try:
        assert stdin_is_data(read_end)
    finally:
        os.close(read_end)
        os.close(write_end)
    with open(os.devnull) as devnull:  # `ask "…" </dev/null`, CI runners: never waited on
        assert not stdin_is_data(devnull.fileno())
    with (tmp_path / "f").open("w") as f:
        assert stdin_is_data(f.fileno())
    assert not stdin_is_data(9999)  # closed


# -- the prompt ---------------------------------------------------------------------------------


def test_attachments_come_first_as_fenced_blocks_then_the_prompt() -> None:
    text = with_attachments(
        "Summarize this", (Attachment("stdin", "a\nb\n"), Attachment("/x/y/code.md", "c"))
    )
    assert text == "stdin:\n```\na\nb\n```\n\ncode.md:\n```\nc\n```\n\nSummarize this"
    assert with_attachments("hi", ()) == "hi"


def test_a_fence_inside_an_attachment_cannot_close_its_block() -> None:
    text = with_attachments("Q", (Attachment("r.md", "```py\nx\n```\n````"),))
    assert text.startswith("r.md:\n`````\n") and text.endswith("\n`````\n\nQ")


# -- the session and the store --------------------------------------------------------------


def test_sent_stored_and_rebuilt_byte_for_byte(tmp_path: Path) -> None:
    backend = ScriptedBackend(["<output>one</output>", "<output>two</output>"])
    files = (Attachment("stdin", "piped\n"), Attachment("a.txt", "file a"))
    with Store(tmp_path / "h.sqlite3") as store:
        session = ChatSession(backend, GenerationParams(), store=store)
        session.send("Summarize", attachments=files).run()
        first_prompt = backend.calls[0]
        assert first_prompt == [Message("user", with_attachments("Summarize", files))]
        stored = store.get_conversation(session.conversation_id)
        user = stored.messages[0]
        assert user.content == "Summarize" and user.attachments == files
        assert stored.summary.title == "Summarize"  # the typed words name it, not the file
        # A later process resumes it: the same prompt prefix, so the KV cache still serves it.
        resumed = ChatSession.resume(backend, GenerationParams(), store, session.conversation_id)
        resumed.send("And?").run()
        assert backend.calls[1][:2] == [*first_prompt, Message("assistant", "one")]
        exported = to_dict(stored)["messages"][0]["attachments"]
        assert exported == [
            {"name": "stdin", "text": "piped\n"},
            {"name": "a.txt", "text": "file a"},
        ]
        md = to_markdown(stored)
        assert "<details><summary>Attached: a.txt</summary>" in md and "file a" in md


def test_regenerating_sends_the_attachments_again() -> None:
    backend = ScriptedBackend(["<output>one</output>"])
    session = ChatSession(backend, GenerationParams())
    session.send("Q", attachments=(Attachment("a.txt", "AAA"),)).run()
    session.regenerate().run()
    assert backend.calls[1] == backend.calls[0]
    assert "AAA" in backend.calls[1][0].content


def test_attachments_too_big_for_the_context_say_so_with_the_numbers() -> None:
    backend = ScriptedBackend(["x"], n_ctx=200)
    store_less = ChatSession(backend, GenerationParams(max_tokens=50))
    words = " ".join(["word"] * 500)
    with pytest.raises(ContextOverflowError) as err:
        store_less.send("Summarize", attachments=(Attachment("big.txt", words),))
    message = str(err.value)
    assert "with its 1 attachment (big.txt: 2,499 characters)" in message
    assert "needs 508 tokens of prompt plus 50 for the reply" in message
    assert "context holds 200; attach less" in message
    assert backend.calls == []  # nothing generated, nothing stored


def test_a_v2_history_is_read_without_attachments_then_migrated(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    for step in MIGRATIONS[:2]:
        for statement in step:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO conversations (title, model, system_prompt, created_at, updated_at)"
        " VALUES ('Old', NULL, NULL, 1, 1)"
    )
    conn.execute(
        "INSERT INTO messages (conversation_id, seq, role, content, created_at, turn)"
        " VALUES (1, 1, 'user', 'old question', 1, 1)"
    )
    conn.close()
    with Store(db) as store:
        assert store.get_conversation(1).messages[0].attachments == ()  # read, not migrated
        store.add_message(1, "user", "new", attachments=(Attachment("n.txt", "N"),))
        messages = store.get_conversation(1).messages
    assert [m.attachments for m in messages] == [(), (Attachment("n.txt", "N"),)]
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (3,)
    check.close()


def test_a_damaged_attachments_cell_is_named_not_fatal(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    with Store(db) as store:
        cid = store.create_conversation(title="t", model=None, system_prompt=None)
        store.add_message(cid, "user", "q", attachments=(Attachment("a", "A"),))
    conn = sqlite3.connect(db)
    conn.execute("UPDATE messages SET attachments = 'not json'")
    conn.commit()
    conn.close()
    with Store(db) as store:
        message = store.get_conversation(cid).messages[0]
    assert message.content == "q" and message.attachments == ()
    assert message.damaged == ("attachments",)
