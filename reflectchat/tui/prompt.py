"""The multi-line prompt: Enter sends, Shift+Enter (where the terminal reports it) or Ctrl+J
adds a line, Up in an empty prompt walks back through what was sent."""

from __future__ import annotations

from textual import events
from textual.message import Message
from textual.widgets import TextArea

NEWLINE_KEYS = frozenset({"shift+enter", "ctrl+j", "alt+enter"})


class PromptInput(TextArea):
    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(
            id=id,
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
            compact=True,
            placeholder="Ask something…  (Enter sends · Ctrl+J new line · / for commands)",
        )
        self.sent: list[str] = []
        self._recall: int | None = None  # index into history while walking it

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if key == "enter":
            event.stop()
            event.prevent_default()
            text = self.text
            if text.strip():
                self.post_message(self.Submitted(text))
            return
        if key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            start, end = self.selection
            self.replace("\n", start, end, maintain_selection_offset=False)
            return
        if key == "up" and self._can_recall_back():
            event.stop()
            event.prevent_default()
            self._recall = len(self.sent) - 1 if self._recall is None else self._recall - 1
            self._show(self.sent[self._recall])
            return
        if key == "down" and self._recall is not None and self._on_last_line():
            event.stop()
            event.prevent_default()
            if self._recall + 1 < len(self.sent):
                self._recall += 1
                self._show(self.sent[self._recall])
            else:
                self._recall = None
                self._show("")
            return
        await super()._on_key(event)

    def _can_recall_back(self) -> bool:
        if not self.sent:
            return False
        if self._recall is None:
            return not self.text
        return self._recall > 0 and self.cursor_location[0] == 0

    def _on_last_line(self) -> bool:
        return self.cursor_location[0] == self.document.line_count - 1

    def _show(self, text: str) -> None:
        self.load_text(text)
        self.move_cursor(self.document.end)

    def remember(self, text: str) -> None:
        """A prompt was sent: add it to the history and clear the input."""
        if not self.sent or self.sent[-1] != text:
            self.sent.append(text)
        self._recall = None
        self.load_text("")

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        # Editing a recalled prompt makes it a new draft; Up no longer walks from it.
        if self._recall is not None and self.text != self.sent[self._recall]:
            self._recall = None
