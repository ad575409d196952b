"""The download itself: bounded, resumable, checked.

huggingface-hub 2.x deletes an interrupted download, so the transfer is reflectchat's own: its
HTTP code (`get_hf_file_metadata`, the session) writes into ``blobs/<sha256>.incomplete``, which
the next pull continues with a Range request. A new file joins the cache only once it matches
the Hub's sha256, and leaves it again if its GGUF header is unusable.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from reflectchat.core.models import hf_cache
from reflectchat.core.models.hub.errors import HubError, host_of, raise_offline, translate
from reflectchat.core.models.hub.plan import PullPlan, RemoteFile, Target, cached_paths, is_current
from reflectchat.core.models.hub.removal import delete_entries
from reflectchat.core.models.hub.settings import (
    CONNECT_TIMEOUT,
    download_timeout,
    hub_endpoint,
    import_huggingface_hub,
    offline_mode,
    request_timeout,
    token,
)
from reflectchat.core.units import format_bytes

_RETRIES = 5  # reconnections in a row without a new byte before a dropped download gives up
_RETRY_PAUSE = 0.5  # seconds between them
_CHUNK_SIZE = 1 << 20  # bytes read per write: also how far past a bound a server gets to send
_SAFE_ETAG = re.compile(r"[0-9A-Za-z_-]{8,128}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")

Progress = Callable[[int, int], None]


def pull(
    plan: PullPlan, progress: Progress | None = None, *, stall_timeout: float | None = None
) -> list[Path]:
    """Download the plan's files into the Hugging Face cache; the local paths, first part first.

    Files already there are kept; an interrupted download continues where it stopped. Each new
    file is checked against the Hub's sha256 (a mismatch deletes it) and its GGUF header.
    `progress(bytes_done, total)` is called as bytes arrive. A file stops downloading when no
    byte comes for `stall_timeout` seconds (default: `download_timeout()`), and is deleted as
    soon as the server sends more than its size.
    """
    stall = stall_timeout if stall_timeout and stall_timeout > 0 else download_timeout()
    report = progress or (lambda done, total: None)
    done = cached_paths(plan)
    if done is not None:
        report(plan.total_bytes, plan.total_bytes)
        return done
    target = Target(plan.spec or plan.display, plan.display, plan.repo, None, ())
    if offline_mode():
        raise_offline(target, "HF_HUB_OFFLINE is set")
    if plan.revision is None:
        raise_offline(target, "the Hub could not be asked for the file list")
    folder = hf_cache.repo_folder(plan.repo)
    cached = hf_cache.cached_repo_files(plan.repo)
    todo = [f for f in plan.files if f.path not in cached or not is_current(cached[f.path], f)]
    here = {f.path: _bytes_here(folder, f) for f in todo}
    _check_disk_space(plan, todo, here, folder)
    # the bytes already here count as done from the start (a resumed download's speed and
    # time left are about what is still to come)
    counter = _Counter(report, plan.total_bytes, here)
    counter.add(plan.total_bytes - sum(f.size or 0 for f in todo) + sum(here.values()))
    paths = []
    for remote in plan.files:
        if remote in todo:
            paths.append(_download(plan, remote, folder, counter, target, stall))
        else:
            paths.append(cached[remote.path])
    counter.finish()
    return paths


class _Counter:
    def __init__(self, report: Progress, total: int, counted: dict[str, int]) -> None:
        self.report, self.total, self.done = report, total, 0
        self.counted = dict(counted)  # bytes of each file already counted as done

    def add(self, n: int) -> None:
        self.done += n
        self.report(self.done, max(self.total, self.done))

    def settle(self, path: str, have: int) -> None:
        """A file turns out to have `have` bytes here: count the difference."""
        if have != self.counted.get(path, 0):
            self.add(have - self.counted.get(path, 0))
        self.counted[path] = have

    def finish(self) -> None:
        self.report(max(self.total, self.done), max(self.total, self.done))


def _bytes_here(folder: Path, remote: RemoteFile) -> int:
    """What of a file is on disk already: its whole blob, or a partial download."""
    if not remote.sha256:
        return 0
    blob = folder / "blobs" / remote.sha256
    for path in (blob, blob.with_name(f"{remote.sha256}.incomplete")):
        with contextlib.suppress(OSError):
            return path.stat().st_size
    return 0


def _check_disk_space(
    plan: PullPlan, todo: list[RemoteFile], here: dict[str, int], folder: Path
) -> None:
    needed = sum(max(0, (f.size or 0) - here.get(f.path, 0)) for f in todo)
    if needed <= 0:
        return
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return  # cannot tell: let the download find out
    if free < needed:
        raise HubError(
            f"not enough free disk space for {plan.display}: it needs {format_bytes(needed)} "
            f"more in {hf_cache.hub_cache_dir()}, which has {format_bytes(free)} free; free some "
            "space or point HF_HUB_CACHE at a bigger disk",
            "disk",
        )


def _download(
    plan: PullPlan,
    remote: RemoteFile,
    folder: Path,
    counter: _Counter,
    target: Target,
    stall: float,
) -> Path:
    import_huggingface_hub()
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import WeakFileLock, build_hf_headers

    from reflectchat import __version__

    endpoint = hub_endpoint()
    url = hf_hub_url(plan.repo, remote.path, revision=plan.revision, endpoint=endpoint)
    headers = build_hf_headers(
        token=token(), library_name="reflectchat", library_version=__version__
    )
    try:
        meta = get_hf_file_metadata(
            url, token=token(), timeout=request_timeout(), headers=headers, endpoint=endpoint
        )
    except Exception as exc:
        raise translate(exc, target, remote.path) from None
    etag = meta.etag or ""
    if not _SAFE_ETAG.fullmatch(etag):
        raise HubError(f"the Hub gave {remote.path} an unusable ETag; try again later", "network")
    commit = meta.commit_hash or plan.revision or ""
    if not _COMMIT.fullmatch(commit):
        raise HubError(
            f"the answer for {remote.path} names no commit: is HF_ENDPOINT ({endpoint}) a "
            "Hugging Face Hub?",
            "network",
        )
    expected_sha = remote.sha256 or (etag.lower() if _SHA256.fullmatch(etag.lower()) else None)
    size = meta.size if meta.size is not None else remote.size
    source = url
    if meta.xet_file_data is None and meta.location and meta.location != url:
        source = meta.location  # a signed CDN address: the token stays with the Hub
        if _origin(source) != _origin(url):
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    blob = folder / "blobs" / etag
    pointer = folder / "snapshots" / commit / PurePosixPath(remote.path)
    lock = hf_cache.hub_cache_dir() / ".locks" / folder.name / f"{etag}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    _make_dir(folder, blob.parent)
    with WeakFileLock(lock):
        if blob.is_file():
            counter.settle(remote.path, blob.stat().st_size)
        else:
            partial = blob.with_name(f"{etag}.incomplete")
            _fetch(source, headers, partial, size, expected_sha, counter, remote, target, stall)
            os.replace(partial, blob)
        _link(folder, blob, pointer)
        _write_ref(folder, "main", commit)
    _check_gguf(pointer, remote, folder)
    return pointer


def _origin(url: str) -> tuple[str, str, int | None]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


class _Overflow(Exception):
    """The server sent more bytes than the file has."""


class _Sink:
    """The partial file a download appends to: hashes and counts what it writes, and never lets
    the file grow past the size the Hub gives (an endless stream must not fill the disk)."""

    def __init__(self, f: BinaryIO, hasher: Any, counter: _Counter, limit: int | None) -> None:
        self.f, self.hasher, self.counter, self.limit = f, hasher, counter, limit

    def write(self, data: bytes) -> None:
        if self.limit is not None and self.f.tell() + len(data) > self.limit:
            raise _Overflow
        self.f.write(data)
        if self.hasher is not None:
            self.hasher.update(data)
        self.counter.add(len(data))

    def tell(self) -> int:
        return self.f.tell()

    def restart(self) -> None:
        """Back to an empty file (a server that ignored the Range request sends byte 0 on)."""
        end = self.f.seek(0, os.SEEK_END)
        self.f.seek(0)
        self.f.truncate(0)
        self.counter.add(-end)
        if self.hasher is not None:
            self.hasher = hashlib.sha256()


def _hash_prefix(f: BinaryIO, length: int) -> Any:
    hasher = hashlib.sha256()
    f.seek(0)
    remaining = length
    while remaining > 0:
        chunk = f.read(min(remaining, 1 << 20))
        if not chunk:
            break
        hasher.update(chunk)
        remaining -= len(chunk)
    f.seek(length)
    return hasher


def _fetch(
    url: str,
    headers: dict[str, str],
    partial: Path,
    size: int | None,
    sha256: str | None,
    counter: _Counter,
    remote: RemoteFile,
    target: Target,
    stall: float,
) -> None:
    """Download `url` into `partial`, continuing after the bytes already there.

    The transfer is reflectchat's own rather than huggingface-hub's `http_get`, which reads
    without a bound (it checks the size only once the server stops sending), waits on a
    stalled server with retries that log to stderr, and buffers 10 MB between writes."""
    import httpx2

    if partial.is_symlink():
        partial.unlink()  # the partial file is ours alone: never write through a link
    have = partial.stat().st_size if partial.is_file() else 0
    if size is not None and have > size:
        partial.unlink()
        have = 0
    host = host_of(url)
    overflow = False
    with open(partial, "r+b" if have else "w+b") as f:
        hasher = _hash_prefix(f, have) if sha256 else None
        f.seek(have)
        counter.settle(remote.path, have)
        sink = _Sink(f, hasher, counter, size)
        try:
            _transfer(url, headers, sink, size, stall)
        except _Overflow:
            overflow = True
        except httpx2.TimeoutException:
            f.flush()
            raise HubError(
                f"the download of {remote.path} stalled: nothing came from {host} for "
                f"{stall:g} s; {format_bytes(partial.stat().st_size)} are kept: run reflectchat "
                f"models pull {target.spec} again to continue (HF_HUB_DOWNLOAD_TIMEOUT sets "
                "how many seconds to wait)",
                "network",
            ) from None
        except Exception as exc:
            f.flush()
            kept = partial.stat().st_size
            error = translate(exc, target, remote.path)
            reason = "the connection to the Hub was lost" if error.kind == "offline" else error
            raise HubError(
                f"the download of {remote.path} stopped ({reason}); {format_bytes(kept)} "
                f"are kept: run reflectchat models pull {target.spec} again to continue",
                "network" if error.kind == "offline" else error.kind,
            ) from None
        hasher = sink.hasher
    if overflow:
        partial.unlink(missing_ok=True)
        raise HubError(
            f"the download of {remote.path} was stopped: {host} sent more than the "
            f"{format_bytes(size or 0)} the Hub lists for it; the partial file was deleted, "
            f"try reflectchat models pull {target.spec} again later",
            "checksum",
        )
    if sha256 and hasher is not None and hasher.hexdigest() != sha256:
        got = hasher.hexdigest()
        partial.unlink(missing_ok=True)
        raise HubError(
            f"checksum mismatch for {remote.path}: the Hub says sha256 {sha256[:16]}…, the "
            f"download has {got[:16]}…; the bad file was deleted, run reflectchat models pull "
            f"{target.spec} to download it again",
            "checksum",
        )


def _transfer(
    url: str, headers: dict[str, str], sink: _Sink, size: int | None, stall: float
) -> None:
    """GET the rest of the file into `sink`; a dropped connection continues with a Range
    request, up to _RETRIES times in a row without a new byte. A stall (no byte for `stall`
    seconds) raises httpx's TimeoutException: waiting again would only double the wait."""
    import httpx2

    timeout = httpx2.Timeout(stall, connect=min(CONNECT_TIMEOUT, stall))
    drops = (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.WriteError, httpx2.ConnectError)
    fruitless = 0
    while True:
        before = sink.tell()
        try:
            _get_once(url, headers, sink, timeout)
            dropped: Exception | None = None
        except drops as exc:
            dropped = exc
        done = sink.tell()
        if (size is None and dropped is None) or (size is not None and done >= size):
            return
        fruitless = 0 if done > before else fruitless + 1
        if fruitless >= _RETRIES:
            if dropped is not None:
                raise dropped
            raise OSError(f"the server sent {done} of the file's {size} bytes")
        time.sleep(_RETRY_PAUSE)


