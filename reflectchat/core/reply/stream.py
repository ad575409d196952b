"""One assistant reply, end to end: backend text in, section events out, a final result.

This is the single path the CLI (`ask`) and the TUI use, so parsing, stats and cancellation
behave the same in both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from reflectchat.core.engine.base import (
    Backend,
    CancelToken,
    Delta,
    Finished,
    FinishReason,
    GenerationParams,
    GenerationStats,
    Message,
    Started,
    StreamEvent,
)
from reflectchat.core.reply.sections import ParsedReply, SectionEvent, SectionParser


@dataclass
class ReplyResult:
    model: str
    raw_text: str
    parsed: ParsedReply
    finish_reason: FinishReason
    stats: GenerationStats
    prefill: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The shape of `ask --json` and `view --json`."""
        body = self.parsed.to_dict()
        return {
            "model": self.model,
            "answer": body["answer"],
            "thinking": body["thinking"],
            "reflections": body["reflections"],
            "sections": body["sections"],
            "thinking_incomplete": body["thinking_incomplete"],
            "finish_reason": self.finish_reason,
            "stats": self.stats.to_dict(),
            **({"error": self.error} if self.error else {}),
        }


@dataclass
class ReplyStream:
    """Iterate to get `SectionEvent`s as the model writes; `result` is set when it ends.

    Cancelling (from another thread or a signal handler) stops the backend within one token;
    what was written so far is kept and the result is marked `cancelled`.
    """

    backend: Backend
    messages: list[Message]
    params: GenerationParams
    cancel: CancelToken = field(default_factory=CancelToken)
    on_finish: Callable[[ReplyResult], None] | None = None
    result: ReplyResult | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0

    def __iter__(self) -> Iterator[SectionEvent]:
        override = self.params.reasoning_format
        parser = SectionParser(fmt=override)
        chunks: list[str] = []
        prefill = ""
        finished: Finished | None = None
        # The engine gets its own token, so a leaked turn boundary can stop it without the
        # reply counting as cancelled by the user.
        engine_cancel = CancelToken()
        unhook = self.cancel.on_cancel(engine_cancel.cancel)
        turn_over = False
        try:
            stream = self.backend.stream(self.messages, self.params, engine_cancel)
            with _closing(stream) as events:
                for event in events:
                    if type(event) is Delta:
                        if event.reasoning:
                            parsed = parser.feed_reasoning(event.text)
                        else:
                            chunks.append(event.text)
                            parsed = parser.feed(event.text)
                        if parsed:
                            yield from parsed
                        if parser.ended and not turn_over:
                            turn_over = True  # what follows is not this reply
                            engine_cancel.cancel()
                    elif type(event) is Started:
                        self.prompt_tokens = event.prompt_tokens
                        self.cached_tokens = event.cached_tokens
                        prefill = event.prefill
                        parser = SectionParser(prefill, override or event.format or None)
                    elif type(event) is Finished:
                        finished = event
                        if turn_over and not self.cancel.cancelled:
                            finished = Finished("stop", event.stats, event.error)
            yield from parser.finish()
        finally:
            unhook()
            # Also reached when the consumer stops early or a second Ctrl+C interrupts: what
            # was written so far is kept, marked cancelled.
            if finished is None:
                reason = "error" if chunks and not self.cancel.cancelled else "cancelled"
                finished = Finished(reason, GenerationStats())  # type: ignore[arg-type]
                parser.finish()
            self.result = ReplyResult(
                model=self.backend.model_name,
                raw_text="".join(chunks),
                parsed=parser.reply(),
                finish_reason=finished.reason,
                stats=finished.stats,
                prefill=prefill,
                error=finished.error,
            )
            if self.on_finish is not None:
                self.on_finish(self.result)

    def run(self) -> ReplyResult:
        """Consume the whole stream (no live display) and return the result."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result


@contextmanager
def _closing(events: Iterator[StreamEvent]) -> Iterator[Iterator[StreamEvent]]:
    """Close a backend's generator when the consumer stops early, so the engine frees its
    decoding state now rather than at garbage collection. Backends may return any iterator."""
    try:
        yield events
    finally:
        close = getattr(events, "close", None)
        if callable(close):
            close()


def result_from_text(text: str, model: str = "", fmt: str | None = None) -> ReplyResult:
    """A finished reply built from raw tagged text (for `view`: no model involved)."""
    parser = SectionParser(fmt=fmt)
    parser.feed(text)
    parser.finish()
    return ReplyResult(
        model=model,
        raw_text=text,
        parsed=parser.reply(),
        finish_reason="stop",
        stats=GenerationStats(),
    )
