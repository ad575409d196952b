"""What every backend speaks: messages in, a stream of text deltas out.

A backend (local llama.cpp, a scripted one for tests, later remote servers) yields a `Started`
event, then `Delta`s of decoded text, then exactly one `Finished`. Everything above the backend
(section parsing, sessions, the CLI and the TUI) depends only on this module.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "cancelled", "error"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class GenerationParams:
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None
    max_tokens: int = 1024
    # Constrain decoding to <thinking>…</thinking><output>…</output>.
    strict_format: bool = False


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    ttft_s: float = 0.0
    tokens_per_second: float = 0.0
    total_s: float = 0.0

    def to_dict(self) -> dict[str, float | int]:
        d = asdict(self)
        for key in ("ttft_s", "tokens_per_second", "total_s"):
            d[key] = round(d[key], 4)
        return d


@dataclass(frozen=True)
class Started:
    """Generation began. `prefill` is reply text the chat template already wrote into the
    prompt (DeepSeek-R1's template ends with `<think>`), so the section parser starts there."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    prefill: str = ""


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Finished:
    reason: FinishReason
    stats: GenerationStats
    error: str | None = None  # for "error": what broke, said for people


StreamEvent = Started | Delta | Finished


class CancelToken:
    """Set from any thread (a signal handler, a UI key) to stop generation at the next token."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._callbacks: list[Callable[[], object]] = []
        self._lock = threading.Lock()

    def cancel(self) -> None:
        self._event.set()
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:  # e.g. close a network stream blocked in a read
            with contextlib.suppress(Exception):
                callback()

    def on_cancel(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Run `callback` when cancelled (at once if already); returns a function to unhook."""
        with self._lock:
            self._callbacks.append(callback)
        if self.cancelled:
            callback()

        def unhook() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unhook

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class EngineError(Exception):
    """A failure with a message meant for people (one line: what happened, what to do)."""


class ContextOverflowError(EngineError):
    """The prompt does not fit in the model's context window."""


class Backend(Protocol):
    """A model that turns a conversation into streamed text."""

    @property
    def model_name(self) -> str: ...

    def stream(
        self, messages: list[Message], params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[StreamEvent]: ...
