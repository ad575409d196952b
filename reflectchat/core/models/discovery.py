"""GGUF models already on this machine, put there by other tools — so nobody downloads 42 GB
twice.

Where they look (each folder can be passed in; the defaults follow each tool's own settings):

- the Hugging Face cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub``, ``~/.cache/huggingface/hub``):
  every ``.gguf`` in every repository's snapshots;
- LM Studio (``~/.lmstudio/models``, ``~/.cache/lm-studio/models``): ``publisher/repo/file.gguf``;
- Ollama (``$OLLAMA_MODELS``, ``~/.ollama/models``): each manifest
  ``manifests/<registry>/<namespace>/<model>/<tag>`` names its weights as the layer of media type
  ``application/vnd.ollama.image.model``, stored as ``blobs/sha256-<hex>`` (a GGUF without the
  extension);
- llama.cpp's download cache (``$LLAMA_CACHE``, else ``~/.cache/llama.cpp``).

Walks are shallow and bounded, never follow links into other folders, and skip anything
unreadable or malformed: discovery never fails, it finds less.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reflectchat.core.models import hf_cache
from reflectchat.core.models.naming import parse_split_name

OLLAMA_MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
_OLLAMA_DIGEST = re.compile(r"sha256[:-]([0-9a-f]{64})")
MAX_ENTRIES = 20_000  # per folder walked: a pathological tree costs a bounded amount of time
MAX_MANIFEST_BYTES = 1 << 20


@dataclass(frozen=True)
class FoundModel:
    source: str  # "hf-cache", "lm-studio", "ollama", "llama.cpp"
    name: str  # how that tool names it: owner/repo/file.gguf, llama3.2:1b, ...
    path: Path  # the file to load (the first part of a split model)
    size_bytes: int  # every part together
    parts: int = 1


def discover(
    *,
    home: Path | None = None,
    hf_cache_dir: Path | None = None,
    lmstudio_dirs: list[Path] | None = None,
    ollama_dir: Path | None = None,
    llama_cache: Path | None = None,
) -> list[FoundModel]:
    """Every GGUF model found, each file once (the first tool that has it names it)."""
    explicit_home = home is not None
    home = home if home is not None else Path.home()
    found: list[FoundModel] = []
    found += find_hf_cache(hf_cache_dir if hf_cache_dir is not None else _hf_default(home))
    for folder in lmstudio_dirs if lmstudio_dirs is not None else _lmstudio_defaults(home):
        found += find_lmstudio(folder)
    ollama = [ollama_dir] if ollama_dir is not None else _ollama_defaults(home, explicit_home)
    for folder in ollama:
        found += find_ollama(folder)
    found += find_llama_cpp(llama_cache if llama_cache is not None else _llama_default(home))
    unique: list[FoundModel] = []
    seen: set[str] = set()
    for model in found:
        key = os.path.realpath(model.path)
        if key not in seen:
            seen.add(key)
            unique.append(model)
    return unique


# --- default folders ------------------------------------------------------------------------------


def _hf_default(home: Path) -> Path:
    if any(os.environ.get(v) for v in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME")):
        return hf_cache.hub_cache_dir()
    return Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "huggingface" / "hub"


def _lmstudio_defaults(home: Path) -> list[Path]:
    return [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]


def _ollama_defaults(home: Path, explicit_home: bool) -> list[Path]:
    if os.environ.get("OLLAMA_MODELS"):
        return [Path(os.environ["OLLAMA_MODELS"]).expanduser()]
    folders = [home / ".ollama" / "models"]
    if not explicit_home and sys.platform.startswith("linux"):
        folders.append(Path("/usr/share/ollama/.ollama/models"))  # the Linux service's home
    return folders


def _llama_default(home: Path) -> Path:
    if os.environ.get("LLAMA_CACHE"):
        return Path(os.environ["LLAMA_CACHE"]).expanduser()
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "llama.cpp"
    return Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "llama.cpp"


# --- walking --------------------------------------------------------------------------------------


def _walk(root: Path, max_depth: int) -> Iterator[tuple[str, Path, int]]:
    """(path relative to root, path, size) of every regular file (links to files followed, links
    to folders not) at most `max_depth` folders down, in a stable order."""
    budget = MAX_ENTRIES
    stack: list[tuple[Path, str, int]] = [(root, "", 0)]
    while stack:
        folder, prefix, depth = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subfolders = []
        for entry in entries:
            budget -= 1
            if budget < 0:
                return
            rel = f"{prefix}{entry.name}"
            try:
                if entry.is_dir(follow_symlinks=False):
                    if depth < max_depth and not entry.name.startswith("."):
                        subfolders.append((Path(entry.path), rel + "/", depth + 1))
                    continue
                st = os.stat(entry.path)  # follows a link into blobs/
            except OSError:
                continue  # unreadable, or a broken link
            if stat.S_ISREG(st.st_mode):
                yield rel, Path(entry.path), st.st_size
        stack.extend(reversed(subfolders))


def _gguf_models(
    source: str, files: list[tuple[str, Path, int]], prefix: str = ""
) -> list[FoundModel]:
    """GGUF files as models: the parts of a split model become one model (its first part)."""
    groups: dict[tuple[str, str], list[tuple[int, str, Path, int]]] = {}
    singles: list[FoundModel] = []
    for rel, path, size in files:
        if not rel.lower().endswith(".gguf") or size == 0:
            continue
        split = parse_split_name(path.name)
        if split is None:
            singles.append(FoundModel(source, prefix + rel, path, size))
            continue
        key = (str(path.parent), f"{split.stem}-of-{split.count:05d}".lower())
        groups.setdefault(key, []).append((split.number, rel, path, size))
    for parts in groups.values():
        parts.sort()
        _, rel, path, _ = parts[0]
        total = sum(size for *_, size in parts)
        singles.append(FoundModel(source, prefix + rel, path, total, parts=len(parts)))
    return sorted(singles, key=lambda m: m.name.lower())


# --- each tool ------------------------------------------------------------------------------------


def find_hf_cache(root: Path) -> list[FoundModel]:
    """GGUF files in a Hugging Face hub cache, named ``owner/repo/path``."""
    found: list[FoundModel] = []
    try:
        repos = sorted(p for p in root.iterdir() if p.name.startswith("models--"))
    except OSError:
        return found
    for repo in repos:
        repo_id = repo.name[len("models--") :].replace("--", "/")
        try:
            order = sorted(p for p in (repo / "snapshots").iterdir() if p.is_dir())
        except OSError:
            continue
        try:
            main = (repo / "refs" / "main").read_text().strip()
        except (OSError, UnicodeDecodeError):
            main = ""
        order.sort(key=lambda p: p.name != main)  # the current snapshot names a file first
        files: dict[str, tuple[str, Path, int]] = {}
        for snapshot in order:
            for rel, path, size in _walk(snapshot, max_depth=4):
                files.setdefault(rel, (rel, path, size))
        found += _gguf_models("hf-cache", list(files.values()), prefix=f"{repo_id}/")
    return found


def find_lmstudio(root: Path) -> list[FoundModel]:
    """LM Studio's models folder: ``publisher/repo/file.gguf``."""
    return _gguf_models("lm-studio", list(_walk(root, max_depth=3)))


