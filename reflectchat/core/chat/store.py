"""Conversation history in SQLite: `history list/show/export/rm/search` and `ask --continue`.

Every message is its own short `BEGIN IMMEDIATE … COMMIT`, in WAL mode, so a crash (even
`kill -9`) loses at most the message being written, and two reflectchat processes writing at once
queue up instead of losing anything. Failures become `StoreError`s whose text is one line: the
database file, what went wrong, what to do. Nothing here ever deletes or rewrites a file it cannot
read.

Opening is on the start-up path of `reflectchat ask`, so when the schema is current it costs a
few pragmas and one version read. Migrations (numbered by `PRAGMA user_version`) run with the
first write to a file older than this code, never on the read path: `history list` works on an
old file, a read-only one, or one on a full disk. When the disk is too full for SQLite's WAL
index (the -shm file), the history is read through a connection that keeps that index in memory.

Messages are ordered by turn, not by arrival: a user message opens a new turn when it is
committed, and a reply is stored against its user message, so two processes writing to one
conversation cannot interleave a slow reply after someone else's next question.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from reflectchat.core.paths import data_dir
from reflectchat.core.reply.sanitize import strip_controls

DB_FILENAME = "history.sqlite3"
# Marks the file as ours ("RCHT"), so a stranger's SQLite file is never migrated into.
APPLICATION_ID = 0x52434854
UNTITLED = "(untitled)"
TITLE_MAX = 60
SNIPPET_WIDTH = 80

_T = TypeVar("_T")

# Migration steps: MIGRATIONS[n] takes the schema from version n to n + 1. Append, never edit.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        # AUTOINCREMENT: a deleted conversation's id is never handed out again, so
        # `history rm 42` followed by a new chat cannot make "42" mean something else.
        """CREATE TABLE conversations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            title TEXT NOT NULL,
            model TEXT,
            system_prompt TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        "CREATE INDEX conversations_by_updated ON conversations (updated_at DESC, id DESC)",
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL
                REFERENCES conversations (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL,
            sections TEXT,
            answer TEXT,
            model TEXT,
            params TEXT,
            finish_reason TEXT,
            stats TEXT,
            created_at REAL NOT NULL,
            UNIQUE (conversation_id, seq)
        )""",
        # UNIQUE (conversation_id, seq) already indexes messages by conversation in order;
        # this one makes the per-conversation turn count an index-only scan.
        "CREATE INDEX messages_by_conversation_role ON messages (conversation_id, role)",
        f"PRAGMA application_id = {APPLICATION_ID}",
    ),
    (
        # v2: messages are ordered by (turn, seq). Existing messages get the turn their arrival
        # order implies: the number of user messages up to and including them.
        "ALTER TABLE messages ADD COLUMN turn INTEGER NOT NULL DEFAULT 0",
        """UPDATE messages SET turn = (
            SELECT COUNT(*) FROM messages u
            WHERE u.conversation_id = messages.conversation_id AND u.role = 'user'
                AND u.seq <= messages.seq
        )""",
        "CREATE INDEX messages_by_turn ON messages (conversation_id, turn, seq)",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)

ROLES = ("user", "assistant")

# SQLite primary result codes (Python 3.11+ exposes them on the exception; 3.10 gets text).
_SQLITE_PERM = 3
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26

# SQLite needs room for at least its WAL index (32 KiB) and a few pages; below this much free
# space an I/O error is the disk being full (SQLite itself only says "disk I/O error").
_FULL_BELOW_BYTES = 1 << 20
# Conversation ids are SQLite INTEGERs; anything outside cannot exist (and would overflow).
_ID_MIN, _ID_MAX = -(2**63), 2**63 - 1


class StoreError(Exception):
    """A history failure meant for people: one line naming the file and what to do."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code  # the SQLite primary result code, when SQLite failed


class ConversationNotFound(StoreError):
    def __init__(self, conversation_id: int) -> None:
        super().__init__(
            f"no conversation {conversation_id} in the history (see: reflectchat history list)"
        )
        self.conversation_id = conversation_id


