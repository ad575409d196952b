"""The conversation history: real SQLite files on disk, real faults, real concurrent processes."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reflectchat.core.chat.store import (
    APPLICATION_ID,
    DB_FILENAME,
    MIGRATIONS,
    SCHEMA_VERSION,
    TITLE_MAX,
    UNTITLED,
    ConversationNotFound,
    Store,
    StoreError,
)
from reflectchat.core.chat.store_text import fold, icontains
from reflectchat.core.paths import data_dir
from tests.conftest import cli, run_env

SECTIONS = [
    {"kind": "thinking", "text": "Compare 9.11 and 9.9 digit by digit."},
    {"kind": "reflection", "text": "Wait: 0.9 > 0.11."},
    {"kind": "output", "text": "9.9 is bigger."},
]
RAW = (
    "<thinking>Compare 9.11 and 9.9 digit by digit.<reflection>Wait: 0.9 > 0.11.</reflection>"
    "</thinking><output>9.9 is bigger.</output>"
)
PARAMS = {"temperature": 0.6, "top_p": 0.95, "seed": 7, "max_tokens": 512, "strict_format": False}
STATS = {"prompt_tokens": 31, "completion_tokens": 40, "ttft_s": 0.0123, "tokens_per_second": 88.5}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / DB_FILENAME


@pytest.fixture
def store(db: Path):
    with Store(db) as s:
        yield s


def one_line_naming(err: pytest.ExceptionInfo[StoreError], path: Path) -> str:
    text = str(err.value)
    assert "\n" not in text
    assert str(path) in text
    return text


def raw(path: Path, sql: str) -> list[tuple]:
    """Query the file directly, bypassing Store."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def python(code: str, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=run_env(),
        text=True,
        **popen,
    )


# -- round trips and ordering ---------------------------------------------------------------


def test_every_field_round_trips(store: Store) -> None:
    cid = store.create_conversation(title="9.11 vs 9.9", model="smollm2", system_prompt="Reflect.")
    user = store.add_message(cid, "user", "Is 9.11 bigger than 9.9?\n")
    reply = store.add_message(
        cid,
        "assistant",
        RAW,
        sections=SECTIONS,
        answer="9.9 is bigger.",
        model="smollm2",
        params=PARAMS,
        finish_reason="stop",
        stats=STATS,
    )
    conv = store.get_conversation(cid)
    assert conv.system_prompt == "Reflect."
    assert conv.summary.title == "9.11 vs 9.9"
    assert conv.summary.model == "smollm2"
    assert conv.summary.turns == 1
    assert conv.summary.created_at <= conv.summary.updated_at
    assert conv.messages == [user, reply]  # what add_message returned is what was stored
    got = conv.messages[1]
    assert (got.conversation_id, got.seq, got.role) == (cid, 2, "assistant")
    assert got.content == RAW
    assert got.sections == SECTIONS
    assert got.answer == "9.9 is bigger."
    assert got.model == "smollm2"
    assert got.params == PARAMS
    assert got.finish_reason == "stop"
    assert got.stats == STATS
    assert abs(got.created_at - time.time()) < 60
    first = conv.messages[0]
    assert first.content == "Is 9.11 bigger than 9.9?\n"
    assert (first.sections, first.answer, first.model, first.params) == (None, None, None, None)
    assert (first.finish_reason, first.stats) == (None, None)


def test_data_survives_reopening(db: Path) -> None:
    with Store(db) as s:
        cid = s.create_conversation(title="t", model=None, system_prompt=None)
        s.add_message(cid, "user", "kept")
    with Store(db) as s:
        assert [m.content for m in s.get_conversation(cid).messages] == ["kept"]


def test_content_round_trips_exactly(store: Store) -> None:
    cid = store.create_conversation(title="t", model=None, system_prompt=None)

    @settings(max_examples=60, deadline=None)
    @given(content=st.text(), answer=st.none() | st.text(max_size=20))
    def check(content: str, answer: str | None) -> None:
        stored = store.add_message(cid, "assistant", content, answer=answer, stats={"k": content})
        back = store.get_conversation(cid).messages[-1]
        assert back == stored
        assert (back.content, back.answer, back.stats) == (content, answer, {"k": content})

    check()
    awkward = "a\x00b\r\n\x1b[31mc"  # NUL, CRLF and escapes are stored verbatim
    store.add_message(cid, "user", awkward)
    assert store.get_conversation(cid).messages[-1].content == awkward


