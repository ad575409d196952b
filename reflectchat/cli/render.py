"""Terminal rendering of a reply: thinking dim and labelled, each reflection highlighted as the
self-correction it is, then the answer as Markdown.

Model text is untrusted: it only ever reaches Rich as `Text` objects or Markdown source (never
console markup), and control sequences are stripped first.
"""

from __future__ import annotations

import time

from markdown_it import MarkdownIt
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.segment import Segment
from rich.text import Text

from reflectchat.core.reply.blocks import BlockSplitter, cap_nesting
from reflectchat.core.reply.footer import footer_text
from reflectchat.core.reply.sanitize import ControlStripper, strip_controls
from reflectchat.core.reply.sections import ParsedReply, SectionEvent
from reflectchat.core.reply.stream import ReplyResult

THINKING_STYLE = "dim italic"
REFLECTION_STYLE = "bold yellow"
TOOL_STYLE = "cyan"
GUTTERS = {
    "thinking": ("│ ", "dim"),
    "reflection": ("┃ ", "yellow"),
    "note": ("│ ", "dim"),
    "tool_call": ("▏ ", "cyan"),
}
LABELS = {
    "thinking": Text("◆ Thinking", style="bold dim"),
    "reflection": Text("↻ Reflection — the model corrects itself", style="bold yellow"),
    "output": Text("◆ Answer", style="bold green"),
    "note": Text("· Budget note", style="dim"),
    "tool_call": Text("⚙ Tool call", style="bold cyan"),
}
# Shown apart from the answer, with a label and a gutter, like the thinking.
BLOCK_KINDS = frozenset(GUTTERS)


def block_label(kind: str, label: str = "") -> Text:
    """A section's heading; a tool call names its recipient (model text: stripped, plain)."""
    heading = LABELS[kind].copy()
    if label:
        heading.append(f" → {strip_controls(label)}", style=TOOL_STYLE)
    return heading


LIVE_MIN_INTERVAL_S = 1 / 30  # at most 30 redraws a second of the block being written
LIVE_COST_FACTOR = 4  # ... and at most a fifth of the time spent redrawing it


