"""The chat app: conversations on the left, the chat in the middle, the prompt below.

Generation runs in a worker thread that iterates the session's `ReplyStream` and only appends
the section events to a buffer; the UI drains that buffer a limited number of times a second
and appends to the message's Markdown incrementally, then renders it once in full at the end.
The thread never waits for the UI (lifecycle news goes by `post_message`, Textual's
thread-safe route), so a slow frame cannot stall the model and quitting cannot deadlock.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import time
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Footer, Markdown

from reflectchat.core.chat.session import ChatSession
from reflectchat.core.chat.store import Store, StoreError
from reflectchat.core.engine.base import Backend, CancelToken, EngineError
from reflectchat.core.reply.sanitize import strip_controls
from reflectchat.core.reply.stream import ReplyResult
from reflectchat.tui.commands import UNSET, CommandsMixin
from reflectchat.tui.conversations import ConversationsMixin
from reflectchat.tui.loading import (
    BackendFactory,
    ChatOptions,
    default_system_prompt,
    entry_for,
    generation_params,
    load_error_types,
)
from reflectchat.tui.messages import (
    AssistantMessage,
    ExamplePicked,
    Note,
    ThinkingPanel,
    UserMessage,
)
from reflectchat.tui.prompt import PromptInput
from reflectchat.tui.screens import HelpScreen
from reflectchat.tui.sidebar import Sidebar
from reflectchat.tui.slash import parse_slash, unescape_message
from reflectchat.tui.status import StatusLine, describe_backend
from reflectchat.tui.streaming import FRAME_RATE, EventBuffer, MeteredBackend

# -- news from worker threads (posted, never waited on) -------------------------------------


class ModelLoaded(Message):
    def __init__(self, backend: Backend, spec: str) -> None:
        super().__init__()
        self.backend = backend
        self.spec = spec


class ModelLoadFailed(Message):
    def __init__(self, spec: str, error: str) -> None:
        super().__init__()
        self.spec = spec
        self.error = error


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


class ChatApp(CommandsMixin, ConversationsMixin, App[None]):
    """`reflectchat chat`. Give it a ready `backend`, or a `backend_factory` to load
    `options.model` with (in a worker thread, showing progress)."""

    CSS_PATH = str(Path(__file__).with_name("chat.tcss"))  # absolute: subclasses live elsewhere
    TITLE = "reflectchat"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+c", "stop", "Stop", show=False, priority=True),
        Binding("ctrl+n", "new_chat", "New chat"),
        Binding("ctrl+t", "toggle_thinking", "Thinking"),
        Binding("ctrl+r", "regenerate", "Retry"),
        Binding("ctrl+o", "copy_answer", "Copy answer"),
        Binding("f1", "help", "Help"),
        Binding("ctrl+d", "quit_if_empty", show=False, priority=True),
    ]

    generating: reactive[bool] = reactive(False, init=False)

    def __init__(
        self,
        *,
        backend: Backend | None = None,
        backend_factory: BackendFactory | None = None,
        options: ChatOptions | None = None,
        store: Store | None = None,
        store_error: str | None = None,
    ) -> None:
        super().__init__()
        if backend is None and backend_factory is None:
            raise ValueError("ChatApp needs a backend or a backend_factory")
        self.options = options or ChatOptions()
        self._factory = backend_factory
        self._given_backend = backend
        self.model_spec = self.options.model or (
            backend.model_name if backend is not None else "smollm2"
        )
        self.entry = entry_for(self.model_spec, backend)
        self.params = generation_params(self.options, self.entry)
        self.backend: MeteredBackend | None = None
        self.store = store
        self._store_error = store_error
        self.session: ChatSession | None = None
        self.conversation_id: int | None = self.options.conversation_id
        self._system_override: Any = UNSET
        if self.options.no_system:
            self._system_override = None
        elif self.options.system is not None:
            self._system_override = self.options.system
        self.keep_thinking_open = self.options.keep_thinking_open
        self.loading = False
        self.load_error: str | None = None
        self._load_progress = 0.0
        self._abort_load = False
        self._progress_timer: Timer | None = None
        self._pending: tuple[str, AssistantMessage] | None = None
        self._active: AssistantMessage | None = None
        self._cancel: CancelToken | None = None
        self._buffer = EventBuffer()
        self._drain_timer: Timer | None = None
        self._drain_posted = False
        self._filter = ""
        self._context_used: int | None = None
        self._last_rate: float | None = None
        self.initial_theme: str | None = None
        self._status_at = 0.0
        self.exit_signal: int | None = None  # SIGTERM/SIGHUP: the app is on its way out
        self._signals: list[int] = []

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield Sidebar(id="sidebar")
            with Vertical(id="main"):
                yield VerticalScroll(id="chat")
                yield PromptInput(id="prompt")
                yield StatusLine(id="status")
        yield Footer()

    @property
    def chat(self) -> VerticalScroll:
        return self.query_one("#chat", VerticalScroll)

    @property
    def prompt_input(self) -> PromptInput:
        return self.query_one(PromptInput)

    @property
    def status_line(self) -> StatusLine:
        return self.query_one(StatusLine)

    async def on_mount(self) -> None:
        if self.initial_theme:
            if self.initial_theme in self.available_themes:
                self.theme = self.initial_theme
            else:
                self._say(f"No theme '{self.initial_theme}' (see /theme); using the default.")
        self.chat.anchor()
        if not self.options.show_reasoning:
            self.chat.add_class("-hide-reasoning")
        if self._store_error:
            self._say(f"History is off: {self._store_error}", "warning")
        if self.options.continue_last and self.store is not None and self.conversation_id is None:
            self.conversation_id = self._store_call(self.store.latest_conversation_id)
        shown = False
        if self.conversation_id is not None:
            shown = await self._show_conversation(self.conversation_id)
        if not shown:
            self.conversation_id = None
            await self._show_welcome()
        self._refresh_sidebar()
        if self._given_backend is not None:
            self._use_backend(self._given_backend, self.model_spec)
        else:
            self._start_load(self.model_spec)
        self.prompt_input.focus()
        self._catch_stop_signals()
        # Everything alive now (Python, Textual, the stylesheet) lives as long as the app: keep
        # it out of the garbage collector's way, so each collection while a reply streams only
        # scans what the reply created. (20,000 tokens: ~20% faster, and linear again.)
        gc.collect()
        gc.freeze()

    def on_unmount(self) -> None:
        gc.unfreeze()
        self._release_stop_signals()
        # A worker thread may still be generating or loading: let it stop at once.
        self._abort_load = True
        if self._cancel is not None:
            self._cancel.cancel()

    # -- the model -------------------------------------------------------------------------

    def _start_load(self, spec: str) -> None:
        self.loading = True
        self.load_error = None
        self._load_progress = 0.0
        self.model_spec = spec
        self.entry = entry_for(spec)
        self.status_line.show_model([f"Loading {strip_controls(spec)}…"])
        self.status_line.show_progress(0.0)
        self._progress_timer = self.set_interval(0.25, self._show_load_progress)
        self._load_worker(spec)

    def _show_load_progress(self) -> None:
        self.status_line.show_progress(self._load_progress)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load_worker(self, spec: str) -> None:
        assert self._factory is not None

        def progress(value: float) -> bool:
            self._load_progress = value
            return not self._abort_load

        try:
            backend = self._factory(spec, progress)
        except load_error_types() as exc:
            self.post_message(ModelLoadFailed(spec, str(exc)))
            return
        except Exception as exc:  # never a crash: say what happened
            self.post_message(
                ModelLoadFailed(spec, f"unexpected error: {type(exc).__name__}: {exc}")
            )
            return
        self.post_message(ModelLoaded(backend, spec))

    def _end_load(self) -> None:
        self.loading = False
        if self._progress_timer is not None:
            self._progress_timer.stop()
            self._progress_timer = None
        self.status_line.show_progress(None)

    def on_model_loaded(self, message: ModelLoaded) -> None:
        self._end_load()
        self._use_backend(message.backend, message.spec)

    def on_model_load_failed(self, message: ModelLoadFailed) -> None:
        self._end_load()
        self.load_error = message.error
        self.status_line.show_model(
            ["No model loaded — /model NAME loads one"], style="$text-error"
        )
        self._say(message.error, "error", title="The model could not be loaded")
        if self._pending is not None:
            _, reply = self._pending
            self._pending = None
            reply.fail(f"no model: {message.error}")
        self.mount_note(f"✗ {message.error}", classes="error")

    def _use_backend(self, backend: Backend, spec: str) -> None:
        self.backend = MeteredBackend(backend)
        self.model_spec = spec
        self.entry = entry_for(spec, backend)
        self.params = generation_params(self.options, self.entry)
        if self.session is not None:
            self.session.backend = self.backend
            self.session.params = self.params
        try:
            parts = describe_backend(backend)
        except Exception:  # a status line is not worth a crash
            parts = [strip_controls(backend.model_name)]
        self.status_line.show_model(parts)
        self._show_usage()
        if self._pending is not None:
            text, reply = self._pending
            self._pending = None
            self._generate_into(reply, text)

    def _n_ctx(self) -> int | None:
        n_ctx = getattr(self.backend, "n_ctx", None) if self.backend is not None else None
        return n_ctx if isinstance(n_ctx, int) else None

    def _show_usage(self, note: str = "") -> None:
        self.status_line.show_usage(
            used=self._context_used, n_ctx=self._n_ctx(), rate=self._last_rate, note=note
        )

    def switch_model(self, spec: str) -> None:
        spec = spec.strip()
        if not spec:
            return
        if self._factory is None:
            self._say("This chat was started with a fixed model; it cannot switch.", "warning")
            return
        if self.generating or self.loading:
            self._say("Wait for the reply or the load to finish (Esc stops a reply).", "warning")
            return
        # Drop the old model first: two 70B models do not fit in memory together.
        self.backend = None
        if self.session is not None:
            self.session.backend = None  # type: ignore[assignment]
        self._context_used = None
        self._last_rate = None
        self._start_load(spec)

    # -- sending -----------------------------------------------------------------------------

    @on(PromptInput.Submitted)
    async def _on_prompt(self, event: PromptInput.Submitted) -> None:
        event.stop()
        text = event.text
        command = parse_slash(text)
        if command is not None:
            self.prompt_input.remember(text)
            await self.run_slash(command.name, command.arg)
            return
        await self.send(unescape_message(text))

    async def on_example_picked(self, message: ExamplePicked) -> None:
        await self.send(message.prompt)

    async def send(self, text: str) -> None:
        """Show the prompt and start the reply (or queue it while the model loads)."""
        if not text.strip():
            return
        if self.generating or self._pending is not None:
            self._say("A reply is being written — wait, or press Esc to stop it.", "warning")
            return
        self.prompt_input.remember(text)
        await self._remove_welcome()
        reply = AssistantMessage(keep_thinking_open=self.keep_thinking_open)
        await self.chat.mount_all([UserMessage(text), reply])
        self.chat.anchor()
        self._start_reply(reply, text)

    def _start_reply(self, reply: AssistantMessage, text: str) -> None:
        if self.backend is None:
            if self.loading:
                self._pending = (text, reply)
                reply.wait_for_model()
                self.generating = True
            else:
                reply.fail(
                    f"no model is loaded ({self.load_error or 'none'}); /model NAME loads one"
                )
            return
        self._generate_into(reply, text)

    def _generate_into(
        self, reply: AssistantMessage, text: str, *, regenerate: bool = False
    ) -> None:
        session = self._ensure_session()
        if session is None:
            reply.fail("the conversation could not be opened (see the notification)")
            self.generating = False
            return
        self._cancel = CancelToken()
        self._buffer = EventBuffer()
        self._active = reply
        self.generating = True
        self._drain_timer = self.set_interval(1 / FRAME_RATE, self._request_drain)
        self._generate_worker(session, text, self._cancel, self._buffer, reply, regenerate)

    def _ensure_session(self) -> ChatSession | None:
        assert self.backend is not None
        if self.session is not None:
            self.session.backend = self.backend
            return self.session
        common = {"model_spec": self.model_spec, "keep_reasoning": self.options.keep_reasoning}
        if self.conversation_id is not None and self.store is not None:
            if self._system_override is not UNSET:
                common["system_prompt"] = self._system_override
            try:
                self.session = ChatSession.resume(
                    self.backend, self.params, self.store, self.conversation_id, **common
                )
            except StoreError as exc:
                self._say(str(exc), "error")
                return None
        else:
            self.session = ChatSession(
                self.backend,
                self.params,
                system_prompt=self.system_prompt,
                store=self.store,
                **common,
            )
        return self.session

    @property
    def system_prompt(self) -> str | None:
        """The system prompt new conversations get."""
        if self._system_override is not UNSET:
            return self._system_override
        return default_system_prompt(self.entry)

    @work(thread=True, group="generate", exit_on_error=False)
    def _generate_worker(
        self,
        session: ChatSession,
        text: str,
        cancel: CancelToken,
        buffer: EventBuffer,
        reply: AssistantMessage,
        regenerate: bool = False,
    ) -> None:
        try:
            stream = session.regenerate(cancel) if regenerate else session.send(text, cancel)
        except (EngineError, StoreError) as exc:
            self.post_message(ReplyFailed(reply, str(exc)))
            return
        except Exception as exc:
            self.post_message(ReplyFailed(reply, f"unexpected error: {type(exc).__name__}: {exc}"))
            return
        self.post_message(ReplyStarted(reply, session))
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
        self.post_message(ReplyDone(reply, session, stream.result, error))

    def _request_drain(self) -> None:
        # The timer only asks; the drawing happens in the app's own message queue, in order
        # with ReplyDone (a stopped timer would cancel a drawing callback halfway through).
        if not self._drain_posted:
            self._drain_posted = True
            self.post_message(DrainEvents())

    async def on_drain_events(self, message: DrainEvents) -> None:
        self._drain_posted = False
        reply = self._active
        if reply is None:
            return
        events = self._buffer.drain()
        if events:
            await reply.apply(events)
        now = time.monotonic()
        if self.backend is not None and self.backend.tokens and now - self._status_at >= 0.25:
            self._status_at = now  # the live figures change a few times a second, no more
            plan = self.session.last_plan if self.session is not None else None
            if plan is not None and plan.prompt_tokens:
                self._context_used = plan.prompt_tokens + self.backend.tokens
            self._last_rate = self.backend.live_rate() or None
            self._show_usage()

    def on_reply_started(self, message: ReplyStarted) -> None:
        plan = message.session.last_plan
        if message.session.conversation_id != self.conversation_id:
            self.conversation_id = message.session.conversation_id
            self._refresh_sidebar()
        if plan is not None and plan.dropped_turns:
            n = plan.dropped_turns
            self._say(
                f"Left out the {n} oldest turn{'s' if n != 1 else ''} to fit the context"
                f" ({self._n_ctx() or '?'} tokens).",
                "warning",
            )

    async def on_reply_failed(self, message: ReplyFailed) -> None:
        self._stop_streaming()
        message.reply.fail(message.error)
        self._say(message.error, "error")
        if self.exit_signal is not None:
            self._exit_for_signal()

    async def on_reply_done(self, message: ReplyDone) -> None:
        self._stop_streaming(still_drawing=True)
        events = self._buffer.drain()
        if events:
            await message.reply.apply(events)
        await message.reply.finish(message.result, message.error or None)
        self.generating = False
        result = message.result
        if result is not None:
            stats = result.stats
            if stats.prompt_tokens or stats.completion_tokens:
                self._context_used = stats.prompt_tokens + stats.completion_tokens
            self._last_rate = stats.tokens_per_second or None
        self._show_usage()
        if message.error:
            self._say(message.error, "error")
        self.conversation_id = message.session.conversation_id
        self._refresh_sidebar()
        self.refresh_bindings()
        if self.exit_signal is not None:  # the partial reply is saved: now leave
            self._exit_for_signal()

    def _stop_streaming(self, *, still_drawing: bool = False) -> None:
        """The worker is done. `generating` stays set while the end is still being drawn."""
        if self._drain_timer is not None:
            self._drain_timer.stop()
            self._drain_timer = None
        self._active = None
        self._cancel = None
        if not still_drawing:
            self.generating = False

    def watch_generating(self, generating: bool) -> None:
        self.refresh_bindings()

    # -- SIGTERM / SIGHUP ----------------------------------------------------------------------
    # Their default action kills the process mid-frame: the reply is lost and the terminal
    # stays in the alternate screen with the mouse reported and the cursor hidden. Treated as
    # a stop instead: the reply is cancelled, the worker saves what was written, then the app
    # exits normally (Textual restores the terminal) with 128 + the signal's number.

    def _catch_stop_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for name in ("SIGTERM", "SIGHUP"):
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            try:
                loop.add_signal_handler(signum, self._on_stop_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):
                return  # not Unix, or not the main thread (some tests): the default stays
            self._signals.append(signum)

    def _release_stop_signals(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for signum in self._signals:
            loop.remove_signal_handler(signum)
        self._signals.clear()

    def _on_stop_signal(self, signum: int) -> None:
        if self.exit_signal is not None:  # a second one: don't wait any longer
            self._exit_for_signal()
            return
        self.exit_signal = signum
        if self._pending is not None:  # waiting for the model: nothing was sent or stored
            self.action_stop()
        if self._cancel is not None:
            self._cancel.cancel()  # the worker stops within a token and saves the reply
            self.set_timer(10.0, self._exit_for_signal)  # a stuck backend can't keep us here
            return
        self._exit_for_signal()

    def _exit_for_signal(self) -> None:
        assert self.exit_signal is not None
        self.exit(return_code=128 + self.exit_signal)

    # -- actions -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.generating
        if action == "regenerate":
            return None if self.generating else True
        if action == "quit_if_empty":
            return self.focused is self.prompt_input and not self.prompt_input.text
        return True

    def action_stop(self) -> None:
        if self._pending is not None:
            _, reply = self._pending
            self._pending = None
            self.generating = False
            reply.fail("stopped before the model had loaded; nothing was sent")
            return
        if self._cancel is not None:
            self._cancel.cancel()
            self._show_usage("stopping…")

    def action_quit_if_empty(self) -> None:
        self.exit()

    async def action_new_chat(self) -> None:
        if self.generating:
            self._say("A reply is being written — press Esc to stop it first.", "warning")
            return
        self.session = None
        self.conversation_id = None
        self._context_used = None
        await self.chat.remove_children()
        await self._show_welcome()
        self._refresh_sidebar()
        self.prompt_input.focus()

    def action_toggle_thinking(self) -> None:
        panels = list(self.chat.query(ThinkingPanel))
        if not panels:
            self._say("No thinking to show yet.")
            return
        expand = any(p.collapsed for p in panels)
        for panel in panels:
            panel.collapsed = not expand

    async def action_regenerate(self) -> None:
        if self.generating:
            return
        replies = list(self.chat.query(AssistantMessage))
        users = list(self.chat.query(UserMessage))
        if not replies or not users:
            self._say("Nothing to regenerate yet.")
            return
        last_reply, last_user = replies[-1], users[-1]
        if self.backend is None:
            self._say("No model is loaded.", "warning")
            return
        session = self._ensure_session()
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
        reply = AssistantMessage(keep_thinking_open=self.keep_thinking_open)
        await self.chat.mount(reply, after=last_user)
        self.chat.anchor()
        self._generate_into(reply, last_user.prompt, regenerate=replace)

    def last_answer(self) -> str | None:
        for reply in reversed(list(self.chat.query(AssistantMessage))):
            if reply.result is not None and reply.result.parsed.answer:
                return strip_controls(reply.result.parsed.answer)
        return None

    def action_copy_answer(self) -> None:
        answer = self.last_answer()
        if answer is None:
            self._say("No answer to copy yet.")
            return
        self.copy_to_clipboard(answer)
        self._say(f"Copied the last answer ({len(answer):,} characters).")

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def on_markdown_link_clicked(self, event: Markdown.LinkClicked) -> None:
        # Links come from the model: copy them rather than open them.
        self.copy_to_clipboard(event.href)
        self._say(f"Link copied (not opened): {event.href}")

    # -- helpers -------------------------------------------------------------------------------

    def mount_note(self, text: str, *, classes: str = "") -> None:
        self.chat.mount(Note(text, classes=classes))

    def _say(self, text: str, severity: str = "information", *, title: str = "") -> None:
        """A notification. Never markup: file names and model text can contain anything."""
        self.notify(
            " ".join(strip_controls(text).split()),
            title=title,
            severity=severity,  # type: ignore[arg-type]
            markup=False,
            timeout=8 if severity == "error" else 4,
        )

    def _store_call(self, fn: Any, *args: Any, default: Any = None) -> Any:
        """Run a store method; a failure becomes a notification and `default`."""
        try:
            return fn(*args)
        except StoreError as exc:
            self._say(str(exc), "error")
            return default


__all__ = ["ChatApp", "ChatOptions"]
