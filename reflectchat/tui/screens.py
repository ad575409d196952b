"""Modal screens: help, confirmations, and short text entry (rename, system prompt, model)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static, TextArea

from reflectchat.tui.slash import KEYS, SLASH_COMMANDS


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="dialog"):
            yield Static(Content.styled("reflectchat — keys and commands", "bold"), id="help-title")
            yield Static(
                Content(
                    "Ctrl+P: command palette (model, system prompt, export, theme, …). Terminals"
                    " swallow some keys (tmux F1, VS Code Ctrl+T): / commands always work."
                ),
                classes="dim-note",
            )
            with VerticalScroll(id="help-body"):
                yield Static(_table("Keys", KEYS))
                yield Static(_table("Commands (type them in the prompt)", SLASH_COMMANDS))
            yield Static(Content("Esc closes"), classes="dialog-hint")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)


def _table(heading: str, rows: tuple[tuple[str, str], ...]) -> Content:
    width = max(len(k) for k, _ in rows) + 2
    lines = [Content.styled(heading, "bold $accent")]
    for key, what in rows:
        lines.append(Content.assemble((key.ljust(width), "bold"), what))
    return Content("\n").join(lines) + Content("\n")


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [Binding("escape,n", "cancel", "No"), Binding("y", "confirm", "Yes")]

    def __init__(self, question: str, *, yes: str = "Delete") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Content(self.question), classes="dialog-question")
            with Horizontal(classes="dialog-buttons"):
                yield Button(Content(self.yes), variant="error", id="yes")
                yield Button(Content("Cancel"), id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_confirm(self) -> None:
        self.dismiss(True)


class TextEntryScreen(ModalScreen[str | None]):
    """Ask for one line (or several, with `multiline`). Dismisses with the text or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self, title: str, value: str = "", *, multiline: bool = False, hint: str = ""
    ) -> None:
        super().__init__()
        self.title_text = title
        self.value = value
        self.multiline = multiline
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Content.styled(self.title_text, "bold"))
            if self.multiline:
                yield TextArea(self.value, id="entry", soft_wrap=True, tab_behavior="focus")
            else:
                yield Input(self.value, id="entry")
            if self.hint:
                yield Static(Content(self.hint), classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button(Content("Save"), variant="primary", id="save")
                yield Button(Content("Cancel"), id="cancel")

    def on_mount(self) -> None:
        self.query_one("#entry").focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "save":
            self.dismiss(None)
            return
        entry = self.query_one("#entry")
        text = entry.text if isinstance(entry, TextArea) else entry.value  # type: ignore[attr-defined]
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)
