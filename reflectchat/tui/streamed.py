"""Streaming model text into Markdown without redrawing what is already on screen.

A `StreamedText` shows one run of model text (a thinking segment, a reflection, the answer):

- blocks that are complete (a blank line after them, outside a code fence) go to a Textual
  `Markdown` widget through `Markdown.append`, which parses only from the last block on — so
  each block is parsed and mounted about once, however long the reply grows;
- the block still being written is shown as plain text below it (`TailText`), repainted in
  place, with a layout pass only when its height changes. Streaming a paragraph therefore costs
  a repaint of a few lines per frame instead of a re-parse, a remount and a whole-screen layout;
- at the end, the whole text is rendered once (`settle`), which fixes anything the incremental
  parse got wrong.

Model text is untrusted: control sequences are stripped on the way in (`ControlStripper`, so a
sequence split across tokens is caught too), the Markdown parser has raw HTML off, links are
not opened on click, and nothing is ever parsed as Textual markup.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import TYPE_CHECKING, cast

from markdown_it import MarkdownIt
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import Markdown

from reflectchat.core.reply.blocks import cap_nesting, split_complete_blocks
from reflectchat.core.reply.sanitize import ControlStripper, strip_controls

if TYPE_CHECKING:
    from textual.css.styles import RulesMap

# Columns' worth of quotes and lists the chat app nests (about 12 quotes or 16 lists) before
# leaving deeper markers as text: markdown-it would drop the rest of the block past 20 levels.
NESTING_BUDGET = 48


def markdown_parser() -> MarkdownIt:
    """GitHub-like Markdown with raw HTML off: a `<div>` or `<T>` in an answer is shown as the
    text it is instead of being silently dropped; deep quotes and lists are flattened, not
    dropped."""
    return cap_nesting(MarkdownIt("gfm-like", {"html": False}), NESTING_BUDGET)


class ReplyMarkdown(Markdown):
    """Markdown for model text. Links are not opened when clicked (the app copies them
    instead): a model can write any URL."""

    def __init__(self, markdown: str | None = None, *, classes: str | None = None) -> None:
        super().__init__(
            markdown, classes=classes, parser_factory=markdown_parser, open_links=False
        )


class MarkdownFeed:
    """Appends text to a Markdown widget in the background, coalescing whatever arrived while
    the previous append was being drawn. Like Textual's `MarkdownStream` (which wraps the same
    `Markdown.append`), with a plain `write`, and a `close` that drops what is still queued:
    the final full render covers it, so the end of a fast stream is not drawn twice."""

    __slots__ = ("_appends", "_idle", "_pending", "_task", "_wake", "widget")

    def __init__(self, widget: Markdown) -> None:
        self.widget = widget
        self._appends = 0
        self._pending: list[str] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = asyncio.create_task(self._run())

    def write(self, text: str) -> None:
        self._pending.append(text)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            text = "".join(self._pending)
            self._pending.clear()
            if not text:
                continue
            self._idle.clear()
            self._appends += 1
            try:
                await self.widget.append(text)
            finally:
                self._idle.set()

    async def close(self) -> bool:
        """Stop. An append in progress finishes (cutting a mount in half is not safe);
        nothing queued is drawn. True when at most one append drew everything written: the
        widget then holds a parse from the start, as a full render would."""
        queued = bool(self._pending)
        self._pending.clear()
        self._wake.clear()
        await self._idle.wait()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return self._appends <= 1 and not queued


_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_BLOCK_LINE = re.compile(r"^(?:\s{0,3}(?:[-*+]\s|\d{1,9}[.)]\s|#{1,6}\s|>|\|)|\s{4})")


def soften(text: str) -> str:
    """The block being written, laid out roughly as Markdown will lay it out: single line
    breaks inside a paragraph become spaces (so the text does not jump when the block is
    rendered), while list items, headings, quotes, table rows and code keep their lines."""
    out: list[str] = []
    in_fence = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
            out.append(line)
        elif (
            in_fence
            or not out
            or not line.strip()
            or not out[-1].strip()
            or out[-1].endswith("  ")
            or _BLOCK_LINE.match(line)
            or _FENCE.match(out[-1])
        ):
            out.append(line)
        else:
            out[-1] = out[-1].rstrip() + " " + line.lstrip()
    return "\n".join(out)


class TailText(Widget):
    """The block being written, as plain text. Repaints in place; asks for a layout pass only
    when its height changes."""

    DEFAULT_CSS = """
    TailText {
        height: auto;
        padding: 0 1;
        display: none;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._content = Content("")
        self._height = 0
        self._width = 0  # of the content area; from Resize events (asking for `size` each
        # frame would make the compositor rebuild its map of every widget on screen)

    def render(self) -> Content:
        return self._content

    def on_resize(self, event: events.Resize) -> None:
        self._width = max(0, event.size.width - self.styles.gutter.width)

    def show(self, text: str) -> None:
        text = soften(text.strip("\n"))
        self._content = Content(text)
        if not text:
            if self.display:
                self.display = False
                self._height = 0
            return
        if not self.display:
            self.display = True
        width = self._width
        # A widget's styles are the rules Textual means here (its own widgets pass them too);
        # only its annotation says RulesMap.
        rules = cast("RulesMap", self.styles)
        height = self._content.get_height(rules, width) if width else -1
        if height == self._height and height > 0:
            # Same size: repaint our own area only. (A plain refresh() asks for `size`, which
            # after any scroll makes the compositor re-map every widget on screen.)
            self.refresh(Region(0, 0, width, height))
        else:
            self.refresh(layout=True)
        self._height = height


class StreamedText(Vertical):
    """One run of model text: complete blocks as Markdown, the block being written as text."""

    DEFAULT_CSS = """
    StreamedText {
        height: auto;
    }
    """

    def __init__(self, text: str = "", *, classes: str = "") -> None:
        text = strip_controls(text)
        super().__init__(classes=f"{classes} -filled" if text else classes)
        self._parts: list[str] = [text] if text else []
        self._pending = ""  # written but not yet a complete block
        self._stripper = ControlStripper()
        self._feed: MarkdownFeed | None = None
        self._settled = bool(text)
        self.markdown = ReplyMarkdown(text or None, classes=classes)
        self.tail = TailText()

    def compose(self) -> ComposeResult:
        yield self.markdown
        yield self.tail

    def on_mount(self) -> None:
        if self._parts:  # a finished text: its Markdown is rendered by now
            self._mark_last()

    def _mark_last(self) -> None:
        blocks = self.markdown.children
        if blocks:
            blocks[-1].add_class("-last")

    @property
    def text(self) -> str:
        """Everything written so far (control sequences stripped)."""
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def streaming(self) -> bool:
        return self._feed is not None or bool(self._pending)

    def write(self, raw: str) -> None:
        text = self._stripper.feed(raw)
        if not text:
            return
        if not self._parts and not text.strip():
            return  # the blank lines after a tag add nothing
        if not self._parts:
            self.add_class("-filled")
        self._parts.append(text)
        done, self._pending = split_complete_blocks(self._pending + text)
        if done.strip():
            if self._feed is None:
                self._feed = MarkdownFeed(self.markdown)
            self._feed.write(done)
        self.tail.show(self._pending)

    async def settle(self) -> None:
        """The run is over: render it whole, once (again later: nothing to do)."""
        if self._settled:
            return
        self._settled = True
        rest = self._stripper.flush()  # what an unfinished control sequence held back
        if rest:
            self._parts.append(rest)
            self._pending += rest
        tail, self._pending = self._pending, ""
        from_start = True
        if self._feed is not None:
            from_start = await self._feed.close()
            self._feed = None
        self.tail.show("")
        if from_start:
            # The widget holds a parse from the start of the text: appending the last block
            # re-parses from the last complete block on, which is what a full render gives.
            if tail.strip():
                await self.markdown.append(tail)
        else:
            await self.markdown.update(self.text)
        self._mark_last()

    async def replace(self, text: str) -> None:
        """Start over with `text` (what was shown is dropped)."""
        if self._feed is not None:
            await self._feed.close()
            self._feed = None
        self._parts = []
        self.remove_class("-filled")
        self._pending = ""
        self._settled = False
        self._stripper = ControlStripper()
        self.tail.show("")
        await self.markdown.update("")
        if text:
            self.write(text)
