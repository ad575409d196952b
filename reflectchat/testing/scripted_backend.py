"""A backend that replays scripted text: fast, deterministic tests of everything above the
engine (rendering, sessions, the TUI). It never stands in for the engine's own tests."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from reflectchat.core.engine.base import (
    CancelToken,
    Delta,
    Finished,
    FinishReason,
    GenerationParams,
    Message,
    Started,
    StatsClock,
    StreamEvent,
)


class ScriptedBackend:
    """Streams each scripted reply in the given chunks, one reply per call to `stream`."""

    def __init__(
        self,
        replies: Sequence[str | Sequence[str]],
        *,
        name: str = "scripted",
        delay_s: float = 0.0,
        prefill: str = "",
        n_ctx: int | None = None,
    ) -> None:
        self._replies = [[r] if isinstance(r, str) else list(r) for r in replies]
        self._name = name
        self.delay_s = delay_s
        self.prefill = prefill
        self.calls: list[list[Message]] = []
        if n_ctx is not None:  # only then does the session budget the context
            self.n_ctx = n_ctx

    def count_prompt_tokens(
        self, messages: list[Message], params: GenerationParams | None = None
    ) -> int:
        """One token per word plus four per message: a stand-in tokenizer for tests."""
        return sum(len(m.content.split()) + 4 for m in messages)

    @property
    def model_name(self) -> str:
        return self._name

    def stream(
        self, messages: list[Message], params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[StreamEvent]:
        self.calls.append(list(messages))
        chunks = self._replies[(len(self.calls) - 1) % len(self._replies)]
        clock = StatsClock()
        prompt_tokens = self.count_prompt_tokens(messages)
        yield Started(prompt_tokens=prompt_tokens, prefill=self.prefill)
        reason: FinishReason = "stop"
        for chunk in chunks:
            if clock.tokens >= params.max_tokens:
                reason = "length"
                break
            if cancel is not None and cancel.cancelled:
                reason = "cancelled"
                break
            if self.delay_s:
                time.sleep(self.delay_s)
            clock.token()
            yield Delta(chunk)
        yield Finished(reason, clock.stats(prompt_tokens=prompt_tokens))
