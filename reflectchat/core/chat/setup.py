"""From what was asked for to a chat going: the one setup path of `ask`, the chat app and
`bench`.

`SessionOptions` is what the user asked for, already resolved (config applied, flags checked);
None means "the model's default". The functions below turn it into what the engine and the
session take, the same way for every front end, so a flag means the same everywhere.
llama.cpp and the remote client are imported only when a model is actually loaded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reflectchat.core.chat.presets import Preset, with_preset
from reflectchat.core.chat.prompts import PROMPT_STYLES
from reflectchat.core.chat.session import ChatSession
from reflectchat.core.chat.store import Store
from reflectchat.core.engine.base import Backend, GenerationParams
from reflectchat.core.errors import UsageError
from reflectchat.core.models.resolve import (
    CatalogEntry,
    ResolvedModel,
    entry_for_file,
    load_catalog,
    resolve_model,
)

if TYPE_CHECKING:
    from reflectchat.core.engine.llama import LoadOptions
    from reflectchat.core.engine.remote import Endpoint, RemoteBackend

# Called with 0.0…1.0 while a model loads (from the loading thread); False aborts the load.
Progress = Callable[[float], bool | None]

DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 0.95
DEFAULT_MAX_TOKENS = 1024


@dataclass
class SessionOptions:
    """A chat as asked for: the model, how to sample, how to load, which conversation."""

    model: str | None = None  # catalog alias, path or served model name
    endpoint: Endpoint | None = None  # a remote server instead of a local model
    # the prompt and sampling
    system: str | None = None
    no_system: bool = False
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    strict_format: bool | None = None
    reasoning_format: str | None = None  # `--format NAME`: instead of the detected format
    think_budget: int | None = None  # thinking tokens before the engine closes it (0: none)
    think: bool | None = None  # thinking on/off where the model has a switch
    effort: str | None = None  # low | medium | high
    keep_reasoning: bool = False
    preset: Preset | None = None  # a writing preset: its part follows the system prompt
    # loading a local model
    n_ctx: int | None = None
    n_threads: int | None = None
    gpu_layers: str | int = "auto"
    force: bool = False  # load even when the fit check says it won't fit
    rpc_servers: tuple[str, ...] = ()
    # the history
    conversation_id: int | None = None
    continue_last: bool = False
    no_save: bool = False

    @property
    def explicit_system(self) -> bool:
        """Whether the system prompt was chosen (given, turned off or given a preset) rather
        than defaulted."""
        return self.no_system or self.system is not None or self.preset is not None


# -- prompt and sampling --------------------------------------------------------------------------


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
    return PROMPT_STYLES.get(entry.prompt_style if entry else "none")


def system_prompt(options: SessionOptions, entry: CatalogEntry | None) -> str | None:
    """--no-system, else --system, else the model's own style; then the preset's part (with
    --no-system, the preset's part alone)."""
    if options.no_system:
        base = None
    elif options.system is not None:
        base = options.system
    elif _reflection_off(options, entry):
        base = None  # Reflection's prompt is what makes it think: --think off drops it
    else:
        base = default_system_prompt(entry)
    return with_preset(base, options.preset)


def _reflection_off(options: SessionOptions, entry: CatalogEntry | None) -> bool:
    return options.think is False and entry is not None and entry.prompt_style == "reflection"


def generation_params(options: SessionOptions, entry: CatalogEntry | None) -> GenerationParams:
    """Flags, else the preset's, else the catalog entry, else 0.7 / 0.95."""
    strict = options.strict_format
    if strict is None:
        # --think off on a Reflection model: no reasoning prompt, so no reasoning grammar
        strict = bool(entry and entry.strict_format) and not _reflection_off(options, entry)
    preset = options.preset
    temperature = options.temperature
    if temperature is None and preset is not None:
        temperature = preset.temperature
    if temperature is None:
        temperature = entry.temperature if entry else DEFAULT_TEMPERATURE
    top_p = options.top_p
    if top_p is None and preset is not None:
        top_p = preset.top_p
    if top_p is None:
        top_p = entry.top_p if entry else DEFAULT_TOP_P
    return GenerationParams(
        temperature=temperature,
        top_p=top_p,
        seed=options.seed,
        max_tokens=options.max_tokens,
        strict_format=strict,
        reasoning_format=options.reasoning_format,
        think_budget=options.think_budget,
        think=options.think,
        effort=options.effort,
    )


# -- loading ----------------------------------------------------------------------------------


def load_options(options: SessionOptions, progress: Progress | None = None) -> LoadOptions:
    from reflectchat.core.engine.llama import LoadOptions

    return LoadOptions(
        n_ctx=options.n_ctx,
        n_threads=options.n_threads,
        gpu_layers=options.gpu_layers,
        seed=options.seed,
        progress=progress,
        force=options.force,
        rpc_servers=options.rpc_servers,
        conversation=options.conversation_id,
    )


def load_local(
    model: ResolvedModel, options: SessionOptions, progress: Progress | None = None
) -> Backend:
    """Load a resolved GGUF with llama.cpp. Raises ModelError (not usable, too big, failing to
    load) or UsageError (a loading option it cannot take, e.g. a --gpu-layers value)."""
    from reflectchat.core.engine.llama import LlamaBackend

    try:
        return LlamaBackend(model, load_options(options, progress))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def load_remote(
    endpoint: Endpoint, model: str | None = None, progress: Progress | None = None
) -> RemoteBackend:
    """A remote OpenAI-compatible server serving `model` (else the endpoint's, else its first).
    The server is asked now, so one that cannot serve fails here (NetworkError), as a load."""
    from reflectchat.core.engine.remote import RemoteBackend

    backend = RemoteBackend(dataclasses.replace(endpoint, model=model or endpoint.model))
    backend.resolve_model_name()
    if progress is not None:
        progress(1.0)
    return backend


def load_backend(options: SessionOptions, progress: Progress | None = None) -> Backend:
    """The model the options name, local or remote, loaded (ModelError, UsageError or
    NetworkError when it cannot be)."""
    if options.endpoint is not None:
        return load_remote(options.endpoint, options.model, progress)
    return load_local(resolve_model(options.model), options, progress)


# -- the session ----------------------------------------------------------------------------


def open_session(
    backend: Backend,
    options: SessionOptions,
    *,
    store: Store | None,
    entry: CatalogEntry | None,
    model_spec: str | None,
) -> ChatSession:
    """A new conversation, or `options.conversation_id` resumed from the store (its stored
    system prompt unless one was chosen). With `no_save` a resumed conversation is read from
    the store but nothing new is written to it."""
    params = generation_params(options, entry)
    common: dict[str, object] = {"model_spec": model_spec, "keep_reasoning": options.keep_reasoning}
    if options.conversation_id is not None and store is not None:
        if options.explicit_system:
            common["system_prompt"] = system_prompt(options, entry)
        session = ChatSession.resume(backend, params, store, options.conversation_id, **common)
        if options.no_save:
            session.store = None
        return session
    return ChatSession(
        backend,
        params,
        system_prompt=system_prompt(options, entry),
        store=None if options.no_save else store,
        model_spec=model_spec,
        keep_reasoning=options.keep_reasoning,
    )