@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: int
    seq: int
    role: str  # "user" | "assistant"
    content: str  # raw text exactly as the model wrote it (tags included) / the user's words
    sections: list[dict] | None  # [{"kind", "text"}] for assistant messages
    answer: str | None
    model: str | None
    params: dict | None  # sampling params used
    finish_reason: str | None  # "stop" | "length" | "cancelled" | "error"
    stats: dict | None
    created_at: float  # unix time
    turn: int = 0  # the user message's turn; its replies share it (0: replies before any)
    # Fields whose stored value could not be read (left None/empty rather than failing the
    # whole conversation); `content` is what a renderer falls back on.
    damaged: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConversationSummary:
    id: int
    title: str
    model: str | None
    created_at: float
    updated_at: float
    turns: int  # number of user messages


@dataclass(frozen=True)
class Conversation:
    summary: ConversationSummary
    system_prompt: str | None
    messages: list[StoredMessage]


_SUMMARY_COLUMNS = """
    c.id, c.title, c.model, c.created_at, c.updated_at,
    (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id AND m.role = 'user')
"""
_MESSAGE_COLUMNS = (
    "id, conversation_id, seq, role, content, sections, answer, model, params, finish_reason,"
    " stats, created_at"
)
_TURN_VERSION = 2  # the schema version that has messages.turn


