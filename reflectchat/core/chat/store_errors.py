"""History failures said for people: SQLite's errors mapped to one line naming the file and
what to do, a full disk told apart from other I/O errors."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

# A history failure (one line naming the file and what to do): its class is in the one root.
from reflectchat.core.errors import StoreError

# SQLite primary result codes (Python 3.11+ exposes them on the exception; 3.10 gets text).
SQLITE_PERM = 3
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_NOTADB = 26

# SQLite needs room for at least its WAL index (32 KiB) and a few pages; below this much free
# space an I/O error is the disk being full (SQLite itself only says "disk I/O error").
_FULL_BELOW_BYTES = 1 << 20


class ConversationNotFound(StoreError):
    def __init__(self, conversation_id: int) -> None:
        super().__init__(
            f"no conversation {conversation_id} in the history (see: reflectchat history list)"
        )
        self.conversation_id = conversation_id


def sqlite_code(exc: BaseException) -> int | None:
    """The primary SQLite result code of `exc` (from its text on Python 3.10)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF
    text = str(exc).lower()
    for needle, guess in (
        ("database is locked", SQLITE_BUSY),
        ("table is locked", SQLITE_LOCKED),
        ("disk is full", SQLITE_FULL),
        ("not a database", SQLITE_NOTADB),
        ("malformed", SQLITE_CORRUPT),
        ("readonly database", SQLITE_READONLY),
        ("unable to open", SQLITE_CANTOPEN),
        ("disk i/o error", SQLITE_IOERR),
    ):
        if needle in text:
            return guess
    return None


def store_error(exc: sqlite3.Error, path: Path, busy_timeout_s: float) -> StoreError:
    """What a SQLite failure on the history at `path` means for people."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    code = sqlite_code(exc)
    if code in (SQLITE_BUSY, SQLITE_LOCKED):
        return StoreError(
            f"another reflectchat process is holding the history {path} (still locked"
            f" after {busy_timeout_s:g}s); let it finish or close it, then try again",
            code=code,
        )
    if code == SQLITE_FULL or (code == SQLITE_IOERR and disk_is_full(path.parent)):
        return StoreError(
            f"the disk is full: free space at {path.parent} and try again (the history"
            f" {path} was not changed)",
            code=SQLITE_FULL,
        )
    if code in (SQLITE_NOTADB, SQLITE_CORRUPT):
        return StoreError(not_readable(path, detail), code=code)
    if code in (SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_PERM):
        return StoreError(cannot_write(path, detail), code=code)
    return StoreError(
        f"the history at {path} failed ({detail}); check the disk and its permissions,"
        " or set REFLECTCHAT_HOME to use another folder",
        code=code,
    )


def disk_is_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < _FULL_BELOW_BYTES
    except OSError:
        return False


def not_readable(path: Path, why: str) -> str:
    return (
        f"{path} is not a readable reflectchat history ({why}); move it aside to start a new"
        " history — it was left untouched"
    )


def cannot_write(path: Path, why: str) -> str:
    return (
        f"cannot write the history at {path} ({why}); check the folder's permissions or set"
        " REFLECTCHAT_HOME to a writable folder"
    )
