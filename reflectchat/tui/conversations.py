"""Conversations: the sidebar list (filter, open, rename, delete with confirmation), showing
a stored conversation, the empty chat, and export. A mixin of `ChatApp`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from textual.widgets import OptionList

from reflectchat.cli.history import to_dict, to_markdown
from reflectchat.cli.jsonout import to_json
from reflectchat.core.chat.store import Conversation
from reflectchat.core.engine.base import GenerationStats
from reflectchat.core.reply.sanitize import strip_controls
from reflectchat.core.reply.sections import parse
from reflectchat.core.reply.stream import ReplyResult
from reflectchat.tui.messages import AssistantMessage, UserMessage, Welcome
from reflectchat.tui.screens import ConfirmScreen, TextEntryScreen
from reflectchat.tui.sidebar import ConversationList, Sidebar

FAILED: Any = object()


class ConversationsMixin:
    """Uses the app's `store`, `chat`, `conversation_id`, `session`, `_say`, `_store_call`."""

    _filter = ""

    async def _show_welcome(self) -> None:
        demo = bool(self.entry and self.entry.embedded)
        await self.chat.mount(Welcome(demo=demo))

    async def _remove_welcome(self) -> None:
        for welcome in self.chat.query(Welcome):
            await welcome.remove()

    async def _show_conversation(self, conversation_id: int) -> bool:
        if self.store is None:
            return False
        conversation = self._store_call(self.store.get_conversation, conversation_id)
        if conversation is None:
            return False
        widgets = []
        for m in conversation.messages:
            if m.role == "user":
                widgets.append(UserMessage(m.content))
            else:
                widgets.append(
                    AssistantMessage(
                        keep_thinking_open=self.keep_thinking_open,
                        stored=stored_result(m.content, m.model, m.finish_reason, m.stats),
                    )
                )
        await self.chat.remove_children()
        await self.chat.mount_all(widgets)
        self.chat.anchor()
        return True

    async def open_conversation(self, conversation_id: int) -> None:
        if conversation_id == self.conversation_id:
            return
        if self.generating:
            self._say("A reply is being written — press Esc to stop it first.", "warning")
            return
        if await self._show_conversation(conversation_id):
            self.conversation_id = conversation_id
            self.session = None
            self._context_used = None
            self._show_usage()
            self._refresh_sidebar()

    # (Handlers by name: `@on` does not reach into mixins.)
    async def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if not isinstance(event.option_list, ConversationList):
            return
        event.stop()
        if event.option.id:
            await self.open_conversation(int(event.option.id))
            self.prompt_input.focus()

    def on_sidebar_filter_changed(self, event: Sidebar.FilterChanged) -> None:
        self._filter = event.text
        self._refresh_sidebar()

    def on_conversation_list_action(self, event: ConversationList.Action) -> None:
        if event.action == "delete":
            self.confirm_delete(event.conversation_id)
        elif event.action == "rename":
            self.ask_rename(event.conversation_id)

    def confirm_delete(self, conversation_id: int) -> None:
        if self.store is None:
            return
        if self.generating and conversation_id == self.conversation_id:
            self._say("A reply is being written here — press Esc to stop it first.", "warning")
            return
        conversation = self._store_call(self.store.get_conversation, conversation_id)
        if conversation is None:
            return
        title = " ".join(strip_controls(conversation.summary.title).split())

        async def answered(yes: bool | None) -> None:
            if not yes or self.store is None:
                return
            deleted = self._store_call(
                self.store.delete_conversation, conversation_id, default=FAILED
            )
            if deleted is FAILED:
                return
            self._say(f"Deleted “{title}”.")
            if conversation_id == self.conversation_id:
                await self.action_new_chat()
            else:
                self._refresh_sidebar()

        self.push_screen(ConfirmScreen(f"Delete “{title}”? This cannot be undone."), answered)

    def ask_rename(self, conversation_id: int) -> None:
        if self.store is None:
            return
        conversation = self._store_call(self.store.get_conversation, conversation_id)
        if conversation is None:
            return

        def answered(title: str | None) -> None:
            if title and title.strip() and self.store is not None:
                self._store_call(self.store.rename_conversation, conversation_id, title)
                self._refresh_sidebar()

        self.push_screen(
            TextEntryScreen("Rename conversation", conversation.summary.title), answered
        )

    def _refresh_sidebar(self) -> None:
        sidebar = self.query_one(Sidebar)
        if self.store is None:
            sidebar.show([], None, empty="History is off")
            return
        if self._filter.strip():
            hits = self._store_call(self.store.search, self._filter.strip())
            rows = [(s, snippet) for s, snippet in hits or []]
            sidebar.show(rows, self.conversation_id, empty="Nothing matches")
        else:
            listing = self._store_call(self.store.list_conversations, 200)
            sidebar.show([(s, None) for s in listing or []], self.conversation_id)

    def export(self, fmt: str) -> Path | None:
        """Write the conversation to a new file in the current folder; returns its path."""
        fmt = fmt.lower().lstrip(".")
        if fmt not in ("md", "markdown", "json"):
            self._say("Export as md or json: /export md, /export json")
            return None
        if self.conversation_id is None or self.store is None:
            self._say("Nothing to export yet: this chat has no saved messages.")
            return None
        conversation = self._store_call(self.store.get_conversation, self.conversation_id)
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
            self._say(f"Could not write {path}: {exc.strerror or exc}", "error")
            return None
        self._say(f"Exported to {path}")
        return path


def stored_result(
    content: str, model: str | None, finish_reason: str | None, stats: dict | None
) -> ReplyResult:
    known = {k: v for k, v in (stats or {}).items() if k in GenerationStats.__dataclass_fields__}
    return ReplyResult(
        model=model or "",
        raw_text=content,
        parsed=parse(content),
        finish_reason=(finish_reason or "stop"),  # type: ignore[arg-type]
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