class Store:
    """The conversation history. Not shared between processes; open one per process.

    Safe to use from several threads of one process (calls are serialized by a lock).
    """

    def __init__(self, path: Path | None = None, *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path) if path is not None else data_dir() / DB_FILENAME
        self._busy_timeout_s = max(0.0, busy_timeout_s)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._version = 0  # the file's schema version as last seen
        # Reading with the WAL index in memory (the disk was too full for the -shm file); such
        # a connection locks out other processes, so it is closed after every call.
        self._exclusive = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(_cannot_write(self.path, exc.strerror or str(exc))) from exc
        with self._lock:
            self._conn = self._open_connection()

    # -- opening -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, one transaction per call.
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        # Text that is not UTF-8 (written by another tool) is read with U+FFFD rather than
        # failing the whole query.
        conn.text_factory = _decode_text
        return conn

    def _open_connection(self) -> sqlite3.Connection:
        try:
            conn = self._configured(exclusive=False)
        except StoreError as exc:
            if exc.code not in (_SQLITE_IOERR, _SQLITE_FULL):
                raise
            # Opening a WAL file needs space for its -shm index (SQLITE_IOERR_SHMSIZE on a full
            # disk). In exclusive locking mode that index lives in memory instead.
            try:
                conn = self._configured(exclusive=True)
            except StoreError:
                raise exc from None  # the first failure is the one that explains
            self._exclusive = True
            return conn
        self._exclusive = False
        return conn

    def _configured(self, *, exclusive: bool) -> sqlite3.Connection:
        conn = self._connect()

        def check_and_configure() -> int:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            if exclusive:  # before the first read, or SQLite maps the -shm file anyway
                conn.execute("PRAGMA locking_mode = EXCLUSIVE")
            # Read the header before anything that could write, so a newer or foreign file is
            # refused without being touched. This read is also what detects "not a database".
            version = self._check_header(conn)
            conn.execute("PRAGMA journal_mode = WAL").fetchone()  # a no-op once the file is WAL
            conn.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; no fsync per commit
            conn.execute("PRAGMA foreign_keys = ON")
            return version

        try:
            self._version = self._retrying(check_and_configure)
            if self._version == 0:
                # A brand-new file: reads need the tables, so create them now. Older files are
                # migrated by the first write instead (see _write).
                self._version = self._transaction("BEGIN IMMEDIATE", self._migrate, conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_header(self, conn: sqlite3.Connection) -> int:
        """The schema version, after refusing files that are newer or not ours."""
        # One statement, so all three come from the same snapshot even while another process
        # is migrating the file.
        version, app_id, tables = conn.execute(
            "SELECT v.user_version, a.application_id, (SELECT COUNT(*) FROM sqlite_master)"
            " FROM pragma_user_version v, pragma_application_id a"
        ).fetchone()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer reflectchat (history schema v{version}, this"
                f" one knows up to v{SCHEMA_VERSION}); upgrade reflectchat to use it — it was left"
                " untouched"
            )
        if version > 0 and app_id != APPLICATION_ID:
            raise StoreError(_not_readable(self.path, "it belongs to another program"))
        if version == 0 and tables:  # version 0 should be a brand-new, empty file
            raise StoreError(_not_readable(self.path, "it holds another program's tables"))
        return int(version)

    def _migrate(self, conn: sqlite3.Connection) -> int:
        # Re-read inside the write transaction: another process may have migrated meanwhile.
        version = self._check_header(conn)
        if version < SCHEMA_VERSION:
            for step in MIGRATIONS[version:]:
                for statement in step:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return SCHEMA_VERSION

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                conn, self._conn = self._conn, None
                conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------

    def create_conversation(
        self, *, title: str, model: str | None, system_prompt: str | None
    ) -> int:
        def insert(conn: sqlite3.Connection) -> int:
            now = time.time()
            cur = conn.execute(
                "INSERT INTO conversations (title, model, system_prompt, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (_clean_title(title), model, system_prompt, now, _next_stamp(conn, now)),
            )
            return int(cur.lastrowid)  # type: ignore[arg-type]

        return self._write(insert)

    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        *,
        sections: list[dict] | None = None,
        answer: str | None = None,
        model: str | None = None,
        params: dict | None = None,
        finish_reason: str | None = None,
        stats: dict | None = None,
        reply_to: int | None = None,
    ) -> StoredMessage:
        """Append one message; it is committed (durable against crashes) when this returns.

        A user message opens the next turn. A reply joins the turn of `reply_to` (the id of
        the user message it answers), however late it arrives; without one (or when that
        message is gone) it joins the latest turn."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        _check_id(conversation_id)
        if reply_to is not None and not _ID_MIN <= reply_to <= _ID_MAX:
            reply_to = None
        encoded = (_to_json(sections), _to_json(params), _to_json(stats))

        def insert(conn: sqlite3.Connection) -> StoredMessage:
            now = time.time()
            # Touching the conversation checks that it exists. The seq is computed inside this
            # IMMEDIATE transaction (we hold the write lock), so concurrent writers can never
            # pick the same one.
            touched = conn.execute(
                "UPDATE conversations SET updated_at = ?, model = COALESCE(model, ?) WHERE id = ?",
                (_next_stamp(conn, now), model, conversation_id),
            ).rowcount
            if not touched:
                raise ConversationNotFound(conversation_id)
            seq, latest = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1, COALESCE(MAX(turn), 0) FROM messages"
                " WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()
            turn = latest + 1 if role == "user" else latest
            if role == "assistant" and reply_to is not None:
                asked = conn.execute(
                    "SELECT turn FROM messages WHERE id = ? AND conversation_id = ?"
                    " AND role = 'user'",
                    (reply_to, conversation_id),
                ).fetchone()
                if asked is not None:
                    turn = asked[0]
            row = (
                conversation_id, seq, role, content, encoded[0], answer, model, encoded[1],
                finish_reason, encoded[2], now, turn,
            )  # fmt: skip
            cur = conn.execute(
                "INSERT INTO messages (conversation_id, seq, role, content, sections, answer,"
                " model, params, finish_reason, stats, created_at, turn)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            return _message((cur.lastrowid, *row))

        return self._write(insert)

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        self._update(conversation_id, "title", _clean_title(title))

    def set_system_prompt(self, conversation_id: int, system_prompt: str | None) -> None:
        self._update(conversation_id, "system_prompt", system_prompt)

    def _update(self, conversation_id: int, column: str, value: object) -> None:
        # Metadata edits deliberately leave updated_at alone: renaming an old chat should not
        # make it the one `ask --continue` picks up.
        _check_id(conversation_id)

        def update(conn: sqlite3.Connection) -> None:
            sql = f"UPDATE conversations SET {column} = ? WHERE id = ?"
            if not conn.execute(sql, (value, conversation_id)).rowcount:
                raise ConversationNotFound(conversation_id)

        self._write(update)

    def delete_conversation(self, conversation_id: int) -> None:
        """Delete a conversation and (by ON DELETE CASCADE) its messages."""
        _check_id(conversation_id)

        def delete(conn: sqlite3.Connection) -> None:
            if not conn.execute(
                "DELETE FROM conversations WHERE id = ?", (conversation_id,)
            ).rowcount:
                raise ConversationNotFound(conversation_id)

        self._write(delete)

    def delete_last_reply(self, conversation_id: int, reply_to: int | None = None) -> bool:
        """Delete the conversation's last message if it is an assistant reply (regenerating
        replaces it); False when the last message is not a reply. With `reply_to` (a user
        message's id), delete the latest reply to that message instead, wherever it is."""
        if not _ID_MIN <= conversation_id <= _ID_MAX:
            return False

        def delete(conn: sqlite3.Connection) -> bool:
            if reply_to is not None:
                row = conn.execute(
                    "SELECT r.id, r.role FROM messages r JOIN messages u"
                    " ON u.conversation_id = r.conversation_id AND u.turn = r.turn"
                    " WHERE u.id = ? AND u.conversation_id = ? AND u.role = 'user'"
                    " AND r.role = 'assistant' ORDER BY r.seq DESC LIMIT 1",
                    (reply_to, conversation_id),
                ).fetchone()
            else:
                row = conn.execute(
                    "SELECT id, role FROM messages WHERE conversation_id = ?"
                    " ORDER BY turn DESC, seq DESC LIMIT 1",
                    (conversation_id,),
                ).fetchone()
            if row is None or row[1] != "assistant":
                return False
            conn.execute("DELETE FROM messages WHERE id = ?", (row[0],))
            return True

        return self._write(delete)

    # -- reading -------------------------------------------------------------------------

    def get_conversation(self, conversation_id: int) -> Conversation:
        """The conversation with its messages in turn order. A message field that cannot be
        read is left out (named in `damaged`) instead of failing the conversation."""
        _check_id(conversation_id)
        has_turns = self._version >= _TURN_VERSION

        def read(conn: sqlite3.Connection) -> Conversation:
            row = conn.execute(
                f"SELECT {_SUMMARY_COLUMNS}, c.system_prompt FROM conversations c WHERE c.id = ?",
                (conversation_id,),
            ).fetchone()
            if row is None:
                raise ConversationNotFound(conversation_id)
            rows = conn.execute(
                f"SELECT {_MESSAGE_COLUMNS}, {'turn' if has_turns else '0'} FROM messages"
                f" WHERE conversation_id = ? ORDER BY {'turn, seq' if has_turns else 'seq'}",
                (conversation_id,),
            ).fetchall()
            messages = [_message(m) for m in rows]
            if not has_turns:  # a file not yet migrated: the turns its arrival order implies
                turn = 0
                for i, m in enumerate(messages):
                    turn += m.role == "user"
                    messages[i] = replace(m, turn=turn)
            return Conversation(
                summary=ConversationSummary(*row[:6]),
                system_prompt=row[6],
                messages=messages,
            )

        # One read transaction, so the summary and the messages are the same snapshot.
        return self._read(read)

    def latest_conversation_id(self) -> int | None:
        """The most recently updated conversation (what `ask --continue` continues)."""
        row = self._read(
            lambda conn: conn.execute(
                "SELECT id FROM conversations ORDER BY updated_at DESC, id DESC LIMIT 1"
            ).fetchone()
        )
        return None if row is None else int(row[0])

    def list_conversations(self, limit: int | None = None) -> list[ConversationSummary]:
        """Newest (most recently updated) first."""
        rows = self._read(
            lambda conn: conn.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM conversations c"
                " ORDER BY c.updated_at DESC, c.id DESC LIMIT ?",
                (-1 if limit is None else max(0, limit),),
            ).fetchall()
        )
        return [ConversationSummary(*row) for row in rows]

    def search(self, text: str, limit: int = 50) -> list[tuple[ConversationSummary, str]]:
        """Conversations whose title or any message contains `text`, newest first, each with a
        one-line snippet around the first match: in the earliest matching message, or in the
        title when only the title matches.

        Matching ignores case (all of Unicode) and treats any run of whitespace as one space,
        so a phrase still matches where the model wrapped the line. Blank `text` matches
        nothing."""
        needle = _fold(text)
        if not needle:
            return []
        order = "turn, seq" if self._version >= _TURN_VERSION else "seq"

        def read(conn: sqlite3.Connection) -> list[tuple[ConversationSummary, str]]:
            # SQLite's LIKE/lower() only fold ASCII; a Python function folds all of Unicode.
            conn.create_function("rc_icontains", 2, _icontains, deterministic=True)
            rows = conn.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM conversations c"
                " WHERE rc_icontains(c.title, :q) OR EXISTS (SELECT 1 FROM messages m"
                "   WHERE m.conversation_id = c.id AND rc_icontains(m.content, :q))"
                " ORDER BY c.updated_at DESC, c.id DESC LIMIT :limit",
                {"q": needle, "limit": max(0, limit)},
            ).fetchall()
            found = []
            for row in rows:
                summary = ConversationSummary(*row)
                hit = conn.execute(
                    "SELECT content FROM messages WHERE conversation_id = ?"
                    f" AND rc_icontains(content, ?) ORDER BY {order} LIMIT 1",
                    (summary.id, needle),
                ).fetchone()
                found.append((summary, _snippet(hit[0] if hit else summary.title, text)))
            return found

        return self._read(read)

    # -- titles --------------------------------------------------------------------------

    @staticmethod
    def title_from(text: str) -> str:
        """A title from the first user message: its first non-empty line, control characters
        and escape sequences removed, whitespace collapsed, cut at a word boundary so that it
        is at most TITLE_MAX characters (ending in "…" when cut)."""
        for line in _lines(text):
            flat = " ".join(line.split())
            if flat:
                return _shorten(flat, TITLE_MAX)
        return UNTITLED

    # -- transactions and errors ---------------------------------------------------------

    def _require_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            if self._closed:
                raise StoreError(f"{self.path}: the history is closed (this is a reflectchat bug)")
            self._conn = self._open_connection()  # after an exclusive (full-disk) call
        return self._conn

    def _write(self, body: Callable[[sqlite3.Connection], _T]) -> _T:
        # IMMEDIATE takes the write lock up front, so a transaction never has to upgrade from
        # read to write halfway (which fails with "locked" at once, bypassing the busy timeout).
        def migrated_then(conn: sqlite3.Connection) -> _T:
            # An older file is migrated by its first write, in the same transaction, so a
            # read-only or full disk never stops reading it.
            if self._version < SCHEMA_VERSION:
                self._migrate(conn)
            return body(conn)

        result = self._transaction("BEGIN IMMEDIATE", migrated_then)
        self._version = SCHEMA_VERSION
        return result

    def _read(self, body: Callable[[sqlite3.Connection], _T]) -> _T:
        return self._transaction("BEGIN", body)

    def _transaction(
        self,
        begin: str,
        body: Callable[[sqlite3.Connection], _T],
        conn: sqlite3.Connection | None = None,
    ) -> _T:
        def attempt() -> _T:
            active = conn if conn is not None else self._require_conn()
            active.execute(begin)
            try:
                result = body(active)
                active.execute("COMMIT")
            except BaseException:
                if active.in_transaction:
                    with suppress(sqlite3.Error):
                        active.execute("ROLLBACK")
                raise
            return result

        try:
            return self._retrying(attempt)
        finally:
            if conn is None and self._exclusive and self._conn is not None:
                # Release the exclusive lock; the next call reopens, normally if space was freed.
                stale, self._conn = self._conn, None
                stale.close()

    def _retrying(self, attempt: Callable[[], _T]) -> _T:
        """Run `attempt`, retrying on SQLITE_BUSY until the busy timeout is used up in total.

        SQLite's own busy handler covers most waits; some "database is locked" errors come back
        at once anyway (WAL recovery, journal-mode changes), and those are retried here. An
        attempt is a whole transaction that was rolled back, so retrying never duplicates."""
        deadline = time.monotonic() + self._busy_timeout_s
        delay = 0.002
        with self._lock:
            while True:
                try:
                    return attempt()
                except sqlite3.ProgrammingError:
                    raise  # misuse, not a history problem
                except sqlite3.DatabaseError as exc:
                    remaining = deadline - time.monotonic()
                    if _code(exc) in (_SQLITE_BUSY, _SQLITE_LOCKED) and remaining > 0:
                        time.sleep(min(delay, remaining))
                        delay = min(delay * 2, 0.05)
                        continue
                    raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> StoreError:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        code = _code(exc)
        if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return StoreError(
                f"another reflectchat process is holding the history {self.path} (still locked"
                f" after {self._busy_timeout_s:g}s); let it finish or close it, then try again",
                code=code,
            )
        if code == _SQLITE_FULL or (code == _SQLITE_IOERR and self._disk_is_full()):
            return StoreError(
                f"the disk is full: free space at {self.path.parent} and try again (the history"
                f" {self.path} was not changed)",
                code=_SQLITE_FULL,
            )
        if code in (_SQLITE_NOTADB, _SQLITE_CORRUPT):
            return StoreError(_not_readable(self.path, detail), code=code)
        if code in (_SQLITE_READONLY, _SQLITE_CANTOPEN, _SQLITE_PERM):
            return StoreError(_cannot_write(self.path, detail), code=code)
        return StoreError(
            f"the history at {self.path} failed ({detail}); check the disk and its permissions,"
            " or set REFLECTCHAT_HOME to use another folder",
            code=code,
        )

    def _disk_is_full(self) -> bool:
        try:
            return shutil.disk_usage(self.path.parent).free < _FULL_BELOW_BYTES
        except OSError:
            return False


