"""Sending a prompt and streaming the reply: a part of `ChatApp`.

Generation runs in a worker thread that iterates the session's `ReplyStream` and only appends
the section events to a buffer; the UI drains that buffer a limited number of times a second
and appends to the message's Markdown incrementally, then renders it once in full at the end.
The thread never waits for the UI (lifecycle news goes by `post_message`, Textual's
thread-safe route), so a slow frame cannot stall the model and quitting cannot deadlock.
"""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.message import Message
from textual.timer import Timer
from textual.widget import Widget

from reflectchat.core.chat.attachments import Attachment
from reflectchat.core.chat.session import ChatSession
from reflectchat.core.chat.store import StoreError
from reflectchat.core.engine.base import CancelToken, EngineError
from reflectchat.core.reply.stream import ReplyResult, ReplyStream
from reflectchat.tui.attachments import AttachmentsBlock
from reflectchat.tui.commands import UNSET
from reflectchat.tui.messages import AssistantMessage, UserMessage
from reflectchat.tui.streaming import FRAME_RATE, EventBuffer

if TYPE_CHECKING:
    from reflectchat.tui.app import ChatApp

# -- news from the generation thread (posted, never waited on) -------------------------------


class ReplyStarted(Message):
    def __init__(self, reply: AssistantMessage, session: ChatSession) -> None:
        super().__init__()
        self.reply = reply
        self.session = session


class ReplyFailed(Message):
    """Nothing was generated: the prompt did not fit, the history could not be written, …"""

    def __init__(self, reply: AssistantMessage, error: str) -> None:
        super().__init__()
        self.reply = reply
        self.error = error


class DrainEvents(Message):
    """Time to draw what the generation thread has produced since the last frame."""


class ReplyDone(Message):
    def __init__(
        self, reply: AssistantMessage, session: ChatSession, result: ReplyResult | None, error: str
    ) -> None:
        super().__init__()
        self.reply = reply
        self.session = session
        self.result = result
        self.error = error


