"""Reading the standard Hugging Face cache (where `models pull` downloads to) without the
network: what a repository has on disk."""

from __future__ import annotations

import os
from pathlib import Path


def hub_cache_dir() -> Path:
    """$HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub — as huggingface_hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ["HUGGINGFACE_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def repo_folder(repo: str) -> Path:
    return hub_cache_dir() / ("models--" + repo.replace("/", "--"))


def snapshot_dirs(folder: Path) -> list[Path]:
    """The repository's snapshot folders that really are folders inside it: a snapshot that is a
    link to a folder elsewhere is not part of the cache (huggingface-hub never makes one)."""
    snapshots = folder / "snapshots"
    if snapshots.is_symlink() or not snapshots.is_dir():
        return []
    return sorted(p for p in snapshots.iterdir() if p.is_dir() and not p.is_symlink())


def snapshot_entries(snapshot: Path) -> list[Path]:
    """Every file or link under a snapshot folder, never descending through a folder link (a
    link out of the cache must not make files elsewhere look like, or be removed as, its own)."""
    found = []
    for top, dirs, files in os.walk(snapshot, followlinks=False):
        here = Path(top)
        found += [here / name for name in files]
        found += [here / name for name in dirs if (here / name).is_symlink()]
    return sorted(found)


def cached_repo_files(repo: str) -> dict[str, Path]:
    """Repository path -> local file, for every complete file in the cached snapshots (the
    snapshot named by refs/main first; an .incomplete blob never counts)."""
    folder = repo_folder(repo)
    snapshots = snapshot_dirs(folder)
    if not snapshots:
        return {}
    order = []
    main = folder / "refs" / "main"
    if main.is_file():
        named = folder / "snapshots" / main.read_text().strip()
        if named in snapshots:
            order.append(named)
    order += [p for p in snapshots if p not in order]
    found: dict[str, Path] = {}
    for snapshot in order:
        for path in snapshot_entries(snapshot):
            if path.is_file():  # follows the symlink into blobs/: a dangling one is skipped
                name = path.relative_to(snapshot).as_posix()
                found.setdefault(name, path)
    return found
