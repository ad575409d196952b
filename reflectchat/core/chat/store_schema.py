"""The history's tables, and the migrations that bring an older file up to them.

Migrations are numbered by `PRAGMA user_version`; the header check refuses files that are newer
than this code or not ours before anything could write to them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reflectchat.core.chat.store_errors import StoreError, not_readable

# Marks the file as ours ("RCHT"), so a stranger's SQLite file is never migrated into.
APPLICATION_ID = 0x52434854

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
    (
        # v3: files and piped text sent with a user message, as a JSON list of
        # {"name", "text"}, apart from the typed words (shown folded; the prompt is rebuilt).
        "ALTER TABLE messages ADD COLUMN attachments TEXT",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)
TURN_VERSION = 2  # the schema version that has messages.turn
ATTACHMENTS_VERSION = 3  # the schema version that has messages.attachments

SUMMARY_COLUMNS = """
    c.id, c.title, c.model, c.created_at, c.updated_at,
    (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id AND m.role = 'user')
"""
MESSAGE_COLUMNS = (
    "id, conversation_id, seq, role, content, sections, answer, model, params, finish_reason,"
    " stats, created_at"
)


def check_header(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version, after refusing files that are newer or not ours."""
    # One statement, so all three come from the same snapshot even while another process
    # is migrating the file.
    version, app_id, tables = conn.execute(
        "SELECT v.user_version, a.application_id, (SELECT COUNT(*) FROM sqlite_master)"
        " FROM pragma_user_version v, pragma_application_id a"
    ).fetchone()
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer reflectchat (history schema v{version}, this"
            f" one knows up to v{SCHEMA_VERSION}); upgrade reflectchat to use it — it was left"
            " untouched"
        )
    if version > 0 and app_id != APPLICATION_ID:
        raise StoreError(not_readable(path, "it belongs to another program"))
    if version == 0 and tables:  # version 0 should be a brand-new, empty file
        raise StoreError(not_readable(path, "it holds another program's tables"))
    return int(version)


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    # Re-read inside the write transaction: another process may have migrated meanwhile.
    version = check_header(conn, path)
    if version < SCHEMA_VERSION:
        for step in MIGRATIONS[version:]:
            for statement in step:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return SCHEMA_VERSION
