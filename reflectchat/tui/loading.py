"""Which model to load and how to prompt it, for the chat app: the core's setup path
(core/chat/setup.py) plus what only the app has (folding the thinking panel, hiding reasoning).

The app is given a *backend factory* `(spec, progress) -> backend`: the real one loads a GGUF
with llama.cpp (called from a worker thread, reporting load progress); tests give one that
returns a `ScriptedBackend`, or a ready backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reflectchat.core.chat.setup import (
    SessionOptions,
    default_system_prompt,
    entry_for,
    generation_params,
    load_local,
    load_remote,
)
from reflectchat.core.engine.base import Backend
from reflectchat.core.errors import ReflectchatError

if TYPE_CHECKING:
    from reflectchat.core.engine.remote import Endpoint

ProgressFn = Callable[[float], bool | None]
BackendFactory = Callable[[str, ProgressFn], Backend]

__all__ = [
    "BackendFactory",
    "ChatOptions",
    "default_system_prompt",
    "entry_for",
    "generation_params",
    "llama_factory",
    "load_error_types",
    "remote_factory",
]


@dataclass
class ChatOptions(SessionOptions):
    """What `reflectchat chat` was asked for: the session's options and the app's own."""

    keep_thinking_open: bool = False
    show_reasoning: bool = True

    @classmethod
    def from_session(
        cls,
        options: SessionOptions,
        *,
        keep_thinking_open: bool = False,
        show_reasoning: bool = True,
    ) -> ChatOptions:
        chat = cls(keep_thinking_open=keep_thinking_open, show_reasoning=show_reasoning)
        for f in dataclasses.fields(SessionOptions):
            setattr(chat, f.name, getattr(options, f.name))
        return chat


def llama_factory(options: SessionOptions | None = None) -> BackendFactory:
    """Load GGUF models with llama.cpp, as `options` say. Errors come out as one-line
    exceptions (ModelError, UsageError)."""
    options = options or SessionOptions()

    def factory(spec: str, progress: ProgressFn) -> Backend:
        from reflectchat.core.models.resolve import resolve_model

        return load_local(resolve_model(spec), options, progress)

    return factory


def remote_factory(endpoint: Endpoint) -> BackendFactory:
    """A remote OpenAI-compatible server; `spec` is the server's model name."""

    def factory(spec: str, progress: ProgressFn) -> Backend:
        return load_remote(endpoint, spec, progress)

    return factory


def load_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions a model load reports as one human line: the core's errors (a ModelError,
    a NetworkError from a server, …), and the file system's."""
    return (ReflectchatError, OSError)
