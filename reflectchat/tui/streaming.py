"""Between the generation thread and the UI: a buffer of section events and a token meter.

The worker thread iterates the `ReplyStream` and only ever appends to an `EventBuffer`; it never
waits for the UI, so a busy screen cannot slow the model down. The UI drains the buffer on a
timer (at most `FRAME_RATE` times a second), so a burst of tokens becomes one update.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from reflectchat.core.engine.base import Backend, CancelToken, Delta, GenerationParams, Message
from reflectchat.core.engine.base import StreamEvent as BackendEvent
from reflectchat.core.reply.sections import SectionEvent

FRAME_RATE = 20.0
"""UI updates per second while a reply streams, at most. Text at 20 updates a second reads as
smoothly as at 30, and every update is a layout and paint the model's CPU has to share."""


class EventBuffer:
    """Section events handed from the generation thread to the UI thread."""

    __slots__ = ("_events", "_lock")

    def __init__(self) -> None:
        self._events: list[SectionEvent] = []
        self._lock = threading.Lock()

    def append(self, event: SectionEvent) -> None:
        with self._lock:
            self._events.append(event)

    def drain(self) -> list[SectionEvent]:
        """Everything appended since the last drain, in order."""
        with self._lock:
            events, self._events = self._events, []
        return events


def merge_text(events: list[SectionEvent]) -> list[tuple[str, str, str, bool]]:
    """Collapse runs of text events of one kind into one item: (type, kind, text, complete);
    for an `open`, `text` is the section's label (a tool call's recipient).

    A batch of hundreds of one-token events becomes a handful of appends."""
    out: list[tuple[str, str, str, bool]] = []
    parts: list[str] = []
    kind = ""
    for event in events:
        if event.type == "text":
            if parts and event.kind != kind:
                out.append(("text", kind, "".join(parts), True))
                parts = []
            kind = event.kind
            parts.append(event.text)
            continue
        if parts:
            out.append(("text", kind, "".join(parts), True))
            parts = []
        # an open's label (a tool call's recipient), a cut's reason
        out.append((event.type, event.kind, event.label or event.text, event.complete))
    if parts:
        out.append(("text", kind, "".join(parts), True))
    return out


class MeteredBackend:
    """Wraps a backend to count the tokens (text deltas) of the reply being written, so the
    status line can show a live tokens/s. Everything else is the wrapped backend's."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.tokens = 0
        self.first_token_at = 0.0

    def __getattr__(self, name: str) -> Any:  # n_ctx, count_prompt_tokens, describe, …
        return getattr(self.inner, name)

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    def stream(
        self, messages: list[Message], params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[BackendEvent]:
        self.tokens = 0
        self.first_token_at = 0.0
        events = self.inner.stream(messages, params, cancel)
        try:
            for event in events:
                if type(event) is Delta:
                    if not self.tokens:
                        self.first_token_at = time.perf_counter()
                    self.tokens += 1
                yield event
        finally:  # closed early (cancelled, abandoned): close the backend's stream too
            close = getattr(events, "close", None)
            if close is not None:
                close()

    def live_rate(self) -> float:
        """Tokens per second since the first token (0 until there are two)."""
        if self.tokens < 2 or not self.first_token_at:
            return 0.0
        elapsed = time.perf_counter() - self.first_token_at
        return (self.tokens - 1) / elapsed if elapsed > 0 else 0.0
