"""Conversations: the sidebar list (filter, open, rename, delete with confirmation), showing
a stored conversation, the empty chat, and export. A part of `ChatApp`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Final, cast

from textual.widget import Widget
from textual.widgets import OptionList

from reflectchat.core.chat.export import to_dict, to_json, to_markdown
from reflectchat.core.chat.forget import delete_conversation
from reflectchat.core.chat.session import warm_conversation
from reflectchat.core.chat.store import Conversation
from reflectchat.core.chat.store_rows import StoredMessage, parsed_reply
from reflectchat.core.engine.base import FinishReason, GenerationStats
from reflectchat.core.reply.sanitize import strip_controls
from reflectchat.core.reply.stream import ReplyResult
from reflectchat.tui.attachments import AttachmentsBlock
from reflectchat.tui.messages import AssistantMessage, UserMessage, Welcome
from reflectchat.tui.screens import ConfirmScreen, TextEntryScreen
from reflectchat.tui.sidebar import ConversationList, Sidebar

if TYPE_CHECKING:
    from reflectchat.tui.app import ChatApp

FAILED: Final = object()
"""`store_call`'s answer when the store failed (the call itself returns None)."""


class Conversations:
    """The sidebar's list and the conversation in the chat: show, open, filter, rename,
    delete (with confirmation), start anew, export. Acts on `app`."""

    def __init__(self, app: ChatApp) -> None:
        self.app = app
        self.filter = ""

    async def show_welcome(self) -> None:
        entry = self.app.entry
        demo = bool(entry and entry.embedded)
        await self.app.chat.mount(Welcome(demo=demo))

    async def remove_welcome(self) -> None:
        for welcome in self.app.chat.query(Welcome):
            await welcome.remove()

    async def show(self, conversation_id: int) -> bool:
        app = self.app
        if app.store is None:
            return False
        conversation = app.store_call(app.store.get_conversation, conversation_id)
        if conversation is None:
            return False
        widgets: list[Widget] = []
        for m in conversation.messages:
            if m.role == "user":
                widgets.append(UserMessage(m.content))
                if m.attachments:
                    widgets.append(AttachmentsBlock(m.attachments))
            else:
                widgets.append(
                    AssistantMessage(
                        keep_thinking_open=app.keep_thinking_open,
                        stored=stored_result(m),
                    )
                )
        await app.chat.remove_children()
        await app.chat.mount_all(widgets)
        app.chat.anchor()
        return True

    async def open(self, conversation_id: int) -> None:
        app = self.app
        if conversation_id == app.conversation_id:
            return
        if app.generating:
            app.say("A reply is being written — press Esc to stop it first.", "warning")
            return
        if await self.show(conversation_id):
            app.conversation_id = conversation_id
            app.session = None
            if app.backend is not None:  # its saved KV cache is read while the user types
                warm_conversation(app.backend, conversation_id)
            app.context_used = None
            app.show_usage()
            self.refresh_sidebar()

    async def new_chat(self) -> None:
        app = self.app
        if app.generating:
            app.say("A reply is being written — press Esc to stop it first.", "warning")
            return
        app.session = None
        app.conversation_id = None
        app.context_used = None
        await app.chat.remove_children()
        await self.show_welcome()
        self.refresh_sidebar()
        app.prompt_input.focus()

    async def option_selected(self, event: OptionList.OptionSelected) -> None:
        if not isinstance(event.option_list, ConversationList):
            return
        event.stop()
        if event.option.id:
            await self.open(int(event.option.id))
            self.app.prompt_input.focus()

    def filter_changed(self, event: Sidebar.FilterChanged) -> None:
        self.filter = event.text
        self.refresh_sidebar()

    def list_action(self, event: ConversationList.Action) -> None:
        if event.action == "delete":
            self.confirm_delete(event.conversation_id)
        elif event.action == "rename":
            self.ask_rename(event.conversation_id)

    def confirm_delete(self, conversation_id: int) -> None:
        app = self.app
        if app.store is None:
            return
        if app.generating and conversation_id == app.conversation_id:
            app.say("A reply is being written here — press Esc to stop it first.", "warning")
            return
        conversation = app.store_call(app.store.get_conversation, conversation_id)
        if conversation is None:
            return
        title = " ".join(strip_controls(conversation.summary.title).split())

        async def answered(yes: bool | None) -> None:
            if not yes or app.store is None:
                return
            deleted = app.store_call(
                delete_conversation, app.store, conversation_id, app.backend, default=FAILED
            )
            if deleted is FAILED:
                return
            app.say(f"Deleted “{title}”.")
            if conversation_id == app.conversation_id:
                await app.action_new_chat()
            else:
                self.refresh_sidebar()

        app.push_screen(ConfirmScreen(f"Delete “{title}”? This cannot be undone."), answered)

    def ask_rename(self, conversation_id: int) -> None:
        app = self.app
        if app.store is None:
            return
        conversation = app.store_call(app.store.get_conversation, conversation_id)
        if conversation is None:
            return

        def answered(title: str | None) -> None:
            if title and title.strip() and app.store is not None:
                app.store_call(app.store.rename_conversation, conversation_id, title)
                self.refresh_sidebar()

        app.push_screen(
            TextEntryScreen("Rename conversation", conversation.summary.title), answered
        )

    def refresh_sidebar(self) -> None:
        app = self.app
        sidebar = app.query_one(Sidebar)
        if app.store is None:
            sidebar.show([], None, empty="History is off")
            return
        if self.filter.strip():
            hits = app.store_call(app.store.search, self.filter.strip())
            rows = [(s, snippet) for s, snippet in hits or []]
            sidebar.show(rows, app.conversation_id, empty="Nothing matches")
        else:
            listing = app.store_call(app.store.list_conversations, 200)
            sidebar.show([(s, None) for s in listing or []], app.conversation_id)

    def export(self, fmt: str) -> Path | None:
        """Write the conversation to a new file in the current folder; returns its path."""
        app = self.app
        fmt = fmt.lower().lstrip(".")
        if fmt not in ("md", "markdown", "json"):
            app.say("Export as md or json: /export md, /export json")
            return None
        if app.conversation_id is None or app.store is None:
            app.say("Nothing to export yet: this chat has no saved messages.")
            return None
        conversation = app.store_call(app.store.get_conversation, app.conversation_id)
        if conversation is None:
            return None
        suffix = "json" if fmt == "json" else "md"
        path = export_path(Path.cwd(), conversation, suffix)
        body = (
            to_json(to_dict(conversation)) + "\n"
            if suffix == "json"
            else to_markdown(conversation, details=True)
        )
        try:
            with open(path, "x", encoding="utf-8") as f:
                f.write(body)
        except OSError as exc:
            app.say(f"Could not write {path}: {exc.strerror or exc}", "error")
            return None
        app.say(f"Exported to {path}")
        return path


def stored_result(message: StoredMessage) -> ReplyResult:
    stats = message.stats or {}
    known = {k: v for k, v in stats.items() if k in GenerationStats.__dataclass_fields__}
    return ReplyResult(
        model=message.model or "",
        raw_text=message.content,
        parsed=parsed_reply(message),
        # Stored from a FinishReason, so one of them (the old default: "stop").
        finish_reason=cast(FinishReason, message.finish_reason or "stop"),
        stats=GenerationStats(**known),
    )


def export_path(folder: Path, conversation: Conversation, suffix: str) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", conversation.summary.title.lower()).strip("-")[:40]
    stem = f"reflectchat-{conversation.summary.id}" + (f"-{slug.rstrip('-')}" if slug else "")
    path = folder / f"{stem}.{suffix}"
    n = 2
    while path.exists():
        path = folder / f"{stem}-{n}.{suffix}"
        n += 1
    return path
