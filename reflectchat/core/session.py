"""A conversation in progress — the one path both front ends (ask, the TUI) go through.

- Earlier assistant turns go back to the model as their final answer only (thinking and
  reflections stripped), which is how reasoning models are meant to be prompted and saves a
  large share of the context; `keep_reasoning` sends them whole.
- Before generating, the prompt is measured with the model's tokenizer; when history + new
  message + reply budget exceed the context, the oldest turns are dropped (never the system
  prompt, never the new message) and the count is reported.
- The rendered history is a pure function of what is stored, so it is byte-identical from turn
  to turn and llama.cpp's KV cache serves the shared prefix.
- With a store, the user's message is committed before generation starts and the reply when it
  ends — a cancelled reply is kept, marked cancelled, with its partial text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from reflectchat.core.engine import (
    Backend,
    CancelToken,
    ContextOverflowError,
    GenerationParams,
    Message,
)
from reflectchat.core.reply import ReplyResult, ReplyStream
from reflectchat.core.store import Store


class TokenCounter(Protocol):
    n_ctx: int

    def count_prompt_tokens(self, messages: list[Message]) -> int: ...


@dataclass
class HistoryTurn:
    """One stored message as the session needs it."""

    role: str
    content: str  # the user's words, or the assistant's raw text
    answer: str | None = None  # the assistant's final answer


@dataclass
class TurnPlan:
    messages: list[Message]
    dropped_turns: int
    prompt_tokens: int


@dataclass
class ChatSession:
    backend: Backend
    params: GenerationParams
    system_prompt: str | None = None
    store: Store | None = None
    conversation_id: int | None = None
    model_spec: str | None = None  # what to record as the conversation's model
    keep_reasoning: bool = False
    history: list[HistoryTurn] = field(default_factory=list)
    last_plan: TurnPlan | None = None

    @classmethod
    def resume(
        cls,
        backend: Backend,
        params: GenerationParams,
        store: Store,
        conversation_id: int,
        **kwargs: Any,
    ) -> ChatSession:
        """Continue a stored conversation (its system prompt unless one is given)."""
        stored = store.get_conversation(conversation_id)
        kwargs.setdefault("system_prompt", stored.system_prompt)
        history = [HistoryTurn(m.role, m.content, m.answer) for m in stored.messages]
        return cls(
            backend, params, store=store, conversation_id=conversation_id, history=history, **kwargs
        )

    # -- building the prompt ------------------------------------------------------------------

    def model_messages(self, turns: list[HistoryTurn]) -> list[Message]:
        messages = []
        if self.system_prompt is not None:
            messages.append(Message("system", self.system_prompt))
        for turn in turns:
            if turn.role == "user":
                messages.append(Message("user", turn.content))
                continue
            text = turn.content if self.keep_reasoning else (turn.answer or "")
            if text.strip():  # a reply cancelled before its answer adds nothing to go on
                messages.append(Message("assistant", text))
        return messages

    def plan(self, user_text: str) -> TurnPlan:
        """The messages to send: as much history as fits with the new message and the reply."""
        turns = [*self.history, HistoryTurn("user", user_text)]
        counter: TokenCounter | None = self.backend if _counts(self.backend) else None
        if counter is None:
            return TurnPlan(self.model_messages(turns), 0, 0)
        budget = counter.n_ctx - self.params.max_tokens
        starts = [i for i, t in enumerate(turns) if t.role == "user"]  # where each turn begins
        dropped = 0
        while True:
            messages = self.model_messages(turns[starts[dropped] :])
            tokens = counter.count_prompt_tokens(messages)
            if tokens <= budget:
                return TurnPlan(messages, dropped, tokens)
            if dropped == len(starts) - 1:
                alone = counter.count_prompt_tokens(self.model_messages(turns[-1:]))
                raise ContextOverflowError(
                    f"the message needs {alone} tokens of prompt plus {self.params.max_tokens} "
                    f"for the reply, but the context holds {counter.n_ctx}; shorten the "
                    "message, lower --max-tokens or raise --ctx"
                )
            dropped += 1

    # -- one exchange ---------------------------------------------------------------------------

    def regenerate(self, cancel: CancelToken | None = None) -> ReplyStream:
        """A new reply to the last message, replacing the previous reply in the history and
        the store, so the model never sees (and the history never keeps) the discarded one."""
        while self.history and self.history[-1].role == "assistant":
            self.history.pop()
            if self.store is not None and self.conversation_id is not None:
                self.store.delete_last_reply(self.conversation_id)
        if not self.history:
            raise ValueError("nothing to regenerate: the conversation has no message yet")
        user_text = self.history.pop().content
        plan = self.plan(user_text)
        self.history.append(HistoryTurn("user", user_text))
        return self._reply(plan, cancel)

    def send(self, user_text: str, cancel: CancelToken | None = None) -> ReplyStream:
        """Commit the user's message, then return the reply stream; iterating it generates, and
        when it ends (finished, cancelled or abandoned) the reply is stored."""
        plan = self.plan(user_text)  # raises before anything is stored if it can't fit
        if self.store is not None:
            if self.conversation_id is None:
                self.conversation_id = self.store.create_conversation(
                    title=Store.title_from(user_text),
                    model=self.model_spec,
                    system_prompt=self.system_prompt,
                )
            self.store.add_message(self.conversation_id, "user", user_text)
        self.history.append(HistoryTurn("user", user_text))
        return self._reply(plan, cancel)

    def _reply(self, plan: TurnPlan, cancel: CancelToken | None) -> ReplyStream:
        self.last_plan = plan
        return ReplyStream(
            self.backend,
            plan.messages,
            self.params,
            cancel or CancelToken(),
            on_finish=self._record,
        )

    def _record(self, result: ReplyResult) -> None:
        self.history.append(HistoryTurn("assistant", result.raw_text, result.parsed.answer))
        if self.store is not None and self.conversation_id is not None:
            self.store.add_message(
                self.conversation_id,
                "assistant",
                result.raw_text,
                sections=result.parsed.to_dict()["sections"],
                answer=result.parsed.answer,
                model=result.model,
                params=asdict(self.params),
                finish_reason=result.finish_reason,
                stats=result.stats.to_dict(),
            )


def _counts(backend: object) -> bool:
    return hasattr(backend, "count_prompt_tokens") and hasattr(backend, "n_ctx")


OnFinish = Callable[[ReplyResult], None]
