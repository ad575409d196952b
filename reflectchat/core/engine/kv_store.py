"""Saved KV caches, one per conversation, so `ask -c` in a new process (or the chat app reopening
a conversation) evaluates only what the conversation added since its last turn instead of the
whole history — for a 70B model that is minutes of prompt evaluation per turn.

A file holds llama.cpp's state of sequence 0 (`llama_state_seq_get_data`) and the tokens it
covers, under a header naming what it is only valid for: the model file (path, size, mtime),
the context size and the llama-cpp-python version. It is used only when all of those match and
its tokens are a prefix of the new prompt's; anything else (another model, a damaged or
truncated file, a checksum mismatch, a file that isn't ours) is ignored, with a note under
--debug, and the prompt is evaluated as usual. Files are written atomically (a temporary file,
then a rename) and the folder is kept under a size cap (`kv_cache_mb` in the config) by
deleting the least recently used. No fsync: a file torn by a crash fails its size or CRC-32
check and is ignored, which costs one normal prompt evaluation, not a wrong answer. CRC-32,
not a cryptographic hash, because it guards against damage, and it is what keeps restoring a
long conversation's state cheap (half of SHA-256's time here); anyone who can write this
folder could forge either.

Reading and checking a long conversation's state (24 MB for 1,000 tokens of the demo model,
gigabytes for a 70B one) is done in a background thread from the moment the conversation is
known (`KVStore.prefetch`): while `ask -c` loads the weights, while the chat app's user types
into a reopened conversation. What is left inside the turn's time to first token is handing the
checked bytes to llama.cpp.

No llama_cpp here: `history rm` uses this module to delete a conversation's file.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import struct
import sys
import threading
import time
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

MAGIC = b"RCKV"
VERSION = 2  # 2: CRC-32 instead of SHA-256
_PREFIX = struct.Struct("<4sII")  # magic, version, header length
_MAX_HEADER = 1 << 16
DEFAULT_CAP_MB = 4096


def note(text: str) -> None:
    """A --debug note (the same switch that shows llama.cpp's log)."""
    from reflectchat.core.engine.llama_glue import LLAMA_LOG

    if LLAMA_LOG.echo:
        print(f"reflectchat: debug: {text}", file=sys.stderr)


@dataclass(frozen=True)
class CacheIdentity:
    """What a saved state is valid for."""

    model_path: str
    model_size: int
    model_mtime_ns: int
    n_ctx: int
    llama_cpp: str

    @classmethod
    def of(cls, model_path: Path, n_ctx: int, llama_cpp_version: str) -> CacheIdentity:
        stat = model_path.stat()
        return cls(
            str(model_path.resolve()), stat.st_size, stat.st_mtime_ns, n_ctx, llama_cpp_version
        )


@dataclass(frozen=True)
class SavedState:
    tokens: list[int]
    path: Path
    _offset: int  # where the state bytes start in the file
    _length: int
    _crc32: int

    def read_state(self) -> ctypes.Array[ctypes.c_uint8] | None:
        """The state bytes, read straight into the buffer llama.cpp is handed, or None (with a
        note) if the file changed or doesn't check out."""
        buf = (ctypes.c_uint8 * self._length)()
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                n = f.readinto(buf)
        except OSError as exc:
            note(f"saved KV cache {self.path.name} unreadable ({exc}); evaluating the prompt")
            return None
        if n != self._length or zlib.crc32(buf) != self._crc32:
            note(f"saved KV cache {self.path.name} is damaged; evaluating the prompt")
            return None
        return buf


def cap_bytes() -> int:
    """The configured cap (`kv_cache_mb`; 0 turns saving off)."""
    from reflectchat.core.config import ConfigError, load_config

    try:
        value = load_config().get("kv_cache_mb", None, DEFAULT_CAP_MB)
    except ConfigError:  # the command itself reports a broken config; keep the default here
        value = DEFAULT_CAP_MB
    return int(value) * 1024 * 1024


class PendingState:
    """A conversation's saved state being read and checked in a background thread."""

    def __init__(
        self,
        store: KVStore,
        conversation_id: int,
        identity: CacheIdentity,
        after: threading.Thread | None = None,
    ) -> None:
        self.conversation_id = conversation_id
        self.identity = identity
        self._store = store
        self._after = after  # a save still being written: read once it is done
        self._result: tuple[SavedState, ctypes.Array[ctypes.c_uint8] | None] | None = None
        self._thread = threading.Thread(target=self._read, name="kv-prefetch", daemon=True)
        self._thread.start()

    def is_for(self, conversation_id: int, identity: CacheIdentity) -> bool:
        return (self.conversation_id, self.identity) == (conversation_id, identity)

    def _read(self) -> None:
        if self._after is not None:
            self._after.join()
        try:
            saved = self._store.load(self.conversation_id, self.identity)
            if saved is not None:
                self._result = (saved, saved.read_state())
        except Exception as exc:  # a background read must not take the turn down with it
            note(f"could not read the saved KV cache of conversation {self.conversation_id}: {exc}")

    def result(self) -> tuple[SavedState, ctypes.Array[ctypes.c_uint8] | None] | None:
        """(what the file holds, its checked state bytes or None), once read; None if there
        is no usable file."""
        self._thread.join()
        return self._result


class KVStore:
    """The folder of saved states (`<cache>/kv`), one file per conversation."""

    def __init__(self, root: Path | None = None, cap: int | None = None) -> None:
        if root is None:
            from reflectchat.core.paths import cache_dir

            root = cache_dir() / "kv"
        self.root = root
        self.cap = cap_bytes() if cap is None else cap

    @property
    def enabled(self) -> bool:
        return self.cap > 0

    def path_for(self, conversation_id: int) -> Path:
        return self.root / f"conversation-{int(conversation_id)}.kv"

    def load(self, conversation_id: int, identity: CacheIdentity) -> SavedState | None:
        """The saved tokens (state read on demand), if the file is ours and matches."""
        path = self.path_for(conversation_id)
        try:
            with path.open("rb") as f:
                head = f.read(_PREFIX.size)
                if len(head) != _PREFIX.size:
                    raise ValueError("too short")
                magic, version, header_len = _PREFIX.unpack(head)
                if magic != MAGIC or version != VERSION or header_len > _MAX_HEADER:
                    raise ValueError("not a reflectchat KV cache file of this version")
                header = json.loads(f.read(header_len).decode("utf-8"))
                n_tokens, length, crc = header["n_tokens"], header["length"], header["crc32"]
                if not all(isinstance(v, int) for v in (n_tokens, length, crc)):
                    raise ValueError("bad header")
                if header.get("identity") != asdict(identity):
                    note(
                        f"saved KV cache {path.name} is for another model, context or "
                        "llama.cpp; evaluating the prompt"
                    )
                    return None
                raw = f.read(4 * n_tokens)
                if len(raw) != 4 * n_tokens:
                    raise ValueError("truncated")
                tokens = array("i")
                tokens.frombytes(raw)
                if sys.byteorder != "little":
                    tokens.byteswap()
                offset = _PREFIX.size + header_len + 4 * n_tokens
                if os.fstat(f.fileno()).st_size != offset + length:
                    raise ValueError("truncated or padded")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            note(f"saved KV cache {path.name} ignored ({exc}); evaluating the prompt")
            return None
        return SavedState(tokens.tolist(), path, offset, length, crc)

    def prefetch(
        self,
        conversation_id: int,
        identity: CacheIdentity,
        after: threading.Thread | None = None,
    ) -> PendingState:
        """Start reading a conversation's saved state (tokens, bytes, checks) in the
        background, once the save `after` (if any) is written; `result()` waits for it."""
        return PendingState(self, conversation_id, identity, after)

    def touch(self, saved: SavedState) -> None:
        """Mark a file used (least-recently-used eviction goes by modification time)."""
        with contextlib.suppress(OSError):
            os.utime(saved.path)

    def save(
        self,
        conversation_id: int,
        identity: CacheIdentity,
        tokens: Sequence[int],
        state: bytes | memoryview,
    ) -> bool:
        """Write atomically, then evict the least recently used files beyond the cap."""
        if not self.enabled:
            return False
        data = array("i", tokens)
        if sys.byteorder != "little":
            data.byteswap()
        header = json.dumps(
            {
                "identity": asdict(identity),
                "n_tokens": len(tokens),
                "length": len(state),
                "crc32": zlib.crc32(state),
                "saved_at": time.time(),
            }
        ).encode("utf-8")
        size = _PREFIX.size + len(header) + 4 * len(tokens) + len(state)
        path = self.path_for(conversation_id)
        if size > self.cap:
            note(f"KV cache of conversation {conversation_id} ({size:,} bytes) is over the cap")
            self.forget(conversation_id)  # an older, smaller one would only mislead
            return False
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as f:
                f.write(_PREFIX.pack(MAGIC, VERSION, len(header)))
                f.write(header)
                f.write(data.tobytes())
                f.write(state)
            os.replace(tmp, path)
        except OSError as exc:  # a full disk or a read-only cache: the turn still counts
            note(f"could not save the KV cache of conversation {conversation_id}: {exc}")
            tmp.unlink(missing_ok=True)
            return False
        self._evict(keep=path)
        return True

    def save_in_background(
        self,
        conversation_id: int,
        identity: CacheIdentity,
        tokens: Sequence[int],
        state: bytes | memoryview,
    ) -> threading.Thread:
        """`save` in a thread (not a daemon: the process waits for it before exiting)."""

        def write() -> None:
            try:
                self.save(conversation_id, identity, tokens, state)
            except Exception as exc:  # a cache is not worth a traceback
                note(f"could not save the KV cache of conversation {conversation_id}: {exc}")

        thread = threading.Thread(target=write, name="kv-save")
        thread.start()
        return thread

    def forget(self, conversation_id: int) -> bool:
        """Delete a conversation's saved state (`history rm`); True if there was one."""
        try:
            self.path_for(conversation_id).unlink()
        except FileNotFoundError:
            return False
        return True

    def _evict(self, keep: Path) -> None:
        entries = []
        now = time.time()
        for path in self.root.glob("*"):
            try:
                stat = path.stat()
            except OSError:
                continue
            if path.name.endswith(".tmp"):  # left by a crashed writer, long ago
                if now - stat.st_mtime > 3600:
                    path.unlink(missing_ok=True)
                continue
            if path.suffix == ".kv":
                entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.cap:
                break
            if path == keep:
                continue
            path.unlink(missing_ok=True)
            total -= size
