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


def cached_repo_files(repo: str) -> dict[str, Path]:
    """Repository path -> local file, for every complete file in the cached snapshots (the
    snapshot named by refs/main first; an .incomplete blob never counts)."""
    folder = repo_folder(repo)
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return {}
    order = []
    main = folder / "refs" / "main"
    if main.is_file():
        order.append(snapshots / main.read_text().strip())
    order += sorted(p for p in snapshots.iterdir() if p not in order)
    found: dict[str, Path] = {}
    for snapshot in order:
        if not snapshot.is_dir():
            continue
        for path in snapshot.rglob("*"):
            if path.is_file():  # follows the symlink into blobs/: a dangling one is skipped
                name = path.relative_to(snapshot).as_posix()
                found.setdefault(name, path)
    return found