# -- helpers -----------------------------------------------------------------------------


def _code(exc: BaseException) -> int | None:
    """The primary SQLite result code of `exc` (from its text on Python 3.10)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF
    text = str(exc).lower()
    for needle, guess in (
        ("database is locked", _SQLITE_BUSY),
        ("table is locked", _SQLITE_LOCKED),
        ("disk is full", _SQLITE_FULL),
        ("not a database", _SQLITE_NOTADB),
        ("malformed", _SQLITE_CORRUPT),
        ("readonly database", _SQLITE_READONLY),
        ("unable to open", _SQLITE_CANTOPEN),
        ("disk i/o error", _SQLITE_IOERR),
    ):
        if needle in text:
            return guess
    return None


def _not_readable(path: Path, why: str) -> str:
    return (
        f"{path} is not a readable reflectchat history ({why}); move it aside to start a new"
        " history — it was left untouched"
    )


def _cannot_write(path: Path, why: str) -> str:
    return (
        f"cannot write the history at {path} ({why}); check the folder's permissions or set"
        " REFLECTCHAT_HOME to a writable folder"
    )


def _next_stamp(conn: sqlite3.Connection, now: float) -> float:
    """`now`, but strictly after every other conversation's updated_at, so "most recently
    updated" stays right with coarse clocks (Windows ticks ~16 ms) or a clock set back."""
    (latest,) = conn.execute("SELECT MAX(updated_at) FROM conversations").fetchone()
    return now if latest is None or now > latest else latest + 1e-6


