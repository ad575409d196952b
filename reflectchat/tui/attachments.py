"""What was attached to a message (`/attach PATH`, or `ask -a` in the history), shown folded
under it: the file names in the title, the text (its first lines) inside. File names and
contents are untrusted: plain Content, controls stripped, never markup."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from textual.content import Content
from textual.widgets import Collapsible, Static

from reflectchat.core.chat.attachments import Attachment
from reflectchat.core.reply.sanitize import strip_controls

PREVIEW_LINES = 200  # a 16 MiB log would make the chat crawl; the model still gets all of it


def _lines(text: str) -> int:
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def describe(attachment: Attachment) -> str:
    # The file's name, not its whole path: titles and notifications are one short line.
    name = " ".join(strip_controls(Path(attachment.name).name or attachment.name).split())
    lines = _lines(attachment.text)
    return f"{name} ({lines:,} line{'s' if lines != 1 else ''})"


def preview(attachment: Attachment) -> str:
    lines = attachment.text.splitlines()
    shown = "\n".join(lines[:PREVIEW_LINES])
    if len(lines) > PREVIEW_LINES:
        shown += f"\n… {len(lines) - PREVIEW_LINES:,} more lines (all sent to the model)"
    return strip_controls(shown)


class AttachmentsBlock(Collapsible):
    """The attachments of one user message, folded."""

    DEFAULT_CSS = """
    AttachmentsBlock {
        margin: 0 0 0 2;
        padding: 0;
        border: none;
        background: transparent;
    }
    AttachmentsBlock > CollapsibleTitle {
        color: $text-muted;
        padding: 0 1;
    }
    AttachmentsBlock .attachment-name {
        color: $text-muted;
        text-style: bold;
    }
    AttachmentsBlock .attachment-text {
        color: $text-muted;
        padding: 0 0 1 1;
    }
    """

    def __init__(self, attachments: Sequence[Attachment]) -> None:
        self.attachments = tuple(attachments)
        children: list[Static] = []
        for a in self.attachments:
            children.append(Static(Content(describe(a)), classes="attachment-name"))
            children.append(Static(Content(preview(a)), classes="attachment-text"))
        title = "Attached: " + ", ".join(describe(a) for a in self.attachments)
        super().__init__(*children, title=Content(title), collapsed=True)  # type: ignore[arg-type]


def pending_note(attachments: Sequence[Attachment]) -> str:
    """What the prompt's next message will carry, for a notification."""
    names = ", ".join(describe(a) for a in attachments)
    return f"Attached {names}: sent with your next message (/attach none removes them)."
