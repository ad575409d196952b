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

This module is the API; the tables and migrations are in store_schema, the stored records and
the decoding of their cells in store_rows, the errors in store_errors, titles and search
snippets in store_text.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from reflectchat.core.chat.attachments import Attachment
from reflectchat.core.chat.store_errors import (
    SQLITE_BUSY,
    SQLITE_FULL,
    SQLITE_IOERR,
    SQLITE_LOCKED,
    ConversationNotFound,
    StoreError,
    cannot_write,
    sqlite_code,
    store_error,
)
from reflectchat.core.chat.store_rows import (
    Conversation,
    ConversationSummary,
    StoredMessage,
    decode_text,
    message_from_row,
    to_json,
)
from reflectchat.core.chat.store_schema import (
    APPLICATION_ID,
    ATTACHMENTS_VERSION,
    MESSAGE_COLUMNS,
    MIGRATIONS,
    SCHEMA_VERSION,
    SUMMARY_COLUMNS,
    TURN_VERSION,
    check_header,
    migrate,
)
from reflectchat.core.chat.store_text import (
    TITLE_MAX,
    UNTITLED,
    clean_title,
    fold,
    icontains,
    snippet,
    title_from,
)
from reflectchat.core.paths import data_dir

# The names callers import from here, wherever they are defined.
__all__ = [
    "APPLICATION_ID",
    "DB_FILENAME",
    "MIGRATIONS",
    "ROLES",
    "SCHEMA_VERSION",
    "TITLE_MAX",
    "UNTITLED",
    "Conversation",
    "ConversationNotFound",
    "ConversationSummary",
    "Store",
    "StoreError",
    "StoredMessage",
]

DB_FILENAME = "history.sqlite3"

_T = TypeVar("_T")

ROLES = ("user", "assistant")

# Conversation ids are SQLite INTEGERs; anything outside cannot exist (and would overflow).
_ID_MIN, _ID_MAX = -(2**63), 2**63 - 1


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
            raise StoreError(cannot_write(self.path, exc.strerror or str(exc))) from exc
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
        conn.text_factory = decode_text
        return conn

    def _open_connection(self) -> sqlite3.Connection:
        try:
            conn = self._configured(exclusive=False)
        except StoreError as exc:
            if exc.code not in (SQLITE_IOERR, SQLITE_FULL):
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
        return check_header(conn, self.path)

    def _migrate(self, conn: sqlite3.Connection) -> int:
        return migrate(conn, self.path)

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
                (clean_title(title), model, system_prompt, now, _next_stamp(conn, now)),
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
        attachments: Sequence[Attachment] = (),
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
        encoded = (to_json(sections), to_json(params), to_json(stats))
        attached = to_json([a.to_dict() for a in attachments]) if attachments else None

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
                finish_reason, encoded[2], now, turn, attached,
            )  # fmt: skip
            cur = conn.execute(
                "INSERT INTO messages (conversation_id, seq, role, content, sections, answer,"
                " model, params, finish_reason, stats, created_at, turn, attachments)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            return message_from_row((cur.lastrowid, *row))

        return self._write(insert)

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        self._update(conversation_id, "title", clean_title(title))

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
        has_turns = self._version >= TURN_VERSION
        # A file not yet migrated (reads never migrate) has no attachments column: none.
        attached = "attachments" if self._version >= ATTACHMENTS_VERSION else "NULL"

        def read(conn: sqlite3.Connection) -> Conversation:
            row = conn.execute(
                f"SELECT {SUMMARY_COLUMNS}, c.system_prompt FROM conversations c WHERE c.id = ?",
                (conversation_id,),
            ).fetchone()
            if row is None:
                raise ConversationNotFound(conversation_id)
            rows = conn.execute(
                f"SELECT {MESSAGE_COLUMNS}, {'turn' if has_turns else '0'}, {attached}"
                " FROM messages"
                f" WHERE conversation_id = ? ORDER BY {'turn, seq' if has_turns else 'seq'}",
                (conversation_id,),
            ).fetchall()
            messages = [message_from_row(m) for m in rows]
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
                f"SELECT {SUMMARY_COLUMNS} FROM conversations c"
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
        needle = fold(text)
        if not needle:
            return []
        order = "turn, seq" if self._version >= TURN_VERSION else "seq"

        def read(conn: sqlite3.Connection) -> list[tuple[ConversationSummary, str]]:
            # SQLite's LIKE/lower() only fold ASCII; a Python function folds all of Unicode.
            conn.create_function("rc_icontains", 2, icontains, deterministic=True)
            rows = conn.execute(
                f"SELECT {SUMMARY_COLUMNS} FROM conversations c"
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
                found.append((summary, snippet(hit[0] if hit else summary.title, text)))
            return found

        return self._read(read)

    # -- titles --------------------------------------------------------------------------

    @staticmethod
    def title_from(text: str) -> str:
        """A title from the first user message (see store_text.title_from)."""
        return title_from(text)

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
                    if sqlite_code(exc) in (SQLITE_BUSY, SQLITE_LOCKED) and remaining > 0:
                        time.sleep(min(delay, remaining))
                        delay = min(delay * 2, 0.05)
                        continue
                    raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> StoreError:
        return store_error(exc, self.path, self._busy_timeout_s)


def _next_stamp(conn: sqlite3.Connection, now: float) -> float:
    """`now`, but strictly after every other conversation's updated_at, so "most recently
    updated" stays right with coarse clocks (Windows ticks ~16 ms) or a clock set back."""
    (latest,) = conn.execute("SELECT MAX(updated_at) FROM conversations").fetchone()
    return now if latest is None or now > latest else latest + 1e-6


def _check_id(conversation_id: int) -> None:
    # SQLite would raise OverflowError for an id past 64 bits; no such conversation can exist.
    if not _ID_MIN <= conversation_id <= _ID_MAX:
        raise ConversationNotFound(conversation_id)
