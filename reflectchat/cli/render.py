"""Terminal rendering of a reply: thinking dim and labelled, each reflection highlighted as the
self-correction it is, then the answer as Markdown.

Model text is untrusted: it only ever reaches Rich as `Text` objects or Markdown source (never
console markup), and control sequences are stripped first.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from rich.console import Console, Group
from rich.live import Live
from rich.markdown import Markdown
from rich.text import Text

from reflectchat.core.reply import ReplyResult
from reflectchat.core.sanitize import ControlStripper, strip_controls
from reflectchat.core.sections import ParsedReply, SectionEvent

THINKING_STYLE = "dim italic"
REFLECTION_STYLE = "bold yellow"
GUTTERS = {"thinking": ("│ ", "dim"), "reflection": ("┃ ", "yellow")}
LABELS = {
    "thinking": Text("◆ Thinking", style="bold dim"),
    "reflection": Text("↻ Reflection — the model corrects itself", style="bold yellow"),
    "output": Text("◆ Answer", style="bold green"),
}
_FENCE = re.compile(r"^\s*(```|~~~)", re.MULTILINE)


def split_complete_blocks(markdown: str) -> tuple[str, str]:
    """Split Markdown into (complete blocks, the block still being written).

    A block is complete once a blank line follows it outside a code fence; printing only
    complete blocks means nothing already on screen ever has to be redrawn.
    """
    cut = 0
    in_fence = False
    pos = 0
    for line in markdown.splitlines(keepends=True):
        pos += len(line)
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and not line.strip() and line.endswith("\n"):
            cut = pos
    return markdown[:cut], markdown[cut:]


class TerminalRenderer:
    """Renders section events live on a terminal."""

    def __init__(self, console: Console, *, show_reasoning: bool = True) -> None:
        self.console = console
        self.show_reasoning = show_reasoning
        self._stack: list[str] = []
        self._at_line_start = True
        self._answer_pending = ""
        self._answer_started = False
        self._live: Live | None = None
        self._thinking_chars = 0
        self._reflections = 0
        self._status: Live | None = None
        self._stripper = ControlStripper()

    # -- events -------------------------------------------------------------------------------

    def handle(self, event: SectionEvent) -> None:
        kind = event.kind
        if event.type == "open":
            self._stack.append(kind)
            if kind in ("thinking", "reflection"):
                if kind == "reflection":
                    self._reflections += 1
                if self.show_reasoning:
                    self._end_line()
                    self.console.print(LABELS[kind])
                    self._at_line_start = True
                else:
                    self._show_status()
            elif not self._answer_started:
                self._start_answer(labelled=kind == "output" or self._reflections > 0)
        elif event.type == "text":
            text = self._stripper.feed(event.text)
            if kind in ("thinking", "reflection"):
                self._thinking_chars += len(text)
                if self.show_reasoning:
                    self._write_reasoning(text, kind)
                else:
                    self._show_status()
            else:
                self._write_answer(text)
        elif event.type == "close":
            if self._stack:
                self._stack.pop()
            if kind in ("thinking", "reflection") and self.show_reasoning:
                if not event.complete:
                    self._end_line()
                    self.console.print(
                        Text("… thinking incomplete: the reply ended before </thinking>", "red")
                    )
                elif kind == "reflection":
                    self._end_line()
                    self.console.print(LABELS["thinking"])
                    self._at_line_start = True
        elif event.type == "retag" and self.show_reasoning:
            self._flush_answer()
            self.console.print(Text("(the text above was the model's thinking)", "dim"))

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
        style = REFLECTION_STYLE if kind == "reflection" else THINKING_STYLE
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
        if not self._answer_pending and not text.strip():
            return
        self._answer_pending += text
        done, rest = split_complete_blocks(self._answer_pending)
        if done.strip():
            self._print_markdown(done)
        self._answer_pending = rest
        if self._live is not None:
            self._live.update(_markdown(rest), refresh=True)

    def _print_markdown(self, text: str) -> None:
        if self._live is not None:
            self._live.update(Text(""), refresh=True)
        self.console.print(_markdown(text))

    def _flush_answer(self) -> None:
        if self._live is not None:
            self._live.update(Text(""), refresh=True)
            self._live.stop()
            self._live = None
        if self._answer_pending.strip():
            self.console.print(_markdown(self._answer_pending))
        self._answer_pending = ""

    def finish(self, result: ReplyResult | None) -> None:
        """End of the reply (also after Ctrl+C): flush what is pending, add the footer."""
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


class SafeMarkdown(Markdown):
    """Rich's Markdown with raw HTML off: Rich silently drops HTML tags, so a model answer that
    mentions `<div>` or `<T>` would lose them. With html off they are shown as the text they are."""

    def __init__(self, markup: str) -> None:
        super().__init__("", code_theme="monokai", hyperlinks=False)
        self.markup = markup
        self.parsed = _PARSER.parse(markup)


_PARSER = MarkdownIt("commonmark", {"html": False}).enable("strikethrough").enable("table")


def _markdown(text: str) -> Markdown:
    return SafeMarkdown(text)


def footer(result: ReplyResult) -> Text:
    s = result.stats
    parts = [result.model] if result.model else []
    if s.completion_tokens:
        parts.append(f"{s.completion_tokens} tokens")
    if s.tokens_per_second:
        parts.append(f"{s.tokens_per_second:.1f} tok/s")
    if s.total_s:
        parts.append(f"{s.total_s:.2f} s")
    reason = {"length": "stopped at the token limit", "cancelled": "cancelled"}.get(
        result.finish_reason, result.finish_reason
    )
    parts.append(reason)
    return Text(" · ".join(strip_controls(p) for p in parts), style="dim")


def render_parsed(console: Console, parsed: ParsedReply, *, show_reasoning: bool) -> None:
    """A finished reply, rendered the way `ask` streams it (for `view`)."""
    items: list[Text | Markdown] = []
    if show_reasoning:
        for section in parsed.sections:
            if section.kind in ("thinking", "reflection") and section.text.strip():
                items.append(LABELS[section.kind])
                items.append(_gutter(strip_controls(section.text.strip()), section.kind))
        if parsed.thinking_incomplete:
            items.append(Text("… thinking incomplete: the reply ended before </thinking>", "red"))
        if parsed.answer and (parsed.thinking or parsed.reflections):
            items.append(LABELS["output"])
    elif parsed.thinking or parsed.reflections:
        n = len(parsed.reflections)
        note = f"(thinking hidden, {n} reflection{'s' if n != 1 else ''}; --reasoning show)"
        items.append(Text(note, style="dim"))
    if parsed.answer:
        items.append(_markdown(strip_controls(parsed.answer)))
    console.print(Group(*items))


def _gutter(text: str, kind: str) -> Text:
    gutter, gutter_style = GUTTERS[kind]
    style = REFLECTION_STYLE if kind == "reflection" else THINKING_STYLE
    out = Text()
    for i, line in enumerate(text.splitlines()):
        if i:
            out.append("\n")
        out.append(gutter, gutter_style)
        out.append(line, style)
    return out
