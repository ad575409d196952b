"""A conversation in progress — the one path both front ends (ask, the TUI) go through.

- Earlier assistant turns go back to the model as their final answer only (thinking and
  reflections stripped), which is how reasoning models are meant to be prompted and saves a
  large share of the context; `keep_reasoning` sends them whole.
- Before generating, the prompt is measured with the model's tokenizer; when history + new
  message + reply budget exceed the context, the oldest turns are dropped (never the system
  prompt, never the new message) and the count is reported. Each message is measured once
  (cached by content), the turns to drop are chosen from those sizes, and only the chosen
  prompt is measured whole — so planning a long `ask -c` history is linear, not quadratic.
- The rendered history is a pure function of what is stored, so it is byte-identical from turn
  to turn and llama.cpp's KV cache serves the shared prefix.
- With a store, the user's message is committed before generation starts and the reply when it
  ends — a cancelled reply is kept, marked cancelled, with its partial text.
"""

from __future__ import annotations

import weakref
from dataclasses import asdict, dataclass, field
from itertools import accumulate
from typing import Any, NoReturn, Protocol, TypeGuard

from reflectchat.core.chat.attachments import Attachment, describe, with_attachments
from reflectchat.core.chat.store import Store
from reflectchat.core.engine.base import (
    Backend,
    CancelToken,
    ContextOverflowError,
    GenerationParams,
    Message,
)
from reflectchat.core.reply.stream import ReplyResult, ReplyStream


class TokenCounter(Protocol):
    n_ctx: int

    def count_prompt_tokens(
        self, messages: list[Message], params: GenerationParams | None = None
    ) -> int: ...