def find_llama_cpp(root: Path) -> list[FoundModel]:
    """llama.cpp's ``-hf`` download cache: flat ``owner_repo_file.gguf`` files (older
    releases), or a Hugging Face style cache inside it (newer ones)."""
    flat = [f for f in _walk(root, max_depth=1) if not f[0].startswith("models--")]
    return _gguf_models("llama.cpp", flat) + [
        FoundModel("llama.cpp", m.name, m.path, m.size_bytes, m.parts) for m in find_hf_cache(root)
    ]


def find_ollama(root: Path) -> list[FoundModel]:
    """Ollama's models: the weights layer of every manifest, named like ``ollama list``."""
    found: dict[Path, FoundModel] = {}
    manifests = root / "manifests"
    for rel, path, size in _walk(manifests, max_depth=3):
        parts = rel.split("/")
        if len(parts) != 4 or size > MAX_MANIFEST_BYTES:
            continue
        blob = _ollama_weights(root, path)
        if blob is None or blob in found:
            continue
        try:
            blob_size = blob.stat().st_size
        except OSError:
            continue
        found[blob] = FoundModel("ollama", _ollama_name(*parts), blob, blob_size)
    return sorted(found.values(), key=lambda m: m.name.lower())


def _ollama_weights(root: Path, manifest: Path) -> Path | None:
    try:
        data = json.loads(manifest.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    layers = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(layers, list):
        return None
    for layer in layers:
        if not isinstance(layer, dict) or layer.get("mediaType") != OLLAMA_MODEL_MEDIA_TYPE:
            continue
        digest = layer.get("digest")
        m = _OLLAMA_DIGEST.fullmatch(digest) if isinstance(digest, str) else None
        if m is None:
            return None
        blob = root / "blobs" / f"sha256-{m.group(1)}"
        return blob if blob.is_file() else None
    return None


def _ollama_name(registry: str, namespace: str, model: str, tag: str) -> str:
    if registry == "registry.ollama.ai":
        return f"{model}:{tag}" if namespace == "library" else f"{namespace}/{model}:{tag}"
    return f"{registry}/{namespace}/{model}:{tag}"
