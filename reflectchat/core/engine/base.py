"""What every backend speaks: messages in, a stream of text deltas out.

A backend (local llama.cpp, a scripted one for tests, later remote servers) yields a `Started`
event, then `Delta`s of decoded text, then exactly one `Finished`. Everything above the backend
(section parsing, sessions, the CLI and the TUI) depends only on this module.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

# The engine's errors, from the one root (their home); re-exported under their old address.
from reflectchat.core.errors import ContextOverflowError as ContextOverflowError
from reflectchat.core.errors import EngineError as EngineError
from reflectchat.core.errors import ModelError

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
    # A reasoning format's name (`--format`): overrides what the engine detected.
    reasoning_format: str | None = None
    # Thinking control (issue 11): a token budget for the thinking (0: none where the format
    # allows), thinking on/off, and effort low|medium|high, each mapped per format.
    think_budget: int | None = None
    think: bool | None = None
    effort: str | None = None


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    ttft_s: float = 0.0
    tokens_per_second: float = 0.0
    total_s: float = 0.0
    thinking_tokens: int = 0  # reflections and budget notes included
    answer_tokens: int = 0

    def to_dict(self) -> dict[str, float | int]:
        d = asdict(self)
        for key in ("ttft_s", "tokens_per_second", "total_s"):
            d[key] = round(d[key], 4)
        return d


class StatsClock:
    """Speed bookkeeping for one generation, the same in every backend: started when made,
    `token()` for each token out (the first one stops the time-to-first-token clock),
    `stats()` at the end. Tokens per second count from the first token, so they measure
    decoding alone, and need two tokens to mean anything."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first_at = 0.0
        self.tokens = 0

    def first_token(self) -> None:
        """The first token arrived (also one that is not counted, e.g. end-of-generation)."""
        if not self.first_at:
            self.first_at = time.perf_counter()

    def token(self) -> None:
        self.first_token()
        self.tokens += 1

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def stats(
        self,
        *,
        prompt_tokens: int = 0,
        cached_tokens: int = 0,
        completion_tokens: int | None = None,
    ) -> GenerationStats:
        """The stats as of now; `completion_tokens` overrides the count (a server's usage)."""
        end = time.perf_counter()
        first = self.first_at or end
        n = self.tokens if completion_tokens is None else completion_tokens
        decode_s = end - first
        return GenerationStats(
            prompt_tokens=prompt_tokens,
            completion_tokens=n,
            cached_tokens=cached_tokens,
            ttft_s=first - self.start,
            tokens_per_second=n / decode_s if n > 1 and decode_s > 0 else 0.0,
            total_s=end - self.start,
        )


@dataclass(frozen=True)
class Started:
    """Generation began. `prefill` is reply text the chat template already wrote into the
    prompt (DeepSeek-R1's template ends with `<think>`), so the section parser starts there."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    prefill: str = ""
    format: str = ""  # the reasoning format the engine detected (core/reply/detect.py)


@dataclass(frozen=True)
class Delta:
    text: str
    # A server's own reasoning channel (`reasoning_content`): thinking as it is, never parsed
    # for markers, so a `</think>` inside it cannot end the thinking early.
    reasoning: bool = False


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
        self._answer_request: str | None = None

    def request_answer(self, closing: str) -> None:
        """Ask the engine to end the thinking now by writing `closing` (the format's closing
        sequence) as if the model had, then go on decoding the answer."""
        with self._lock:
            self._answer_request = closing

    def take_answer_request(self) -> str | None:
        """For the engine, once per request: the closing text to force, if asked."""
        with self._lock:
            closing, self._answer_request = self._answer_request, None
        return closing

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


class ModelLoadError(ModelError, EngineError):
    """The model file could not be loaded; the message names the file and what to do."""


class Backend(Protocol):
    """A model that turns a conversation into streamed text."""

    @property
    def model_name(self) -> str: ...

    def stream(
        self, messages: list[Message], params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[StreamEvent]: ...