class TerminalRenderer:
    """Renders section events live on a terminal."""

    def __init__(self, console: Console, *, show_reasoning: bool = True) -> None:
        self.console = console
        self.show_reasoning = show_reasoning
        self._stack: list[str] = []
        self._at_line_start = True
        self._blocks = BlockSplitter()  # the answer: finished blocks out, the rest pending
        self._answer_started = False
        self._live: Live | None = None
        self._next_paint = 0.0  # perf_counter time before which the live block is not redrawn
        self._thinking_chars = 0
        self._reflections = 0
        self._status: Live | None = None
        self._stripper = ControlStripper()

    # -- events -------------------------------------------------------------------------------

    def handle(self, event: SectionEvent) -> None:
        kind = event.kind
        if event.type == "open":
            self._stack.append(kind)
            if kind in BLOCK_KINDS:
                if kind == "reflection":
                    self._reflections += 1
                if self.show_reasoning:
                    self._end_line()
                    self.console.print(block_label(kind, event.label))
                    self._at_line_start = True
                else:
                    self._show_status()
            elif not self._answer_started:
                self._start_answer(labelled=kind == "output" or self._reflections > 0)
        elif event.type == "text":
            self._write_text(kind, self._stripper.feed(event.text))
        elif event.type == "close":
            # An unfinished control sequence ends with its section: what it held back is
            # shown there, never carried into the next section.
            self._write_text(kind, self._stripper.flush())
            if self._stack:
                self._stack.pop()
            if kind in ("thinking", "reflection") and self.show_reasoning:
                if not event.complete:
                    self._end_line()
                    self.console.print(
                        Text(
                            "… thinking incomplete: the reply ended before its thinking was closed",
                            "red",
                        )
                    )
                elif kind == "reflection" and self._stack and self._stack[-1] == "thinking":
                    self._end_line()
                    self.console.print(LABELS["thinking"])
                    self._at_line_start = True
            elif kind in ("tool_call", "note") and self.show_reasoning:
                self._end_line()
                if kind == "note" and self._stack and self._stack[-1] == "thinking":
                    self.console.print(LABELS["thinking"])
        elif event.type == "cut":
            self._end_line()
            why = "the thinking budget" if event.text == "budget" else "you"
            self.console.print(Text(f"✂ thinking cut short by {why}: answering now", "dim"))
            self._at_line_start = True
        elif event.type == "retag" and self.show_reasoning:
            self._flush_answer()
            self.console.print(Text("(the text above was the model's thinking)", "dim"))

    def _write_text(self, kind: str, text: str) -> None:
        if not text:
            return
        if kind in BLOCK_KINDS:
            self._thinking_chars += len(text)
            if self.show_reasoning:
                self._write_reasoning(text, kind)
            else:
                self._show_status()
        else:
            self._write_answer(text)

    def _show_status(self) -> None:
        if self._status is None:
            self._status = Live(console=self.console, transient=True, refresh_per_second=8)
            self._status.start()
        label = f"Thinking… {self._thinking_chars:,} characters"
        if self._reflections:
            label += f", {self._reflections} reflection{'s' if self._reflections != 1 else ''}"
        self._status.update(Text(label, style="dim"))

    def _stop_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def _write_reasoning(self, text: str, kind: str) -> None:
        gutter, gutter_style = GUTTERS[kind]
        style = _STYLES.get(kind, THINKING_STYLE)
        out = Text()
        for part in text.splitlines(keepends=True):
            if self._at_line_start:
                if not part.strip() and part.endswith("\n") and out.plain.endswith("\n"):
                    continue  # collapse runs of blank lines inside reasoning
                out.append(gutter, gutter_style)
            out.append(part.rstrip("\n"), style)
            if part.endswith("\n"):
                out.append("\n")
                self._at_line_start = True
            else:
                self._at_line_start = False
        if out.plain:
            self.console.print(out, end="", soft_wrap=True)

    def _end_line(self) -> None:
        if not self._at_line_start:
            self.console.print()
            self._at_line_start = True

    # -- the answer ---------------------------------------------------------------------------

    def _start_answer(self, labelled: bool) -> None:
        self._stop_status()
        self._answer_started = True
        if labelled and self.show_reasoning:
            self._end_line()
            self.console.print(LABELS["output"])
        self._live = Live(
            console=self.console, transient=True, refresh_per_second=10, auto_refresh=False
        )
        self._live.start()

    def _write_answer(self, text: str) -> None:
        if not self._answer_started:
            self._start_answer(labelled=False)
        if not self._blocks.pending and not text.strip():
            return
        done = self._blocks.feed(text)
        if done.strip():
            self._print_markdown(done)
        self._paint_live(force=bool(done))

    def _paint_live(self, *, force: bool = False) -> None:
        """Redraw the block being written, in place. Drawing it costs time proportional to its
        length, so redraws are spaced at least LIVE_COST_FACTOR times the last one's cost apart:
        a huge paragraph or code fence is then drawn a bounded share of the time, and the
        whole answer streams in linear time however long one block grows."""
        if self._live is None or not self.console.is_terminal:
            return
        now = time.perf_counter()
        if not force and now < self._next_paint:
            return
        self._live.update(_Tail(self._tail_lines(self._blocks.pending)), refresh=True)
        cost = time.perf_counter() - now
        self._next_paint = now + max(LIVE_MIN_INTERVAL_S, LIVE_COST_FACTOR * cost)

    def _tail_lines(self, text: str) -> list[list[Segment]]:
        """The last screenful of `text` rendered: a block taller than the terminal shows its
        newest lines while it grows (it is printed whole once it is finished)."""
        if not text.strip():
            return []
        options = self.console.options
        lines = self.console.render_lines(_markdown(text), options, pad=False)
        while lines and not any(seg.text.strip() for seg in lines[-1]):
            lines.pop()  # the trailing blank line Markdown adds after a block
        return lines[-max(1, self.console.size.height - 2) :]

    def _print_markdown(self, text: str) -> None:
        if self._live is not None:
            self._live.update(Text(""), refresh=True)
        self.console.print(_markdown(text))

    def _flush_answer(self) -> None:
        if self._live is not None:
            self._live.update(Text(""), refresh=True)
            self._live.stop()
            self._live = None
        pending = self._blocks.pending
        if pending.strip():
            self.console.print(_markdown(pending))
        self._blocks = BlockSplitter()

    def finish(self, result: ReplyResult | None) -> None:
        """End of the reply (also after Ctrl+C): flush what is pending, add the footer."""
        self._write_text(self._stack[-1] if self._stack else "text", self._stripper.flush())
        self._stop_status()
        self._end_line()
        self._flush_answer()
        if result is None:
            return
        if not self._answer_started and not result.parsed.answer:
            note = "(no answer" + (
                ": the thinking was cut off)" if result.parsed.thinking_incomplete else ")"
            )
            self.console.print(Text(note, style="dim"))
        self.console.print(footer(result))


