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
from reflectchat.core.reply.closing import closing_sequence
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
    thinking_cut: str | None = None  # "budget" or "user": the thinking was ended early

    def to_dict(self) -> dict[str, Any]:
        """The shape of `ask --json` and `view --json`."""
        body = self.parsed.to_dict()
        return {
            "model": self.model,
            "format": body["format"],
            "answer": body["answer"],
            "thinking": body["thinking"],
            "reflections": body["reflections"],
            "tool_calls": body["tool_calls"],
            "sections": body["sections"],
            "thinking_incomplete": body["thinking_incomplete"],
            **({"thinking_cut": self.thinking_cut} if self.thinking_cut else {}),
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
    # Counted live, as the model writes (a local engine's deltas are one token each).
    thinking_tokens: int = 0
    answer_tokens: int = 0
    thinking_cut: str | None = None  # "budget" or "user" once the thinking was ended early
    hidden_thinking_tokens: int = 0  # a remote server's thinking after the cut, not shown
    _answer_wanted: str | None = None
    _parser: SectionParser | None = None

    def answer_now(self, reason: str = "user") -> None:
        """End the thinking of this reply now and let the answer follow (any thread). A local
        engine writes the format's closing sequence itself; a remote one can't be steered, so
        the rest of its thinking is not shown."""
        self._answer_wanted = reason

    def __iter__(self) -> Iterator[SectionEvent]:
        override = self.params.reasoning_format
        parser = SectionParser(fmt=override)
        self._parser = parser
        chunks: list[str] = []
        prefill = ""
        finished: Finished | None = None
        # The engine gets its own token, so a leaked turn boundary can stop it without the
        # reply counting as cancelled by the user.
        engine_cancel = CancelToken()
        unhook = self.cancel.on_cancel(engine_cancel.cancel)
        turn_over = False
        budget = self.params.think_budget
        try:
            stream = self.backend.stream(self.messages, self.params, engine_cancel)
            with _closing(stream) as events:
                for event in events:
                    if type(event) is Delta:
                        if not event.text:
                            continue
                        if event.reasoning:
                            self.thinking_tokens += 1
                            if self.thinking_cut:  # a remote server thinking past the cut
                                self.hidden_thinking_tokens += 1
                                continue
                            parsed = parser.feed_reasoning(event.text)
                        else:
                            chunks.append(event.text)
                            # (a server's reasoning ends with the first content delta)
                            was_thinking = parser.in_reasoning and not parser.server_reasoning
                            parsed = parser.feed(event.text)
                            if was_thinking or parser.in_reasoning:
                                self.thinking_tokens += 1
                            else:
                                self.answer_tokens += 1
                        if parsed:
                            yield from parsed
                        if parser.ended and not turn_over:
                            turn_over = True  # what follows is not this reply
                            engine_cancel.cancel()
                        if (
                            budget is not None
                            and self.thinking_tokens >= budget
                            and not self._answer_wanted
                        ):
                            self._answer_wanted = "budget"
                        if self._answer_wanted and not self.thinking_cut and parser.in_reasoning:
                            yield self._cut(parser, engine_cancel)
                    elif type(event) is Started:
                        self.prompt_tokens = event.prompt_tokens
                        self.cached_tokens = event.cached_tokens
                        prefill = event.prefill
                        parser = SectionParser(prefill, override or event.format or None)
                        self._parser = parser
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
            finished.stats.thinking_tokens = self.thinking_tokens
            finished.stats.answer_tokens = self.answer_tokens
            self.result = ReplyResult(
                model=self.backend.model_name,
                raw_text="".join(chunks),
                parsed=parser.reply(),
                finish_reason=finished.reason,
                stats=finished.stats,
                prefill=prefill,
                error=finished.error,
                thinking_cut=self.thinking_cut,
            )
            if self.on_finish is not None:
                self.on_finish(self.result)

    def run(self) -> ReplyResult:
        """Consume the whole stream (no live display) and return the result."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result

    def _cut(self, parser: SectionParser, engine: CancelToken) -> SectionEvent:
        """End the thinking where the reply is; the event tells the display why."""
        reason = self._answer_wanted or "user"
        self.thinking_cut = reason
        if getattr(self.backend, "can_answer_now", False):
            fmt = parser.format
            engine.request_answer(
                closing_sequence(fmt, parser.open_kinds, wrap_up=reason == "budget")
            )
        return SectionEvent("cut", "thinking", reason)


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
