"""`models rm`: a model's files out of the Hugging Face cache, and nothing outside it."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from reflectchat.core.models import hf_cache
from reflectchat.core.models.hub.errors import HubError
from reflectchat.core.models.hub.plan import hub_target
from reflectchat.core.models.naming import quant_matches, split_family


def remove(spec_text: str) -> list[Path]:
    """Delete a model's files from the Hugging Face cache: its snapshot entries in every
    snapshot, and their blobs unless another entry still uses them. The deleted paths.

    Only entries inside ``snapshots/`` and blobs inside ``blobs/`` are ever deleted: a snapshot
    (or a folder in one) that is a link to somewhere else is not followed, and a link is
    unlinked itself, never its target outside the cache."""
    target = hub_target(spec_text)
    folder = hf_cache.repo_folder(target.repo)
    found: list[tuple[Path, str]] = []  # (entry, its path in the repository)
    for snapshot in hf_cache.snapshot_dirs(folder):
        entries = hf_cache.snapshot_entries(snapshot)
        found += [(p, p.relative_to(snapshot).as_posix()) for p in entries]
    names = {name for _, name in found}
    if target.files:
        wanted = {part for name in target.files for part in split_family(name)}
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
    removed = delete_entries(folder, entries)
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


def delete_entries(folder: Path, entries: list[Path]) -> list[Path]:
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