class Replies:
    """The reply being written for `app`: queued while the model loads, generated in a
    thread, drawn frame by frame, stopped, regenerated."""

    def __init__(self, app: ChatApp) -> None:
        self.app = app
        self._pending: tuple[str, AssistantMessage] | None = None  # waiting for the model
        self._active: AssistantMessage | None = None
        self._cancel: CancelToken | None = None
        self._stream: ReplyStream | None = None  # the reply being generated, for "answer now"
        self._buffer = EventBuffer()
        self._drain_timer: Timer | None = None
        self._drain_posted = False
        self._status_at = 0.0
        # What /attach gathered for the next message, and what a queued message carries.
        self.attachments: list[Attachment] = []
        self._queued: tuple[Attachment, ...] = ()

    @property
    def pending(self) -> bool:
        """A prompt is waiting for the model to load (nothing sent or stored yet)."""
        return self._pending is not None

    def take_pending(self) -> tuple[str, AssistantMessage] | None:
        """The prompt waiting for the model, if any; it waits no longer."""
        pending, self._pending = self._pending, None
        return pending

    def answer_now(self) -> bool:
        """End the thinking of the reply being written and let the answer follow; whether a
        reply was being written."""
        stream = self._stream
        if self._cancel is None or stream is None or stream.result is not None:
            return False
        stream.answer_now("user")
        return True

    def cancel(self) -> bool:
        """Ask the generating thread (if any) to stop; whether there was one."""
        if self._cancel is None:
            return False
        self._cancel.cancel()
        return True

    # -- sending -------------------------------------------------------------------------------

    async def send(self, text: str) -> None:
        """Show the prompt and start the reply (or queue it while the model loads)."""
        app = self.app
        if not text.strip():
            return
        if app.generating or self._pending is not None:
            app.say("A reply is being written — wait, or press Esc to stop it.", "warning")
            return
        app.prompt_input.remember(text)
        await app.conversations.remove_welcome()
        reply = AssistantMessage(keep_thinking_open=app.keep_thinking_open)
        attachments, self.attachments = tuple(self.attachments), []
        shown: list[Widget] = [UserMessage(text)]
        if attachments:
            shown.append(AttachmentsBlock(attachments))
        await app.chat.mount_all([*shown, reply])
        app.chat.anchor()
        self._start(reply, text, attachments)

    def _start(
        self, reply: AssistantMessage, text: str, attachments: tuple[Attachment, ...] = ()
    ) -> None:
        app = self.app
        self._queued = attachments
        if app.backend is None:
            if app.loading:
                self._pending = (text, reply)
                reply.wait_for_model()
                app.generating = True
            else:
                reply.fail(
                    f"no model is loaded ({app.load_error or 'none'}); /model NAME loads one"
                )
            return
        self.generate_into(reply, text)

    def generate_into(
        self,
        reply: AssistantMessage,
        text: str,
        *,
        regenerate: bool = False,
        attachments: tuple[Attachment, ...] | None = None,
    ) -> None:
        """`attachments` None: those of the message queued while the model loaded."""
        app = self.app
        if attachments is None:
            attachments, self._queued = self._queued, ()
        session = self.ensure_session()
        if session is None:
            reply.fail("the conversation could not be opened (see the notification)")
            app.generating = False
            return
        self._cancel = CancelToken()
        self._buffer = EventBuffer()
        self._active = reply
        app.generating = True
        self._drain_timer = app.set_interval(1 / FRAME_RATE, self._request_drain)
        app.run_worker(
            partial(
                self._generate,
                session,
                (text, attachments),
                self._cancel,
                self._buffer,
                reply,
                regenerate,
            ),
            name="generate",
            group="generate",
            description="generate",
            exit_on_error=False,
            thread=True,
        )

    def ensure_session(self) -> ChatSession | None:
        app = self.app
        assert app.backend is not None
        if app.session is not None:
            app.session.backend = app.backend
            return app.session
        if app.conversation_id is not None and app.store is not None:
            common: dict[str, Any] = {
                "model_spec": app.model_spec,
                "keep_reasoning": app.options.keep_reasoning,
            }
            if app.system_override is not UNSET:
                common["system_prompt"] = app.system_override
            try:
                app.session = ChatSession.resume(
                    app.backend, app.params, app.store, app.conversation_id, **common
                )
            except StoreError as exc:
                app.say(str(exc), "error")
                return None
        else:
            app.session = ChatSession(
                app.backend,
                app.params,
                system_prompt=app.system_prompt,
                store=app.store,
                model_spec=app.model_spec,
                keep_reasoning=app.options.keep_reasoning,
            )
        return app.session

    def _generate(
        self,
        session: ChatSession,
        message: tuple[str, tuple[Attachment, ...]],
        cancel: CancelToken,
        buffer: EventBuffer,
        reply: AssistantMessage,
        regenerate: bool = False,
    ) -> None:
        """In the worker thread: only appends to `buffer` and posts news to the app."""
        post = self.app.post_message
        try:
            text, attachments = message
            stream = (
                session.regenerate(cancel)
                if regenerate
                else session.send(text, cancel, attachments)
            )
        except (EngineError, StoreError) as exc:
            post(ReplyFailed(reply, str(exc)))
            return
        except Exception as exc:
            post(ReplyFailed(reply, f"unexpected error: {type(exc).__name__}: {exc}"))
            return
        self._stream = stream
        post(ReplyStarted(reply, session))
        error = ""
        try:
            for event in stream:
                buffer.append(event)
        except StoreError as exc:
            error = f"the reply was not saved: {exc}"
        except EngineError as exc:
            error = str(exc)
        except Exception as exc:
            error = f"unexpected error: {type(exc).__name__}: {exc}"
        post(ReplyDone(reply, session, stream.result, error))

    # -- drawing -------------------------------------------------------------------------------

    def _request_drain(self) -> None:
        # The timer only asks; the drawing happens in the app's own message queue, in order
        # with ReplyDone (a stopped timer would cancel a drawing callback halfway through).
        if not self._drain_posted:
            self._drain_posted = True
            self.app.post_message(DrainEvents())

    async def drain(self) -> None:
        app = self.app
        self._drain_posted = False
        reply = self._active
        if reply is None:
            return
        stream = self._stream
        if stream is not None and stream.thinking_tokens != reply.thinking_tokens:
            reply.thinking_tokens = stream.thinking_tokens
            reply.update_title()
        events = self._buffer.drain()
        if events:
            await reply.apply(events)
        now = time.monotonic()
        backend = app.backend
        if backend is not None and backend.tokens and now - self._status_at >= 0.25:
            self._status_at = now  # the live figures change a few times a second, no more
            plan = app.session.last_plan if app.session is not None else None
            if plan is not None and plan.prompt_tokens:
                app.context_used = plan.prompt_tokens + backend.tokens
            app.last_rate = backend.live_rate() or None
            app.show_usage()

    def started(self, message: ReplyStarted) -> None:
        app = self.app
        plan = message.session.last_plan
        if message.session.conversation_id != app.conversation_id:
            app.conversation_id = message.session.conversation_id
            app.conversations.refresh_sidebar()
        if plan is not None and plan.dropped_turns:
            n = plan.dropped_turns
            app.say(
                f"Left out the {n} oldest turn{'s' if n != 1 else ''} to fit the context"
                f" ({app.n_ctx() or '?'} tokens).",
                "warning",
            )

    async def failed(self, message: ReplyFailed) -> None:
        app = self.app
        self._stop_streaming()
        message.reply.fail(message.error)
        app.say(message.error, "error")
        if app.exit_signal is not None:
            app.stop_signals.exit_now()

    async def done(self, message: ReplyDone) -> None:
        app = self.app
        self._stop_streaming(still_drawing=True)
        events = self._buffer.drain()
        if events:
            await message.reply.apply(events)
        await message.reply.finish(message.result, message.error or None)
        app.generating = False
        result = message.result
        if result is not None:
            stats = result.stats
            if stats.prompt_tokens or stats.completion_tokens:
                app.context_used = stats.prompt_tokens + stats.completion_tokens
            app.last_rate = stats.tokens_per_second or None
        app.show_usage()
        if message.error:
            app.say(message.error, "error")
        app.conversation_id = message.session.conversation_id
        app.conversations.refresh_sidebar()
        app.refresh_bindings()
        if app.exit_signal is not None:  # the partial reply is saved: now leave
            app.stop_signals.exit_now()

    def _stop_streaming(self, *, still_drawing: bool = False) -> None:
        """The worker is done. `generating` stays set while the end is still being drawn."""
        if self._drain_timer is not None:
            self._drain_timer.stop()
            self._drain_timer = None
        self._active = None
        self._cancel = None
        if not still_drawing:
            self.app.generating = False

    # -- stop, regenerate ------------------------------------------------------------------------

    def stop(self) -> None:
        app = self.app
        pending = self.take_pending()
        if pending is not None:
            _, reply = pending
            app.generating = False
            reply.fail("stopped before the model had loaded; nothing was sent")
            return
        if self.cancel():
            app.show_usage("stopping…")

    async def regenerate(self) -> None:
        app = self.app
        if app.generating:
            return
        replies = list(app.chat.query(AssistantMessage))
        users = list(app.chat.query(UserMessage))
        if not replies or not users:
            app.say("Nothing to regenerate yet.")
            return
        last_reply, last_user = replies[-1], users[-1]
        if app.backend is None:
            app.say("No model is loaded.", "warning")
            return
        session = self.ensure_session()
        if session is None:
            return
        history = session.history
        # A reply that was generated is replaced (in the history and the store); one that
        # failed before generating (e.g. a full context) is simply tried again.
        replace = (
            last_reply.result is not None
            and len(history) >= 2
            and history[-1].role == "assistant"
            and history[-2].role == "user"
        )
        await last_reply.remove()
        reply = AssistantMessage(keep_thinking_open=app.keep_thinking_open)
        # The reply goes after the message's attachments, and a retry sends them again.
        after: Widget = last_user
        attached: tuple[Attachment, ...] = ()
        children = list(app.chat.children)
        at = children.index(last_user) + 1
        block = children[at] if at < len(children) else None
        if isinstance(block, AttachmentsBlock):
            after, attached = block, block.attachments
        await app.chat.mount(reply, after=after)
        app.chat.anchor()
        self.generate_into(reply, last_user.prompt, regenerate=replace, attachments=attached)