def test_seq_is_per_conversation_and_ordered(store: Store) -> None:
    a = store.create_conversation(title="a", model=None, system_prompt=None)
    b = store.create_conversation(title="b", model=None, system_prompt=None)
    for i in range(3):
        store.add_message(a, "user", f"a{i}")
        store.add_message(b, "user", f"b{i}")
        store.add_message(a, "assistant", f"a{i}!")
    msgs = store.get_conversation(a).messages
    assert [m.seq for m in msgs] == [1, 2, 3, 4, 5, 6]
    assert [m.content for m in msgs] == ["a0", "a0!", "a1", "a1!", "a2", "a2!"]
    assert [m.seq for m in store.get_conversation(b).messages] == [1, 2, 3]
    ids = [m.id for m in msgs]
    assert ids == sorted(ids)


def test_add_message_rejects_unknown_role(store: Store) -> None:
    cid = store.create_conversation(title="t", model=None, system_prompt=None)
    with pytest.raises(ValueError, match="role"):
        store.add_message(cid, "system", "no")
    assert store.get_conversation(cid).messages == []


def test_conversation_model_is_filled_in_by_the_first_assistant_model(store: Store) -> None:
    cid = store.create_conversation(title="t", model=None, system_prompt=None)
    store.add_message(cid, "assistant", "x", model="qwen")
    store.add_message(cid, "assistant", "y", model="other")
    assert store.get_conversation(cid).summary.model == "qwen"


# -- listing, latest, search ----------------------------------------------------------------


def test_list_is_newest_first_with_turns(store: Store) -> None:
    assert store.list_conversations() == []
    old = store.create_conversation(title="old", model="m1", system_prompt=None)
    new = store.create_conversation(title="new", model=None, system_prompt=None)
    store.add_message(new, "user", "q")
    store.add_message(new, "assistant", "a")
    store.add_message(new, "user", "q2")
    listed = store.list_conversations()
    assert [(c.id, c.title, c.turns) for c in listed] == [(new, "new", 2), (old, "old", 0)]
    # Appending to the older conversation moves it to the top.
    store.add_message(old, "user", "again")
    assert [c.id for c in store.list_conversations()] == [old, new]
    assert [c.id for c in store.list_conversations(limit=1)] == [old]
    assert store.list_conversations(limit=0) == []


def test_latest_conversation_id(store: Store) -> None:
    assert store.latest_conversation_id() is None
    a = store.create_conversation(title="a", model=None, system_prompt=None)
    b = store.create_conversation(title="b", model=None, system_prompt=None)
    assert store.latest_conversation_id() == b
    store.add_message(a, "user", "hi")
    assert store.latest_conversation_id() == a
    # Editing metadata is not "using" a conversation: --continue still picks `a`.
    store.rename_conversation(b, "renamed")
    store.set_system_prompt(b, "sp")
    assert store.latest_conversation_id() == a
    store.delete_conversation(a)
    assert store.latest_conversation_id() == b


def test_latest_stays_right_when_the_clock_stands_still(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)  # a coarse or frozen clock
    a = store.create_conversation(title="a", model=None, system_prompt=None)
    b = store.create_conversation(title="b", model=None, system_prompt=None)
    store.add_message(a, "user", "hi")
    assert store.latest_conversation_id() == a
    store.add_message(b, "user", "hi")
    assert store.latest_conversation_id() == b


def test_search_is_case_insensitive_over_titles_and_content(store: Store) -> None:
    physics = store.create_conversation(title="Physics questions", model=None, system_prompt=None)
    store.add_message(physics, "user", "Why is the sky blue?")
    long_text = "lorem ipsum " * 30 + "Rayleigh SCATTERING explains it. " + "dolor sit " * 30
    store.add_message(physics, "assistant", long_text, answer="Rayleigh scattering.")
    cooking = store.create_conversation(title="Cooking", model=None, system_prompt=None)
    store.add_message(cooking, "user", "How long to boil an egg?\nSoft, please.")

    hits = store.search("scattering")
    assert [s.id for s, _ in hits] == [physics]
    snippet = hits[0][1]
    assert "SCATTERING" in snippet
    assert "\n" not in snippet
    assert len(snippet) <= 82
    assert snippet.startswith("…") and snippet.endswith("…")

    hits = store.search("PHYSICS")  # only the title matches
    assert [(s.id, snip) for s, snip in hits] == [(physics, "Physics questions")]

    hits = store.search("egg? soft")  # the snippet is one line, so is the match
    assert [s.id for s, _ in hits] == [cooking]
    assert hits[0][1] == "How long to boil an egg? Soft, please."

    assert {s.id for s, _ in store.search("?")} == {physics, cooking}
    assert [s.id for s, _ in store.search("?")] == [cooking, physics]  # newest first
    assert len(store.search("?", limit=1)) == 1
    assert store.search("nowhere to be found") == []
    assert store.search("") == []
    assert store.search("%") == []  # no LIKE wildcards
    assert store.search("_") == []