@dataclass
class HistoryTurn:
    """One stored message as the session needs it."""

    role: str
    content: str  # the user's words, or the assistant's raw text
    answer: str | None = None  # the assistant's final answer
    message_id: int | None = None  # the stored message, when there is one
    attachments: tuple[Attachment, ...] = ()  # files and piped text sent with a user message


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
    # Token sizes of single messages, for the backend (and system prompt) they were measured
    # with; see _sizes.
    _sizes: dict[tuple[tuple[str, str], ...], int] = field(
        default_factory=dict, init=False, repr=False
    )
    _sized_for: tuple[Any, str | None] | None = field(default=None, init=False, repr=False)

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
        history = [
            HistoryTurn(m.role, m.content, m.answer, m.id, m.attachments) for m in stored.messages
        ]
        return cls(
            backend, params, store=store, conversation_id=conversation_id, history=history, **kwargs
        )

    # -- building the prompt ------------------------------------------------------------------

    def model_messages(self, turns: list[HistoryTurn]) -> list[Message]:
        messages = self._head()
        for turn in turns:
            message = self._turn_message(turn)
            if message is not None:
                messages.append(message)
        return messages

    def _head(self) -> list[Message]:
        return [] if self.system_prompt is None else [Message("system", self.system_prompt)]

    def _turn_message(self, turn: HistoryTurn) -> Message | None:
        if turn.role == "user":
            return Message("user", with_attachments(turn.content, turn.attachments))
        text = turn.content if self.keep_reasoning else (turn.answer or "")
        # a reply cancelled before its answer adds nothing to go on
        return Message("assistant", text) if text.strip() else None

    def plan(self, user_text: str, attachments: tuple[Attachment, ...] = ()) -> TurnPlan:
        """The messages to send: as much history as fits with the new message and the reply."""
        turns = [*self.history, HistoryTurn("user", user_text, attachments=attachments)]
        counter: TokenCounter | None = self.backend if _counts(self.backend) else None
        if counter is None:
            return TurnPlan(self.model_messages(turns), 0, 0)
        budget = counter.n_ctx - self.params.max_tokens
        head = self._head()
        starts = [i for i, t in enumerate(turns) if t.role == "user"]  # where each turn begins
        groups = []  # each turn's messages: the user's and what answered it
        for begin, end in zip(starts, [*starts[1:], len(turns)], strict=True):
            group = [self._turn_message(t) for t in turns[begin:end]]
            groups.append([m for m in group if m is not None])
        last = len(groups) - 1
        # Mostly the whole conversation fits: one measurement, no per-message sizes (which a
        # new `ask -c` process would otherwise measure one by one, every message of it).
        whole = [*head, *(m for g in groups for m in g)]
        tokens = counter.count_prompt_tokens(whole, self.params)  # as sent
        if tokens <= budget or last == 0:
            if tokens > budget:
                self._overflow(tokens, attachments, counter.n_ctx)
            return TurnPlan(whole, 0, tokens)
        # Estimated prompt size when the oldest d turns are dropped, from per-message sizes:
        # the prompt's fixed part plus the sizes of the kept messages.
        base, sizes, shared = self._sizes_of(counter, head, groups)
        kept = [*accumulate(sum(sizes[id(m)] for m in g) for g in reversed(groups))][::-1]
        count = [*accumulate(len(g) for g in reversed(groups))][::-1]

        def estimate(d: int) -> int:
            return base + kept[d] - shared * max(0, count[d] - 1)

        dropped = next((d for d in range(1, last) if estimate(d) <= budget), last)
        while True:
            # One real measurement of the chosen prompt; the estimate only picks the cut.
            messages = [*head, *(m for g in groups[dropped:] for m in g)]
            tokens = counter.count_prompt_tokens(messages, self.params)
            if tokens <= budget:
                return TurnPlan(messages, dropped, tokens)
            if dropped == last:
                self._overflow(tokens, attachments, counter.n_ctx)
            # The estimate was short: drop at least one more turn, enough (by estimate) to
            # cover what was over.
            over, cut = tokens - budget, dropped
            dropped += 1
            while dropped < last and estimate(cut) - estimate(dropped) < over:
                dropped += 1

    def _overflow(self, tokens: int, attachments: tuple[Attachment, ...], n_ctx: int) -> NoReturn:
        """The new message alone (with what comes before any history) is too big."""
        what, fix = "the message", "shorten the message"
        if attachments:  # the usual cause of a message this big: say which files
            what, fix = f"the message with its {describe(attachments)}", "attach less"
        raise ContextOverflowError(
            f"{what} needs {tokens} tokens of prompt plus {self.params.max_tokens} "
            f"for the reply, but the context holds {n_ctx}; {fix}, "
            "lower --max-tokens or raise --ctx"
        )

    def _sizes_of(
        self, counter: TokenCounter, head: list[Message], groups: list[list[Message]]
    ) -> tuple[int, dict[int, int], int]:
        """(the prompt's size with no messages beyond `head`, each message's added size by
        id(), the size two messages share when measured apart — a default system prompt some
        templates add to any conversation without one)."""
        try:  # a reference that cannot keep a model loaded after it is let go
            owner: Any = weakref.ref(self.backend)
        except TypeError:
            owner = None  # no weak reference: measure afresh for every plan
        key = (owner, self.system_prompt)
        if owner is None or key != self._sized_for:
            self._sizes.clear()
            self._sized_for = key
        cache = self._sizes

        def measured(messages: list[Message]) -> int:
            cache_key = tuple((m.role, m.content) for m in messages)
            if cache_key not in cache:
                cache[cache_key] = counter.count_prompt_tokens([*head, *messages])
            return cache[cache_key]

        base = measured([])
        sizes = {id(m): measured([m]) - base for g in groups for m in g}
        flat = [m for g in groups for m in g]
        shared = 0
        if len(flat) >= 2:  # measured on the conversation's own first pair (roles alternate)
            first, second = flat[0], flat[1]
            shared = max(0, sizes[id(first)] + sizes[id(second)] - (measured(flat[:2]) - base))
        return base, sizes, shared

    # -- one exchange ---------------------------------------------------------------------------

    def regenerate(self, cancel: CancelToken | None = None) -> ReplyStream:
        """A new reply to the last message, replacing the previous reply in the history and
        the store, so the model never sees (and the history never keeps) the discarded one."""
        asked = next((t for t in reversed(self.history) if t.role == "user"), None)
        while self.history and self.history[-1].role == "assistant":
            self.history.pop()
            if self.store is not None and self.conversation_id is not None:
                reply_to = asked.message_id if asked is not None else None
                self.store.delete_last_reply(self.conversation_id, reply_to)
        if not self.history:
            raise ValueError("nothing to regenerate: the conversation has no message yet")
        turn = self.history.pop()
        plan = self.plan(turn.content, turn.attachments)
        self.history.append(turn)
        return self._reply(plan, cancel)

    def send(
        self,
        user_text: str,
        cancel: CancelToken | None = None,
        attachments: tuple[Attachment, ...] = (),
    ) -> ReplyStream:
        """Commit the user's message (with its attachments), then return the reply stream;
        iterating it generates, and when it ends (finished, cancelled or abandoned) the reply
        is stored."""
        attachments = tuple(attachments)
        plan = self.plan(user_text, attachments)  # raises before anything is stored if too big
        message_id = None
        if self.store is not None:
            if self.conversation_id is None:
                self.conversation_id = self.store.create_conversation(
                    title=Store.title_from(user_text),
                    model=self.model_spec,
                    system_prompt=self.system_prompt,
                )
            message_id = self.store.add_message(
                self.conversation_id, "user", user_text, attachments=attachments
            ).id
        self.history.append(HistoryTurn("user", user_text, None, message_id, attachments))
        return self._reply(plan, cancel)

    def _reply(self, plan: TurnPlan, cancel: CancelToken | None) -> ReplyStream:
        self.last_plan = plan
        # A local engine restores this conversation's saved KV cache (a new process: ask -c,
        # the chat app reopening it) and saves it after the turn.
        warm_conversation(self.backend, self.conversation_id)
        # The reply is stored against the message it answers, so it keeps its place even if
        # another process adds to the conversation while it is generated.
        reply_to = self.history[-1].message_id if self.history else None
        return ReplyStream(
            self.backend,
            plan.messages,
            self.params,
            cancel or CancelToken(),
            on_finish=lambda result: self._record(result, reply_to),
        )

    def _record(self, result: ReplyResult, reply_to: int | None = None) -> None:
        self.history.append(HistoryTurn("assistant", result.raw_text, result.parsed.answer))
        if self.store is not None and self.conversation_id is not None:
            self.store.add_message(
                self.conversation_id,
                "assistant",
                result.raw_text,
                sections=result.parsed.to_dict()["sections"],
                answer=result.parsed.answer,
                model=result.model,
                # What a later render needs to show it the same: the format it was parsed in.
                params=asdict(self.params)
                | {
                    "format": result.parsed.format,
                    "thinking_incomplete": result.parsed.thinking_incomplete,
                },
                finish_reason=result.finish_reason,
                stats=result.stats.to_dict(),
                reply_to=reply_to,
            )


def warm_conversation(backend: Backend, conversation_id: int | None) -> None:
    """Tell a local engine which conversation its next turns belong to, so that it starts
    reading that conversation's saved KV cache now (the chat app calls this when one is
    reopened, while the user types); other backends have nothing to do."""
    use_conversation = getattr(backend, "use_conversation", None)
    if use_conversation is not None:
        use_conversation(conversation_id)


def _counts(backend: object) -> TypeGuard[TokenCounter]:
    return hasattr(backend, "count_prompt_tokens") and hasattr(backend, "n_ctx")