def _get_once(url: str, headers: dict[str, str], sink: _Sink, timeout: Any) -> None:
    from huggingface_hub.utils import get_session, hf_raise_for_status

    have = sink.tell()
    # identity: the bytes counted and bounded are the file's own, never a compressed stream's
    request = {**headers, "Accept-Encoding": "identity"}
    if have:
        request["Range"] = f"bytes={have}-"
    client = get_session()
    with client.stream("GET", url, headers=request, timeout=timeout, follow_redirects=True) as r:
        if r.status_code >= 400:
            r.read()
            hf_raise_for_status(r)
        if have and r.status_code != 206:
            sink.restart()  # the server ignored the Range request: the body starts at byte 0
        for chunk in r.iter_bytes(_CHUNK_SIZE):
            sink.write(chunk)


def _make_dir(folder: Path, path: Path) -> None:
    """mkdir -p for a folder inside the repository folder that never goes through a link: a
    link planted in the cache must not make a download write, or replace files, elsewhere."""
    folder.mkdir(parents=True, exist_ok=True)
    current = folder
    for part in path.relative_to(folder).parts:
        current = current / part
        if current.is_symlink():
            raise HubError(
                f"{current} is a link out of the Hugging Face cache folder: remove it, then "
                "run the pull again",
                "disk",
            )
        current.mkdir(exist_ok=True)