def test_search_folds_unicode_case(store: Store) -> None:
    cid = store.create_conversation(title="t", model=None, system_prompt=None)
    store.add_message(cid, "user", "Die STRASSE ist lang; ΣΊΣΥΦΟΣ rollt den Stein.")
    for query in ("straße", "σίσυφος", "ΣΊΣΥΦΟΣ"):
        [(summary, snippet)] = store.search(query)
        assert summary.id == cid
        assert snippet.startswith("Die STRASSE")


def test_search_snippet_strips_escape_sequences(store: Store) -> None:
    cid = store.create_conversation(title="t", model=None, system_prompt=None)
    store.add_message(cid, "assistant", "\x1b]52;c;ZXZpbA==\x07plain \x1b[31mred\x1b[0m text")
    [(_, snippet)] = store.search("red")
    assert snippet == "plain red text"


# -- rename, delete, system prompt ----------------------------------------------------------


def test_rename(store: Store) -> None:
    cid = store.create_conversation(title="old", model=None, system_prompt=None)
    store.rename_conversation(cid, "  new\nname\x1b[2J ")
    assert store.get_conversation(cid).summary.title == "new name"
    store.rename_conversation(cid, "   ")
    assert store.get_conversation(cid).summary.title == UNTITLED


def test_set_system_prompt(store: Store) -> None:
    cid = store.create_conversation(title="t", model=None, system_prompt="one")
    store.set_system_prompt(cid, "two\nlines")
    assert store.get_conversation(cid).system_prompt == "two\nlines"
    store.set_system_prompt(cid, None)
    assert store.get_conversation(cid).system_prompt is None


def test_delete_cascades_to_messages_and_ids_are_not_reused(store: Store, db: Path) -> None:
    keep = store.create_conversation(title="keep", model=None, system_prompt=None)
    gone = store.create_conversation(title="gone", model=None, system_prompt=None)
    store.add_message(keep, "user", "k")
    for i in range(5):
        store.add_message(gone, "user", f"g{i}")
    store.delete_conversation(gone)
    assert raw(db, f"SELECT COUNT(*) FROM messages WHERE conversation_id = {gone}") == [(0,)]
    assert [c.id for c in store.list_conversations()] == [keep]
    assert [m.content for m in store.get_conversation(keep).messages] == ["k"]
    assert store.search("g1") == []
    # A new conversation never takes the deleted one's number.
    assert store.create_conversation(title="next", model=None, system_prompt=None) > gone


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get_conversation(42),
        lambda s: s.add_message(42, "user", "x"),
        lambda s: s.rename_conversation(42, "x"),
        lambda s: s.set_system_prompt(42, "x"),
        lambda s: s.delete_conversation(42),
    ],
    ids=["get", "add_message", "rename", "set_system_prompt", "delete"],
)
def test_unknown_conversation(store: Store, call) -> None:
    with pytest.raises(ConversationNotFound) as err:
        call(store)
    assert str(err.value) == "no conversation 42 in the history (see: reflectchat history list)"
    assert isinstance(err.value, StoreError)
    assert store.list_conversations() == []  # nothing half-written


# -- titles ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("Is 9.11 bigger than 9.9?", "Is 9.11 bigger than 9.9?"),
        ("\n\n   \n  first   real\tline  \nsecond line", "first real line"),
        ("\r\n\rmac\rline", "mac"),
        ("\x1b[31mred\x1b[0m \x1b]0;evil title\x07ok\x07\x00", "red ok"),
        ("\x1b[2J\n\x7f\x9b1m\nafter controls", "after controls"),
        ("\u202eevil\u202c name", "evil name"),
        ("", UNTITLED),
        ("  \n\t\n \x1b[0m \n", UNTITLED),
        ("x" * 200, "x" * (TITLE_MAX - 1) + "…"),
        (
            "How do I write a function that reverses a linked list in place without recursion?",
            "How do I write a function that reverses a linked list in…",
        ),
        ("a" * 59 + " tail", "a" * 59 + "…"),
        ("a" * 60, "a" * 60),
        ("short " * 9 + "words", "short short short short short short short short short words"),
    ],
)
def test_title_from(text: str, title: str) -> None:
    assert Store.title_from(text) == title


@given(st.text())
def test_title_is_always_one_clean_short_line(text: str) -> None:
    title = Store.title_from(text)
    assert 0 < len(title) <= TITLE_MAX
    assert title == title.strip()
    assert "  " not in title
    assert not any(ch.isspace() and ch != " " for ch in title)
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in title)


# -- schema, pragmas, opening ---------------------------------------------------------------


def test_default_path_is_in_the_data_dir(isolated_home: Path) -> None:
    assert not data_dir().exists()
    with Store() as s:
        assert s.path == data_dir() / DB_FILENAME
        assert str(s.path).startswith(str(isolated_home))
    assert (data_dir() / DB_FILENAME).is_file()