def _to_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _check_id(conversation_id: int) -> None:
    # SQLite would raise OverflowError for an id past 64 bits; no such conversation can exist.
    if not _ID_MIN <= conversation_id <= _ID_MAX:
        raise ConversationNotFound(conversation_id)


def _decode_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


_MISSING = object()


def _json_cell(value: Any, kind: type) -> Any:
    """A JSON column's value, `_MISSING` when it is not valid JSON of the expected kind."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = _decode_text(value)
    if not isinstance(value, str):
        return _MISSING
    try:
        decoded: Any = json.loads(value)
    except (ValueError, RecursionError):
        return _MISSING
    if kind is list:  # sections: a list of {"kind": str, ...}
        good = isinstance(decoded, list) and all(
            isinstance(item, dict) and isinstance(item.get("kind"), str) for item in decoded
        )
    else:
        good = isinstance(decoded, kind)
    return decoded if good else _MISSING


def _text_cell(value: Any) -> Any:  # str, None or _MISSING
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return _decode_text(value)
    if isinstance(value, int | float):
        return str(value)
    return _MISSING


def _message(row: Sequence[Any]) -> StoredMessage:
    """One message row; a cell that cannot be read (another tool's edit, a bad byte on disk)
    becomes None and is named in `damaged`, so the rest of the conversation still shows."""
    (
        mid, cid, seq, role, content, sections, answer, model, params, finish, stats, created,
        turn,
    ) = row  # fmt: skip
    damaged: list[str] = []

    def cell(name: str, value: Any) -> Any:
        if value is _MISSING:
            damaged.append(name)
            return None
        return value

    text = cell("content", _text_cell(content))
    try:
        when = float(created)
    except (TypeError, ValueError):
        when = cell("created_at", _MISSING) or 0.0
    return StoredMessage(
        id=int(mid),
        conversation_id=int(cid),
        seq=int(seq),
        role=role,
        content=text if text is not None else "",
        sections=cell("sections", _json_cell(sections, list)),
        answer=cell("answer", _text_cell(answer)),
        model=cell("model", _text_cell(model)),
        params=cell("params", _json_cell(params, dict)),
        finish_reason=cell("finish_reason", _text_cell(finish)),
        stats=cell("stats", _json_cell(stats, dict)),
        created_at=when,
        turn=int(turn) if isinstance(turn, int) else 0,
        damaged=tuple(damaged),
    )


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


def _icontains(haystack: str | None, needle: str) -> bool:
    """`needle` (already `_fold`ed) occurs in `_fold(haystack)`."""
    if haystack is None:
        return False
    folded = haystack.casefold()
    # A plain hit is a hit after collapsing whitespace too; only a needle with spaces can need
    # the (slower) collapsed form, to match across wrapped lines.
    return needle in folded or (" " in needle and needle in " ".join(folded.split()))


# Bidi embeddings/overrides/isolates: invisible, but they reorder what a terminal shows.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def _lines(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # before \r is stripped as a control
    return _BIDI_CONTROLS.sub("", strip_controls(text)).splitlines()


def _one_line(text: str) -> str:
    return " ".join(" ".join(_lines(text)).split())


def _clean_title(title: str) -> str:
    return _one_line(title) or UNTITLED


def _shorten(text: str, width: int) -> str:
    """`text` cut to at most `width` characters, at a word boundary when there is a sensible
    one, ending in "…" when cut."""
    if len(text) <= width:
        return text
    cut = text.rfind(" ", 0, width)  # a space at index width-1 keeps width-1 chars + "…"
    end = cut if cut >= width // 2 else width - 1
    return text[:end].rstrip() + "…"


def _find_casefolded(text: str, needle: str) -> tuple[int, int]:
    """(start, end) in `text` of the first case-insensitive match of `needle`, or (-1, -1).

    Case folding can change lengths ("ß" -> "ss"), so positions are mapped back per character.
    """
    folded: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        low = ch.casefold()
        folded.append(low)
        origin.extend([i] * len(low))
    target = needle.casefold()
    pos = "".join(folded).find(target) if target else -1
    if pos < 0:
        return -1, -1
    return origin[pos], origin[pos + len(target) - 1] + 1


def _snippet(text: str, query: str, width: int = SNIPPET_WIDTH) -> str:
    """One line of about `width` characters of `text` around the first match of `query`."""
    flat = _one_line(text)
    start, end = _find_casefolded(flat, _one_line(query))
    if start < 0 or len(flat) <= width:
        return _shorten(flat, width)
    # A little context before the match, more after; `inner` leaves room for two "…".
    inner = width - 2
    lo = max(0, start - width // 4)
    hi = min(len(flat), lo + inner)
    lo = max(0, hi - inner)
    if lo > 0:
        space = flat.find(" ", lo, start)  # start on a word when that keeps the match
        if 0 <= space < lo + 15:
            lo = space + 1
    if hi < len(flat):
        space = flat.rfind(" ", end, hi)
        if space > hi - 15:
            hi = space
    return ("…" if lo > 0 else "") + flat[lo:hi].strip() + ("…" if hi < len(flat) else "")
