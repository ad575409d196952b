"""The chat app: conversations on the left, the chat in the middle, the prompt below.

The app holds the chat's state (model, session, conversation, settings) and Textual's entry
points (layout, keys, actions, message handlers); the work is done by its parts, each in its
own module and each given the app: `ModelLoader` (model_loader), `Replies` (replies: sending
and streaming), `Conversations` (conversations), `Commands` (commands: `/` and the palette)
and `StopSignals` (stop_signals: SIGTERM/SIGHUP).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar, TypeVar, overload

from textual import events, on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Markdown, OptionList

from reflectchat.core.chat.presets import Preset, with_preset
from reflectchat.core.chat.session import ChatSession
from reflectchat.core.chat.store import Store, StoreError
from reflectchat.core.engine.base import Backend
from reflectchat.core.reply.sanitize import strip_controls
from reflectchat.tui.attachments import pending_note
from reflectchat.tui.commands import UNSET, Commands, SystemChoice
from reflectchat.tui.conversations import Conversations
from reflectchat.tui.loading import (
    BackendFactory,
    ChatOptions,
    default_system_prompt,
    entry_for,
    generation_params,
)
from reflectchat.tui.messages import AssistantMessage, ExamplePicked, Note, ThinkingPanel
from reflectchat.tui.model_loader import ModelLoaded, ModelLoader, ModelLoadFailed
from reflectchat.tui.prompt import PromptInput
from reflectchat.tui.replies import DrainEvents, Replies, ReplyDone, ReplyFailed, ReplyStarted
from reflectchat.tui.screens import HelpScreen
from reflectchat.tui.sidebar import ConversationList, Sidebar
from reflectchat.tui.slash import parse_slash, unescape_message
from reflectchat.tui.status import StatusLine
from reflectchat.tui.stop_signals import StopSignals
from reflectchat.tui.streaming import MeteredBackend

SIDEBAR_MIN_WIDTH = 100  # columns; below this the sidebar starts hidden (Ctrl+B shows it)

T = TypeVar("T")
D = TypeVar("D")


class ChatApp(App[None]):
    """`reflectchat chat`. Give it a ready `backend`, or a `backend_factory` to load
    `options.model` with (in a worker thread, showing progress)."""

    CSS_PATH = str(Path(__file__).with_name("chat.tcss"))  # absolute: subclasses live elsewhere
    TITLE = "reflectchat"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+c", "stop", "Stop", show=False, priority=True),
        Binding("ctrl+n", "new_chat", "New", tooltip="New chat"),
        Binding("ctrl+t", "toggle_thinking", "Thinking"),
        Binding("ctrl+r", "regenerate", "Retry"),
        Binding("ctrl+g", "answer_now", "Answer", tooltip="Stop thinking, answer now"),
        Binding("ctrl+o", "copy_answer", "Copy", tooltip="Copy the last answer"),
        Binding("ctrl+b", "toggle_sidebar", "Sidebar"),
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
        self.system_override: SystemChoice = UNSET
        if self.options.no_system:
            self.system_override = None
        elif self.options.system is not None:
            self.system_override = self.options.system
        self.keep_thinking_open = self.options.keep_thinking_open
        self.preset: Preset | None = self.options.preset
        # Shown or hidden by the user (Ctrl+B, /sidebar); None: by the terminal's width.
        self.sidebar_choice: bool | None = None
        self.loading = False
        self.load_error: str | None = None
        self.context_used: int | None = None
        self.last_rate: float | None = None
        self.initial_theme: str | None = None
        self.initial_prompt: str | None = None  # `chat --prompt`: sent once the app is up
        self.exit_signal: int | None = None  # SIGTERM/SIGHUP: the app is on its way out
        self.loader = ModelLoader(self, backend_factory)
        self.replies = Replies(self)
        self.conversations = Conversations(self)
        self.commands = Commands(self)
        self.stop_signals = StopSignals(self)

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

    def on_resize(self, event: events.Resize) -> None:
        self.fit_sidebar(event.size.width)

    def fit_sidebar(self, width: int | None = None) -> None:
        """Below SIDEBAR_MIN_WIDTH columns the chat needs the room (an 80-column terminal would
        give the list 30 of 80 and cut the prompt's hint): the sidebar starts hidden there."""
        sidebar = self.query_one(Sidebar)
        show = self.sidebar_choice
        if show is None:
            show = (width or self.size.width) >= SIDEBAR_MIN_WIDTH
        sidebar.display = show
        # The footer's keys lose their padding, so all of them (Help too) fit in 80 columns.
        self.query_one(Footer).compact = (width or self.size.width) < SIDEBAR_MIN_WIDTH
        if not show and self.focused is not None and sidebar in self.focused.ancestors:
            self.prompt_input.focus()

    def action_toggle_sidebar(self) -> None:
        self.sidebar_choice = not self.query_one(Sidebar).display
        self.fit_sidebar()

    async def on_mount(self) -> None:
        self.fit_sidebar()
        if self.initial_theme:
            if self.initial_theme in self.available_themes:
                self.theme = self.initial_theme
            else:
                self.say(f"No theme '{self.initial_theme}' (see /theme); using the default.")
        self.chat.anchor()
        if not self.options.show_reasoning:
            self.chat.add_class("-hide-reasoning")
        if self._store_error:
            self.say(f"History is off: {self._store_error}", "warning")
        if self.options.continue_last and self.store is not None and self.conversation_id is None:
            self.conversation_id = self.store_call(self.store.latest_conversation_id)
        shown = False
        if self.conversation_id is not None:
            shown = await self.conversations.show(self.conversation_id)
        if not shown:
            self.conversation_id = None
            await self.conversations.show_welcome()
        self.conversations.refresh_sidebar()
        if self._given_backend is not None:
            self.loader.use(self._given_backend, self.model_spec)
        else:
            self.loader.start(self.model_spec)
        self.prompt_input.focus()
        self.stop_signals.catch()
        if self.initial_prompt and self.initial_prompt.strip():
            await self.send(self.initial_prompt)  # waits for the model if it is loading
        elif self.replies.attachments:
            self.say(pending_note(self.replies.attachments))
        # Everything alive now (Python, Textual, the stylesheet) lives as long as the app: keep
        # it out of the garbage collector's way, so each collection while a reply streams only
        # scans what the reply created. (20,000 tokens: ~20% faster, and linear again.)
        gc.collect()
        gc.freeze()

    def on_unmount(self) -> None:
        gc.unfreeze()
        self.stop_signals.release()
        # A worker thread may still be generating or loading: let it stop at once.
        self.loader.aborted = True
        self.replies.cancel()

    # -- the chat's state, as the parts see it ---------------------------------------------------

    @property
    def base_system_prompt(self) -> str | None:
        """The system prompt before the preset's part: chosen, or the model's default."""
        if self.system_override is not UNSET:
            return self.system_override
        return default_system_prompt(self.entry)

    @property
    def system_prompt(self) -> str | None:
        """The system prompt new conversations get: the base, then the preset's part."""
        return with_preset(self.base_system_prompt, self.preset)

    def n_ctx(self) -> int | None:
        n_ctx = getattr(self.backend, "n_ctx", None) if self.backend is not None else None
        return n_ctx if isinstance(n_ctx, int) else None

    def show_usage(self, note: str = "") -> None:
        self.status_line.show_usage(
            used=self.context_used, n_ctx=self.n_ctx(), rate=self.last_rate, note=note
        )

    async def send(self, text: str) -> None:
        """Show the prompt and start the reply (or queue it while the model loads)."""
        await self.replies.send(text)

    async def open_conversation(self, conversation_id: int) -> None:
        await self.conversations.open(conversation_id)

    def last_answer(self) -> str | None:
        for reply in reversed(list(self.chat.query(AssistantMessage))):
            if reply.result is not None and reply.result.parsed.answer:
                return strip_controls(reply.result.parsed.answer)
        return None

    # -- messages: from the prompt, the chat, the sidebar and the worker threads ---------------

    @on(PromptInput.Submitted)
    async def _on_prompt(self, event: PromptInput.Submitted) -> None:
        event.stop()
        text = event.text
        command = parse_slash(text)
        if command is not None:
            self.prompt_input.remember(text)
            await self.commands.run_slash(command.name, command.arg)
            return
        await self.send(unescape_message(text))

    async def on_example_picked(self, message: ExamplePicked) -> None:
        await self.send(message.prompt)

    def on_markdown_link_clicked(self, event: Markdown.LinkClicked) -> None:
        # Links come from the model: copy them rather than open them.
        self.copy_to_clipboard(event.href)
        self.say(f"Link copied (not opened): {event.href}")

    async def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        await self.conversations.option_selected(event)

    def on_sidebar_filter_changed(self, event: Sidebar.FilterChanged) -> None:
        self.conversations.filter_changed(event)

    def on_conversation_list_action(self, event: ConversationList.Action) -> None:
        self.conversations.list_action(event)

    def on_model_loaded(self, message: ModelLoaded) -> None:
        self.loader.loaded(message)

    def on_model_load_failed(self, message: ModelLoadFailed) -> None:
        self.loader.failed(message)

    async def on_drain_events(self, message: DrainEvents) -> None:
        await self.replies.drain()

    def on_reply_started(self, message: ReplyStarted) -> None:
        self.replies.started(message)

    async def on_reply_failed(self, message: ReplyFailed) -> None:
        await self.replies.failed(message)

    async def on_reply_done(self, message: ReplyDone) -> None:
        await self.replies.done(message)

    def watch_generating(self, generating: bool) -> None:
        self.refresh_bindings()

    # -- actions (keys, the palette, / commands) -----------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.generating
        if action == "regenerate":
            return None if self.generating else True
        if action == "quit_if_empty":
            return self.focused is self.prompt_input and not self.prompt_input.text
        return True

    def action_stop(self) -> None:
        self.replies.stop()

    def action_quit_if_empty(self) -> None:
        self.exit()

    async def action_new_chat(self) -> None:
        await self.conversations.new_chat()

    def action_toggle_thinking(self) -> None:
        panels = list(self.chat.query(ThinkingPanel))
        if not panels:
            self.say("No thinking to show yet.")
            return
        expand = any(p.collapsed for p in panels)
        for panel in panels:
            panel.collapsed = not expand

    async def action_regenerate(self) -> None:
        await self.replies.regenerate()

    def action_answer_now(self) -> None:
        """End the thinking of the reply being written; the answer follows."""
        if not self.replies.answer_now():
            self.say("Nothing is being written: answer now works while the model thinks.")

    def action_copy_answer(self) -> None:
        answer = self.last_answer()
        if answer is None:
            self.say("No answer to copy yet.")
            return
        self.copy_to_clipboard(answer)
        self.say(f"Copied the last answer ({len(answer):,} characters).")

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_pick_model(self) -> None:
        self.commands.pick_model()

    def action_edit_system_prompt(self) -> None:
        self.commands.edit_system_prompt()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from self.commands.system_commands()

    # -- helpers -------------------------------------------------------------------------------

    def mount_note(self, text: str, *, classes: str = "") -> None:
        self.chat.mount(Note(text, classes=classes))

    def say(self, text: str, severity: SeverityLevel = "information", *, title: str = "") -> None:
        """A notification. Never markup: file names and model text can contain anything."""
        self.notify(
            " ".join(strip_controls(text).split()),
            title=title,
            severity=severity,
            markup=False,
            timeout=8 if severity == "error" else 4,
        )

    @overload
    def store_call(self, fn: Callable[..., T], *args: object) -> T | None: ...

    @overload
    def store_call(self, fn: Callable[..., T], *args: object, default: D) -> T | D: ...

    def store_call(self, fn: Callable[..., T], *args: object, default: object = None) -> T | object:
        """Run a store method; a failure becomes a notification and `default`."""
        try:
            return fn(*args)
        except StoreError as exc:
            self.say(str(exc), "error")
            return default


__all__ = ["ChatApp", "ChatOptions"]