def test_new_empty_file_gets_the_current_schema(db: Path) -> None:
    db.touch()  # a v0, zero-byte file
    with Store(db) as s:
        assert s._conn is not None
        assert s._conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert SCHEMA_VERSION == 3
    assert raw(db, "PRAGMA user_version") == [(3,)]
    assert raw(db, "PRAGMA application_id") == [(APPLICATION_ID,)]
    names = {n for (n,) in raw(db, "SELECT name FROM sqlite_master")}
    assert {"conversations", "messages", "conversations_by_updated"} <= names
    assert raw(db, "PRAGMA integrity_check") == [("ok",)]


def test_pragmas(store: Store, db: Path) -> None:
    conn = store._conn
    assert conn is not None
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert conn.execute("PRAGMA busy_timeout").fetchone() == (5000,)
    assert conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    assert raw(db, "PRAGMA journal_mode") == [("wal",)]  # persistent, in the file


def test_opening_a_current_history_writes_nothing(db: Path) -> None:
    with Store(db) as s:
        s.add_message(s.create_conversation(title="t", model=None, system_prompt=None), "user", "x")
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    for _ in range(3):
        Store(db).close()
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before


def test_newer_schema_is_refused_and_left_untouched(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE future (x)")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    with pytest.raises(StoreError) as err:
        Store(db)
    text = one_line_naming(err, db)
    assert "newer reflectchat" in text
    assert "upgrade" in text
    assert db.read_bytes() == before
    assert sorted(p.name for p in db.parent.iterdir()) == [db.name]


def test_another_programs_database_is_refused_and_left_untouched(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE contacts (name)")
    conn.execute("INSERT INTO contacts VALUES ('ada')")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    with pytest.raises(StoreError) as err:
        Store(db)
    assert "not a readable reflectchat history" in one_line_naming(err, db)
    assert db.read_bytes() == before
    assert raw(db, "PRAGMA journal_mode") == [("delete",)]


def test_concurrent_first_opens_migrate_once(db: Path) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def open_and_write() -> None:
        try:
            barrier.wait()  # all open the brand-new file at the same moment
            with Store(db) as s:
                s.create_conversation(title="t", model=None, system_prompt=None)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_and_write) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert raw(db, "SELECT COUNT(*) FROM conversations") == [(6,)]


def test_closed_store(db: Path) -> None:
    s = Store(db)
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        s.list_conversations()


def test_one_store_from_several_threads(store: Store) -> None:
    cid = store.create_conversation(title="t", model=None, system_prompt=None)

    def write(tag: str) -> None:
        for i in range(50):
            store.add_message(cid, "user", f"{tag}{i}")

    threads = [threading.Thread(target=write, args=(tag,)) for tag in "abcd"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [m.seq for m in store.get_conversation(cid).messages] == list(range(1, 201))


# -- faults ---------------------------------------------------------------------------------


def test_file_that_is_not_sqlite_is_refused_and_left_untouched(db: Path) -> None:
    db.write_bytes(b"this is my shopping list, not a database\n" * 50)
    before = db.read_bytes()
    with pytest.raises(StoreError) as err:
        Store(db)
    text = one_line_naming(err, db)
    assert "is not a readable reflectchat history" in text
    assert "move it aside" in text
    assert "left untouched" in text
    assert db.read_bytes() == before
    assert sorted(p.name for p in db.parent.iterdir()) == [db.name]  # no -wal/-shm litter


def test_corrupt_history_is_refused_and_left_untouched(db: Path) -> None:
    with Store(db) as s:
        cid = s.create_conversation(title="t", model=None, system_prompt=None)
        for i in range(200):
            s.add_message(cid, "user", f"message {i} " * 20)
    data = bytearray(db.read_bytes())
    page = 4096
    data[page : 8 * page] = b"\xde\xad\xbe\xef" * (7 * page // 4)  # trash pages 2..8
    db.write_bytes(bytes(data))
    before = db.read_bytes()
    with pytest.raises(StoreError) as err, Store(db) as s:  # at open, or at the first read
        s.get_conversation(cid)
    text = one_line_naming(err, db)
    assert "is not a readable reflectchat history" in text
    assert "move it aside" in text
    assert db.read_bytes() == before


def test_data_folder_that_cannot_be_created(isolated_home: Path) -> None:
    isolated_home.mkdir()
    (isolated_home / "data").write_text("a file where the data folder should be")
    with pytest.raises(StoreError) as err:
        Store()
    text = one_line_naming(err, isolated_home / "data" / DB_FILENAME)
    assert "cannot write" in text
    assert "REFLECTCHAT_HOME" in text
    assert (isolated_home / "data").read_text() == "a file where the data folder should be"


def test_database_path_that_is_a_folder(db: Path) -> None:
    db.mkdir()
    with pytest.raises(StoreError) as err:
        Store(db)
    text = one_line_naming(err, db)
    assert "cannot write" in text
    assert "permissions" in text


def test_read_only_database(store: Store, db: Path) -> None:
    cid = store.create_conversation(title="t", model=None, system_prompt=None)
    store.add_message(cid, "user", "before")
    writable = store._conn
    # A real read-only handle on the same file: SQLite itself refuses the write.
    store._conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    try:
        with pytest.raises(StoreError) as err:
            store.add_message(cid, "user", "after")
        text = one_line_naming(err, db)
        assert "cannot write" in text
        assert "REFLECTCHAT_HOME" in text
        assert [m.content for m in store.get_conversation(cid).messages] == ["before"]
    finally:
        store._conn.close()
        store._conn = writable
    store.add_message(cid, "user", "after")


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores file permissions"
)
def test_read_only_data_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(StoreError) as err:
            Store(folder / DB_FILENAME)
        assert "cannot write" in one_line_naming(err, folder / DB_FILENAME)
    finally:
        folder.chmod(0o700)


def test_disk_full_keeps_earlier_messages(store: Store, db: Path) -> None:
    cid = store.create_conversation(title="t", model=None, system_prompt=None)
    store.add_message(cid, "user", "first")
    store.add_message(cid, "assistant", "second")
    conn = store._conn
    assert conn is not None
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages}")  # the "disk" is now exactly full
    with pytest.raises(StoreError) as err:
        store.add_message(cid, "user", "x" * 200_000)
    text = one_line_naming(err, db)
    assert f"the disk is full: free space at {db.parent}" in text
    assert [m.content for m in store.get_conversation(cid).messages] == ["first", "second"]
    with pytest.raises(StoreError, match="disk is full"):
        store.create_conversation(title="y" * 100_000, model=None, system_prompt=None)
    conn.execute("PRAGMA max_page_count = 1073741823")  # space freed: writing works again
    assert store.add_message(cid, "user", "third").seq == 3
    assert raw(db, "PRAGMA integrity_check") == [("ok",)]


LOCK_HOLDER = """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    hold = float(sys.argv[2])
    if hold > 0:
        time.sleep(hold)
    else:
        sys.stdin.readline()
    conn.execute("COMMIT")
"""


def test_history_locked_by_another_process(db: Path) -> None:
    with Store(db) as s:
        cid = s.create_conversation(title="t", model=None, system_prompt=None)
        s.add_message(cid, "user", "before")
    holder = python(LOCK_HOLDER, str(db), "0", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "locked"
        with Store(db, busy_timeout_s=0.2) as s:  # opening and reading still work (WAL)
            assert [c.id for c in s.list_conversations()] == [cid]
            start = time.monotonic()
            with pytest.raises(StoreError) as err:
                s.add_message(cid, "user", "blocked")
            waited = time.monotonic() - start
            text = one_line_naming(err, db)
            assert "another reflectchat process" in text
            assert 0.15 <= waited < 5
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert holder.wait(timeout=30) == 0
            s.add_message(cid, "user", "after")
            assert [m.content for m in s.get_conversation(cid).messages] == ["before", "after"]
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_a_short_lock_is_waited_out(db: Path) -> None:
    with Store(db) as s:
        cid = s.create_conversation(title="t", model=None, system_prompt=None)
    holder = python(LOCK_HOLDER, str(db), "0.5", stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with Store(db, busy_timeout_s=10) as s:
            s.add_message(cid, "user", "waited")
            assert [m.content for m in s.get_conversation(cid).messages] == ["waited"]
    finally:
        holder.wait(timeout=30)


@settings(max_examples=300)
@given(
    haystack=st.text(alphabet=st.sampled_from("aAßSsΣσς \n\t\r\x1bk\u212a")),
    needle=st.text(alphabet=st.sampled_from("aAßSsΣσς \n\tk")),
)
def test_search_match_is_folded_substring(haystack: str, needle: str) -> None:
    # The fast path in icontains must agree with the plain definition.
    folded = fold(needle)
    assert icontains(haystack, folded) == (folded in fold(haystack))


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("database is locked", "another reflectchat process"),
        ("database or disk is full", "the disk is full"),
        ("file is not a database", "not a readable reflectchat history"),
        ("database disk image is malformed", "not a readable reflectchat history"),
        ("attempt to write a readonly database", "cannot write"),
        ("unable to open database file", "cannot write"),
        ("disk I/O error", "check the disk"),
    ],
)
def test_errors_are_classified_from_their_text_too(
    store: Store, db: Path, message: str, expected: str
) -> None:
    # Python 3.10 has no sqlite_errorcode on exceptions; the text must be enough.
    exc = sqlite3.OperationalError(message)
    assert getattr(exc, "sqlite_errorcode", None) is None
    text = str(store._error(exc))
    assert expected in text
    assert str(db) in text
    assert "\n" not in text


# -- concurrent processes and crashes -------------------------------------------------------

WRITER = """
    import sys, time
    from pathlib import Path
    from reflectchat.core.chat.store import Store
    db, shared, go, tag = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    with Store(db) as store:
        print("ready", flush=True)
        while not go.exists():
            time.sleep(0.001)
        own = store.create_conversation(title=tag, model=None, system_prompt=None)
        for i in range(100):
            store.add_message(shared, "user", f"{tag} {i}")
            store.add_message(own, "assistant", f"{tag} {i}")
    print(own, flush=True)
"""


def test_concurrent_writers_lose_nothing(db: Path, tmp_path: Path) -> None:
    with Store(db) as s:
        shared = s.create_conversation(title="shared", model=None, system_prompt=None)
    go = tmp_path / "go"
    tags = ["w0", "w1", "w2", "w3"]
    procs = [
        python(WRITER, str(db), str(shared), str(go), tag, stdout=subprocess.PIPE) for tag in tags
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        go.touch()  # all four start appending at the same moment
        outs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    own_ids = [int(out.strip()) for out in outs]

    with Store(db) as s:
        msgs = s.get_conversation(shared).messages
        assert [m.seq for m in msgs] == list(range(1, 401))
        for tag in tags:  # each writer's messages are all there, in its own order
            assert [m.content for m in msgs if m.content.startswith(tag + " ")] == [
                f"{tag} {i}" for i in range(100)
            ]
        for tag, own in zip(tags, own_ids, strict=True):
            conv = s.get_conversation(own)
            assert conv.summary.title == tag
            assert [m.seq for m in conv.messages] == list(range(1, 101))
            assert [m.content for m in conv.messages] == [f"{tag} {i}" for i in range(100)]
    assert raw(db, "SELECT COUNT(*) FROM messages") == [(800,)]
    assert raw(db, "PRAGMA integrity_check") == [("ok",)]


APPENDER = """
    import sys
    from pathlib import Path
    from reflectchat.core.chat.store import Store
    store = Store(Path(sys.argv[1]))
    cid = int(sys.argv[2])
    sections = [{"kind": "thinking", "text": "t" * 5000}, {"kind": "output", "text": "o"}]
    i = 0
    while True:
        m = store.add_message(cid, "assistant", f"{i} " + "x" * 20000, sections=sections)
        print(m.id, flush=True)  # only after add_message returned, i.e. after COMMIT
        i += 1
"""


def test_kill_9_mid_write_loses_nothing_committed(db: Path) -> None:
    with Store(db) as s:
        cid = s.create_conversation(title="t", model=None, system_prompt=None)
    reported: list[int] = []
    for kill_after in (25, 60, 110):  # three crashes into the same history
        child = python(APPENDER, str(db), str(cid), stdout=subprocess.PIPE)
        assert child.stdout is not None
        try:
            while len(reported) < kill_after:
                line = child.stdout.readline()
                assert line, "the appender died on its own"
                reported.append(int(line))
        finally:
            child.kill()  # SIGKILL on POSIX: no cleanup, no rollback, mid-write
            child.wait()
        rest = child.stdout.read()
        reported += [int(line) for line in rest.splitlines(keepends=True) if line.endswith("\n")]
        child.stdout.close()

        assert raw(db, "PRAGMA integrity_check") == [("ok",)]
        with Store(db) as s:
            msgs = s.get_conversation(cid).messages
        ids = {m.id for m in msgs}
        assert set(reported) <= ids
        assert [m.seq for m in msgs] == list(range(1, len(msgs) + 1))
        assert all(m.sections and m.sections[0]["text"] == "t" * 5000 for m in msgs)


def test_delete_last_reply_only_removes_a_trailing_assistant_message(tmp_path: Path) -> None:
    with Store(tmp_path / "h.sqlite3") as store:
        cid = store.create_conversation(title="t", model=None, system_prompt=None)
        store.add_message(cid, "user", "q")
        assert store.delete_last_reply(cid) is False  # the last message is the user's
        store.add_message(cid, "assistant", "a1", answer="a1")
        assert store.delete_last_reply(cid) is True
        assert [m.role for m in store.get_conversation(cid).messages] == ["user"]
        again = store.add_message(cid, "assistant", "a2", answer="a2")
        assert again.seq == 2  # the next reply takes the freed place


# -- huge ids, damaged cells, old files, full disks, turn order -----------------------------


def test_an_id_past_64_bits_is_not_found_rather_than_overflowing(store: Store) -> None:
    cid = store.create_conversation(title="t", model=None, system_prompt=None)
    store.add_message(cid, "user", "kept")
    huge = 2**70
    for call in (
        lambda: store.get_conversation(huge),
        lambda: store.get_conversation(-huge),
        lambda: store.add_message(huge, "user", "x"),
        lambda: store.rename_conversation(huge, "x"),
        lambda: store.set_system_prompt(huge, "x"),
        lambda: store.delete_conversation(huge),
    ):
        with pytest.raises(ConversationNotFound, match=str(huge)):
            call()
    assert store.delete_last_reply(huge) is False
    # A reply against a message id that cannot exist simply joins the latest turn.
    assert store.add_message(cid, "assistant", "a", reply_to=huge).turn == 1
    assert [m.content for m in store.get_conversation(cid).messages] == ["kept", "a"]


def test_a_bad_cell_damages_only_its_field(store: Store, db: Path, isolated_home: Path) -> None:
    cid = store.create_conversation(title="Damaged", model=None, system_prompt=None)
    store.add_message(cid, "user", "first question")
    hurt = store.add_message(
        cid, "assistant", RAW, sections=SECTIONS, answer="9.9 is bigger.", params=PARAMS,
        stats=STATS, finish_reason="stop",
    )  # fmt: skip
    store.add_message(cid, "user", "second question")
    fine = store.add_message(cid, "assistant", "<output>ok</output>", sections=SECTIONS)
    # Another tool (or a bad sector) mangles the cells of one message.
    conn = sqlite3.connect(db)
    conn.execute(
        "UPDATE messages SET sections = '[{\"kind\": \"thinking\"', params = '[1, 2]',"
        " stats = CAST(x'ff7b' AS TEXT), finish_reason = CAST(x'c3' AS TEXT) WHERE id = ?",
        (hurt.id,),
    )
    conn.commit()
    conn.close()
    messages = store.get_conversation(cid).messages
    assert [m.content for m in messages] == [
        "first question", RAW, "second question", "<output>ok</output>",
    ]  # fmt: skip
    got = messages[1]
    assert got.damaged == ("sections", "params", "stats")
    assert (got.sections, got.params, got.stats) == (None, None, None)
    assert got.answer == "9.9 is bigger."
    assert got.finish_reason == "\ufffd"  # not UTF-8: read with a replacement character
    assert messages[3] == fine
    # ...and the history commands show what can be read.
    env = run_env(REFLECTCHAT_HOME=str(isolated_home))
    home_db = data_dir() / DB_FILENAME
    home_db.parent.mkdir(parents=True)
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{db}{suffix}").exists():
            Path(f"{home_db}{suffix}").write_bytes(Path(f"{db}{suffix}").read_bytes())
    for args in (("history", "show", str(cid)), ("history", "export", str(cid))):
        done = subprocess.run(cli(*args), capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "9.9 is bigger." in done.stdout and "second question" in done.stdout
        assert "Traceback" not in done.stderr


def _v1_history(db: Path) -> None:
    """A history as reflectchat wrote it before messages had turns: schema v1."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO conversations (title, model, system_prompt, created_at, updated_at)"
        " VALUES ('Old chat', 'smollm2', NULL, 1, 2), ('Replies only', NULL, NULL, 1, 1)"
    )
    for cid, seq, role, content in [
        (1, 1, "user", "old question one"),
        (1, 2, "assistant", "old answer one"),
        (1, 3, "user", "old question two"),
        (1, 4, "assistant", "old answer two"),
        (2, 1, "assistant", "a reply before any question"),
    ]:
        conn.execute(
            "INSERT INTO messages (conversation_id, seq, role, content, created_at)"
            " VALUES (?, ?, ?, ?, 1)",
            (cid, seq, role, content),
        )
    conn.close()  # the last connection checkpoints: a clean, WAL-mode file


def test_an_old_history_is_read_as_is_and_migrated_by_the_first_write(db: Path) -> None:
    _v1_history(db)
    before = db.read_bytes()
    with Store(db) as s:  # reading never migrates
        messages = s.get_conversation(1).messages
        assert [(m.content, m.turn) for m in messages] == [
            ("old question one", 1), ("old answer one", 1),
            ("old question two", 2), ("old answer two", 2),
        ]  # fmt: skip
        assert [c.title for c in s.list_conversations()] == ["Old chat", "Replies only"]
        assert [c.id for c, _ in s.search("question two")] == [1]
    assert db.read_bytes() == before
    assert raw(db, "PRAGMA user_version") == [(1,)]
    with Store(db) as s:
        s.add_message(2, "user", "a new question")
        assert raw(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert [(m.content, m.turn) for m in s.get_conversation(1).messages] == [
            ("old question one", 1), ("old answer one", 1),
            ("old question two", 2), ("old answer two", 2),
        ]  # fmt: skip
        assert [(m.content, m.turn) for m in s.get_conversation(2).messages] == [
            ("a reply before any question", 0), ("a new question", 1),
        ]  # fmt: skip
    assert raw(db, "SELECT turn FROM messages ORDER BY id") == [(1,), (1,), (2,), (2,), (0,), (1,)]
    assert raw(db, "PRAGMA integrity_check") == [("ok",)]


def test_a_full_disk_still_reads_and_says_the_disk_is_full(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _v1_history(db)  # needs a migration, which must not stop reading
    (pages,) = raw(db, "PRAGMA page_count")[0]
    connect = Store._connect

    def full_disk(self: Store) -> sqlite3.Connection:
        conn = connect(self)
        conn.execute(f"PRAGMA max_page_count = {pages}")  # the file cannot grow: disk full
        return conn

    monkeypatch.setattr(Store, "_connect", full_disk)
    with Store(db) as s:
        assert [c.title for c in s.list_conversations()] == ["Old chat", "Replies only"]
        assert s.latest_conversation_id() == 1
        assert len(s.get_conversation(1).messages) == 4
        assert [c.id for c, _ in s.search("answer one")] == [1]
        with pytest.raises(StoreError) as err:
            s.add_message(1, "user", "x" * 100_000)
        text = one_line_naming(err, db)
        assert text.startswith(f"the disk is full: free space at {db.parent} ")
        assert "I/O" not in text
        assert len(s.get_conversation(1).messages) == 4  # nothing half-written
    monkeypatch.setattr(Store, "_connect", connect)  # space freed
    with Store(db) as s:
        assert s.add_message(1, "user", "x" * 100_000).turn == 3
    assert raw(db, "PRAGMA integrity_check") == [("ok",)]


FULL_TMPFS = """
    set -e
    mount -t tmpfs -o size=256k tmpfs "$HOME_DIR"
    mkdir -p "$HOME_DIR/data"
    cp "$SOURCE" "$HOME_DIR/data/history.sqlite3"
    head -c 1048576 /dev/zero > "$HOME_DIR/filler" 2>/dev/null || true
    "$PYTHON" -m reflectchat history list
    "$PYTHON" -c "$WRITE"
"""
WRITE_ON_FULL_DISK = """
from reflectchat.core.chat.store import Store, StoreError
try:
    Store().add_message(1, "user", "x" * 100_000)
except StoreError as exc:
    print(exc)
"""


def test_a_really_full_disk_lists_the_history(tmp_path: Path) -> None:
    # A real ENOSPC: a 256 KiB tmpfs in a user + mount namespace (no root needed where the
    # kernel allows unprivileged namespaces). SQLite then cannot create the -shm index.
    unshare = shutil.which("unshare")
    probe = subprocess.run([unshare, "-rm", "true"], capture_output=True) if unshare else None
    if probe is None or probe.returncode != 0:
        pytest.skip("unprivileged user and mount namespaces (unshare -rm) are not available")
    source = tmp_path / "source.sqlite3"
    with Store(source) as s:
        cid = s.create_conversation(title="Survives a full disk", model=None, system_prompt=None)
        for i in range(20):
            s.add_message(cid, "user", f"message {i}")
    home = tmp_path / "home"
    home.mkdir()
    env = run_env(
        HOME_DIR=str(home), SOURCE=str(source), PYTHON=sys.executable,
        WRITE=WRITE_ON_FULL_DISK, REFLECTCHAT_HOME=str(home),
    )  # fmt: skip
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", textwrap.dedent(FULL_TMPFS)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Survives a full disk" in done.stdout
    assert f"the disk is full: free space at {home / 'data'}" in done.stdout
    assert "I/O" not in done.stdout + done.stderr


def test_a_late_reply_keeps_its_turn(db: Path) -> None:
    # Threads with their own Store: the first reply is stored after the second question.
    with Store(db) as s:
        cid = s.create_conversation(title="t", model=None, system_prompt=None)
    with Store(db) as a, Store(db) as b:
        qa = a.add_message(cid, "user", "A asks")
        qb = b.add_message(cid, "user", "B asks")
        b.add_message(cid, "assistant", "B's answer", reply_to=qb.id)
        a.add_message(cid, "assistant", "A's answer", reply_to=qa.id)
        b.add_message(cid, "user", "B asks again")
        b.add_message(cid, "assistant", "B's second answer")  # no reply_to: the latest turn
        messages = a.get_conversation(cid).messages
        assert [m.content for m in messages] == [
            "A asks", "A's answer", "B asks", "B's answer", "B asks again", "B's second answer",
        ]  # fmt: skip
        assert [m.turn for m in messages] == [1, 1, 2, 2, 3, 3]
        assert [m.seq for m in messages] == [1, 4, 2, 3, 5, 6]  # seq stays arrival order
        # Regenerating A's reply removes A's reply, not the conversation's last message.
        assert a.delete_last_reply(cid, reply_to=qa.id) is True
        assert "A's answer" not in [m.content for m in b.get_conversation(cid).messages]
        assert a.delete_last_reply(cid) is True  # the last message in turn order
        assert [m.content for m in b.get_conversation(cid).messages][-1] == "B asks again"
