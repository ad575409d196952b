"""The conversation list: the history store's conversations, newest first, with a filter."""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from reflectchat.core.chat.store import ConversationSummary
from reflectchat.core.reply.sanitize import strip_controls


class ConversationList(OptionList):
    BINDINGS = [
        Binding("delete,d", "delete", "Delete", tooltip="Delete this conversation"),
        Binding("f2,r", "rename", "Rename", tooltip="Rename this conversation"),
    ]

    class Action(Message):
        def __init__(self, action: str, conversation_id: int) -> None:
            super().__init__()
            self.action = action
            self.conversation_id = conversation_id

    def _highlighted_id(self) -> int | None:
        if self.highlighted is None:
            return None
        option = self.get_option_at_index(self.highlighted)
        return int(option.id) if option.id else None

    def action_delete(self) -> None:
        if (cid := self._highlighted_id()) is not None:
            self.post_message(self.Action("delete", cid))

    def action_rename(self) -> None:
        if (cid := self._highlighted_id()) is not None:
            self.post_message(self.Action("rename", cid))


class Sidebar(Vertical):
    """Filter box, list, hint. The app fills it (it owns the store)."""

    class FilterChanged(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def compose(self) -> ComposeResult:
        yield Input(placeholder="Filter conversations", id="filter", compact=True)
        yield ConversationList(id="conversations")
        yield Static(Content("F2 rename · Del delete"), id="sidebar-hint")

    def show(
        self,
        rows: Sequence[tuple[ConversationSummary, str | None]],
        current: int | None,
        *,
        empty: str = "No conversations yet",
    ) -> None:
        """Replace the list. `rows` pairs each conversation with a search snippet (or None)."""
        listing = self.query_one(ConversationList)
        keep = listing.highlighted
        options = [Option(_label(s, snippet, s.id == current), id=str(s.id)) for s, snippet in rows]
        listing.clear_options()
        if not options:
            listing.add_option(Option(Content.styled(empty, "dim italic"), disabled=True))
            return
        listing.add_options(options)
        ids = [s.id for s, _ in rows]
        if current in ids:
            listing.highlighted = ids.index(current)
        elif keep is not None:
            listing.highlighted = min(keep, len(options) - 1)

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.FilterChanged(event.value))


def _label(summary: ConversationSummary, snippet: str | None, current: bool) -> Content:
    title = " ".join(strip_controls(summary.title).split())
    turns = f"{summary.turns} turn{'s' if summary.turns != 1 else ''}"
    detail = " · ".join(p for p in (strip_controls(summary.model or ""), turns) if p)
    if snippet:
        detail = " ".join(strip_controls(snippet).split())
    marker = "● " if current else ""
    return Content.assemble((marker + title, "bold" if current else ""), "\n", (detail, "dim"))
