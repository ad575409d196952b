"""Which model to load and how to prompt it: the chat's counterpart of `ask`'s flag handling.

The app is given a *backend factory* `(spec, progress) -> backend`: the real one loads a GGUF
with llama.cpp (called from a worker thread, reporting load progress); tests give one that
returns a `ScriptedBackend`, or a ready backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reflectchat.core.chat.prompts import PROMPT_STYLES
from reflectchat.core.engine.base import Backend, GenerationParams
from reflectchat.core.models.resolve import (
    CatalogEntry,
    ResolvedModel,
    entry_for_file,
    load_catalog,
)

ProgressFn = Callable[[float], object]
BackendFactory = Callable[[str, ProgressFn], Backend]
LOAD_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError)  # plus the ones below


@dataclass
class ChatOptions:
    """What `reflectchat chat` was asked for (flags); None means "the model's default"."""

    model: str | None = None
    system: str | None = None
    no_system: bool = False
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    max_tokens: int = 1024
    strict_format: bool | None = None
    keep_reasoning: bool = False
    conversation_id: int | None = None
    continue_last: bool = False
    keep_thinking_open: bool = False
    show_reasoning: bool = True
    load: dict[str, Any] = field(default_factory=dict)  # n_ctx, n_threads, gpu_layers, seed


def entry_for(spec: str | None, backend: object | None = None) -> CatalogEntry | None:
    """The catalog entry of a model: the loaded backend's own, else looked up by alias or by
    file name (no file is touched)."""
    model = getattr(backend, "model", None)
    if isinstance(model, ResolvedModel):
        return model.entry
    if not spec:
        return None
    catalog = load_catalog()
    alias = spec.split(":", 1)[0].strip().lower()
    if alias in catalog:
        return catalog[alias]
    # a .gguf path, or a served model's name ("mattshumer/Reflection-Llama-3.1-70B")
    return entry_for_file(Path(spec))


def default_system_prompt(entry: CatalogEntry | None) -> str | None:
    style = entry.prompt_style if entry else "none"
    return PROMPT_STYLES.get(style)


def generation_params(options: ChatOptions, entry: CatalogEntry | None) -> GenerationParams:
    """The same defaults as `ask`: flags, else the catalog entry, else 0.7 / 0.95."""
    strict = options.strict_format
    if strict is None:
        strict = bool(entry and entry.strict_format)
    temperature = options.temperature
    if temperature is None:
        temperature = entry.temperature if entry else 0.7
    top_p = options.top_p
    if top_p is None:
        top_p = entry.top_p if entry else 0.95
    return GenerationParams(
        temperature=temperature,
        top_p=top_p,
        seed=options.seed,
        max_tokens=options.max_tokens,
        strict_format=strict,
    )


def llama_factory(load: dict[str, Any] | None = None) -> BackendFactory:
    """Load GGUF models with llama.cpp. Errors come out as one-line exceptions
    (ModelNotFoundError, GGUFError, ModelLoadError, ValueError)."""
    load = dict(load or {})

    def factory(spec: str, progress: ProgressFn) -> Backend:
        from reflectchat.core.engine.llama import LlamaBackend, LoadOptions
        from reflectchat.core.models.resolve import resolve_model

        model = resolve_model(spec)
        return LlamaBackend(model, LoadOptions(progress=progress, **load))

    return factory


def remote_factory(endpoint: Any) -> BackendFactory:
    """A remote OpenAI-compatible server; `spec` is the server's model name."""

    def factory(spec: str, progress: ProgressFn) -> Backend:
        import dataclasses

        from reflectchat.core.engine.remote import RemoteBackend

        backend = RemoteBackend(dataclasses.replace(endpoint, model=spec or endpoint.model))
        backend.resolve_model_name()  # fail here, as a load error, if the server can't serve it
        progress(1.0)
        return backend

    return factory


def load_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions a model load reports as one human line."""
    from reflectchat.core.engine.base import EngineError
    from reflectchat.core.models.gguf import GGUFError
    from reflectchat.core.models.resolve import ModelNotFoundError

    types: tuple[type[BaseException], ...] = (EngineError, GGUFError, ModelNotFoundError)
    try:  # the fit check ("too big for this machine; use a smaller quant or --force")
        from reflectchat.core.models.fit import ModelTooBigError
    except ImportError:  # pragma: no cover - older core
        pass
    else:
        types += (ModelTooBigError,)
    return (*types, *LOAD_ERRORS)