def _link(folder: Path, blob: Path, pointer: Path) -> None:
    """The snapshot entry, as huggingface-hub makes it: a relative symlink into blobs/."""
    _make_dir(folder, pointer.parent)
    if pointer.is_symlink() or pointer.exists():
        pointer.unlink()
    try:
        os.symlink(os.path.relpath(blob, pointer.parent), pointer)
    except OSError:  # no symlinks (Windows without developer mode): a copy, as huggingface-hub
        shutil.copyfile(blob, pointer)


def _write_ref(folder: Path, ref: str, commit: str) -> None:
    path = folder / "refs" / ref
    _make_dir(folder, path.parent)
    if path.is_file() and path.read_text().strip() == commit:
        return
    tmp = path.with_name(f".{ref}.{os.getpid()}.tmp")
    tmp.write_text(commit)
    os.replace(tmp, path)


def _check_gguf(pointer: Path, remote: RemoteFile, folder: Path) -> None:
    if not remote.path.lower().endswith(".gguf"):
        return
    from reflectchat.core.models.gguf import GGUFError, read_gguf_header

    try:
        read_gguf_header(pointer)
    except GGUFError as exc:
        if exc.kind in ("unsupported", "version"):  # a sound file this reader is too old for
            raise HubError(
                f"{remote.path} is downloaded and verified, but this reflectchat cannot read it: "
                f"{exc}",
                "invalid",
            ) from None
        delete_entries(folder, [pointer])
        raise HubError(
            f"{remote.path} is not a usable GGUF file ({exc}); the download was deleted",
            "invalid",
        ) from None