class _Tail:
    """Already rendered lines, for Live."""

    def __init__(self, lines: list[list[Segment]]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines:
            yield from line
            yield Segment.line()


class SafeMarkdown(Markdown):
    """Rich's Markdown with raw HTML off: Rich silently drops HTML tags, so a model answer that
    mentions `<div>` or `<T>` would lose them. With html off they are shown as the text they are.
    Parsed when drawn, for the width it gets: how deep quotes and lists may nest depends on it."""

    def __init__(self, markup: str) -> None:
        super().__init__("", code_theme="monokai", hyperlinks=False)
        self.markup = markup
        self._parsed_for = -1

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        budget = nesting_budget(options.max_width)
        if budget != self._parsed_for:
            self.parsed = _parser(budget).parse(self.markup)
            self._parsed_for = budget
        yield from super().__rich_console__(console, options)


# Quotes and lists nest only while they leave the text this many columns (see `cap_nesting`).
MIN_TEXT_WIDTH = 24


def nesting_budget(width: int) -> int:
    """Columns quotes and lists may take at this width."""
    return max(8, width - MIN_TEXT_WIDTH)


_PARSERS: dict[int, MarkdownIt] = {}


def _parser(budget: int) -> MarkdownIt:
    if budget not in _PARSERS:
        md = MarkdownIt("commonmark", {"html": False}).enable("strikethrough").enable("table")
        _PARSERS[budget] = cap_nesting(md, budget)
    return _PARSERS[budget]


def _markdown(text: str) -> Markdown:
    return SafeMarkdown(text)


def footer(result: ReplyResult) -> Text:
    return Text(footer_text(result), style="dim")


def render_parsed(console: Console, parsed: ParsedReply, *, show_reasoning: bool) -> None:
    """A finished reply, rendered the way `ask` streams it (for `view`)."""
    items: list[Text | Markdown] = []
    if show_reasoning:
        for section in parsed.sections:
            if section.kind in BLOCK_KINDS and section.text.strip():
                items.append(block_label(section.kind, section.label))
                items.append(_gutter(strip_controls(section.text.strip()), section.kind))
        if parsed.thinking_incomplete:
            items.append(
                Text("… thinking incomplete: the reply ended before its thinking was closed", "red")
            )
        if parsed.answer and (parsed.thinking or parsed.reflections):
            items.append(LABELS["output"])
    elif parsed.thinking or parsed.reflections:
        n = len(parsed.reflections)
        note = f"(thinking hidden, {n} reflection{'s' if n != 1 else ''}; --reasoning show)"
        items.append(Text(note, style="dim"))
    if not show_reasoning:  # tool calls are what the model did: shown folded to one line each
        for section in parsed.sections:
            if section.kind == "tool_call":
                items.append(block_label("tool_call", section.label))
    if parsed.answer:
        items.append(_markdown(strip_controls(parsed.answer)))
    console.print(Group(*items))


_STYLES = {"reflection": REFLECTION_STYLE, "tool_call": TOOL_STYLE}


def _gutter(text: str, kind: str) -> Text:
    gutter, gutter_style = GUTTERS[kind]
    style = _STYLES.get(kind, THINKING_STYLE)
    out = Text()
    for i, line in enumerate(text.splitlines()):
        if i:
            out.append("\n")
        out.append(gutter, gutter_style)
        out.append(line, style)
    return out
