"""The chat's message widgets: the user's prompt, and an assistant reply with its thinking
panel (reflections inside, where they occurred), its answer and a one-line footer.

Model text is untrusted: it reaches the screen only through `StreamedText` (Markdown with raw
HTML off, control sequences stripped) or as `Content` objects — never as Textual markup.
"""

from __future__ import annotations

import asyncio

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Collapsible, Static

from reflectchat.core.reply.footer import footer_text
from reflectchat.core.reply.sanitize import strip_controls
from reflectchat.core.reply.sections import ParsedReply, SectionEvent
from reflectchat.core.reply.stream import ReplyResult
from reflectchat.tui.demo_note import demo_note
from reflectchat.tui.streamed import StreamedText
from reflectchat.tui.streaming import merge_text

REFLECTION_TITLE = "↻ Reflection — the model corrects itself"
INCOMPLETE_NOTE = "… thinking incomplete: the reply ended before </thinking>"


def thinking_title(
    reflections: int, *, streaming: bool, incomplete: bool, tokens: int = 0, cut: str = ""
) -> Content:
    parts: list[str | tuple[str, str]] = [("Thinking…" if streaming else "Thinking", "bold")]
    if tokens:
        parts.append((f" · {tokens:,} tokens", "bold"))
    if reflections:
        noun = "reflection" if reflections == 1 else "reflections"
        parts.append((f" · {reflections} {noun}", "bold $text-warning"))
    if cut:
        who = "the budget" if cut == "budget" else "you"
        parts.append((f" · cut short by {who}", "$text-warning"))
    if incomplete:
        parts.append((" · incomplete", "$text-error"))
    return Content.assemble(*parts)


class ThinkingPanel(Collapsible):
    """The model's reasoning: thinking segments and, where they occurred, reflections."""


class ReflectionBlock(Collapsible):
    """One self-correction, highlighted, open by default."""

    def __init__(self, text: StreamedText) -> None:
        super().__init__(text, title=Content(REFLECTION_TITLE), collapsed=False)  # type: ignore[arg-type]
        self.text = text


class ToolCallBlock(Collapsible):
    """A tool call the model made (harmony's commentary to=functions.x, <tool_call>): shown
    apart from the answer, labelled with its recipient."""

    def __init__(self, text: StreamedText, label: str = "") -> None:
        title = TOOL_CALL_TITLE + (f" → {strip_controls(label)}" if label else "")
        super().__init__(text, title=Content(title), collapsed=False)  # type: ignore[arg-type]
        self.text = text
        self.add_class("tool-call")


TOOL_CALL_TITLE = "⚙ Tool call"


class UserMessage(Static):
    def __init__(self, text: str) -> None:
        super().__init__(Content.assemble(("› ", "bold"), strip_controls(text).rstrip()))
        self.prompt = text


class Note(Static):
    """A notice in the chat (errors, …); never markup."""

    def __init__(self, text: str, *, classes: str = "") -> None:
        super().__init__(Content(strip_controls(text)), classes=classes)


class AssistantMessage(Vertical):
    """One reply. Streams with `apply()`, ends with `finish()`; or shows a stored reply."""

    def __init__(self, *, keep_thinking_open: bool = False, stored: ReplyResult | None = None):
        super().__init__()
        self.keep_thinking_open = keep_thinking_open
        self.result: ReplyResult | None = stored
        self.reflections = 0
        self.incomplete = False
        self.thinking_tokens = 0  # live, set by the reply runner from its ReplyStream
        self.thinking_cut = ""
        self.finished = stored is not None
        self._panel: ThinkingPanel | None = None
        self._thought: StreamedText | None = None
        self._reflection: StreamedText | None = None
        self._side: StreamedText | None = None  # an open tool call or budget note
        self._segments: list[StreamedText] = []
        self._answer_runs: list[list[str]] = []  # raw text of each answer section, for retag
        self._answer_started = False
        self._lock = asyncio.Lock()
        self._answer = StreamedText(classes="answer")
        self._note = Static("", classes="reply-note")
        self._footer = Static("", classes="reply-footer")

    # -- building --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        if self.result is None:
            self._note.update(Content("Reading the prompt…"))
            self._note.add_class("waiting")
            yield self._answer
            yield self._note
            yield self._footer
            return
        parsed = self.result.parsed
        panel = self._stored_panel(parsed)
        if panel is not None:
            yield panel
        for section in parsed.sections:
            if section.kind == "tool_call":
                call = StreamedText(strip_controls(section.text).strip(), classes="tool-call")
                yield ToolCallBlock(call, section.label)
        self._answer = StreamedText(_answer_text(parsed), classes="answer")
        yield self._answer
        self._set_notes(self.result, None)
        yield self._note
        self._footer.update(footer(self.result))
        yield self._footer

    def _stored_panel(self, parsed: ParsedReply) -> ThinkingPanel | None:
        children: list[Widget] = []
        for section in parsed.sections:
            text = strip_controls(section.text).strip()
            if not text:
                continue
            if section.kind == "thinking":
                children.append(StreamedText(text, classes="thought"))
            elif section.kind == "reflection":
                self.reflections += 1
                block = StreamedText(text, classes="reflection")
                children.append(ReflectionBlock(block))
            elif section.kind == "note":
                children.append(StreamedText(text, classes="thought note"))
        if not children:
            return None
        self.incomplete = parsed.thinking_incomplete
        panel = ThinkingPanel(
            *children,
            title=thinking_title(  # type: ignore[arg-type]
                self.reflections,
                streaming=False,
                incomplete=self.incomplete,
                tokens=self.result.stats.thinking_tokens if self.result else 0,
                cut=(self.result.thinking_cut or "") if self.result else "",
            ),
            collapsed=bool(parsed.answer) and not self.keep_thinking_open,
        )
        self._panel = panel
        return panel

    # -- streaming ---------------------------------------------------------------------------

    async def apply(self, events: list[SectionEvent]) -> None:
        """Show a batch of section events (drawn incrementally; see `finish`)."""
        async with self._lock:
            if self._note.has_class("waiting"):
                self._note.remove_class("waiting")
                self._note.display = False
            for typ, kind, text, complete in merge_text(events):
                if typ == "text":
                    await self._write(kind, text)
                elif typ == "open":
                    await self._open(kind, text)
                elif typ == "close":
                    await self._close(kind, complete)
                elif typ == "retag":
                    await self._retag()
                elif typ == "cut":
                    self.thinking_cut = text or "user"
                    self.update_title()

    async def _open(self, kind: str, label: str = "") -> None:
        if kind == "tool_call":
            call = StreamedText(classes="tool-call")
            await self.mount(ToolCallBlock(call, label), before=self._answer)
            self._side = call
        elif kind == "note":
            panel = await self._ensure_panel()
            if self._thought is not None:
                await self._thought.settle()
            note = StreamedText(classes="thought note")
            await panel.query_one(Collapsible.Contents).mount(note)
            self._side = note
            self._thought = None
        elif kind == "thinking":
            await self._ensure_panel()
            self._thought = None
        elif kind == "reflection":
            panel = await self._ensure_panel()
            if self._thought is not None:  # the thinking before it is complete
                await self._thought.settle()
            self.reflections += 1
            self.update_title()
            text = StreamedText(classes="reflection")
            await panel.query_one(Collapsible.Contents).mount(ReflectionBlock(text))
            self._reflection = text
            self._segments.append(text)
            self._thought = None
        else:  # output, or untagged text: the answer
            self._answer_runs.append([])
            if not self._answer_started:
                self._answer_started = True
                if self._panel is not None and not self.keep_thinking_open:
                    self._panel.collapsed = True
            elif self._answer.text:
                self._answer.write("\n\n")

    async def _close(self, kind: str, complete: bool) -> None:
        # A finished part gets its final render now, not at the end of the reply.
        if kind in ("tool_call", "note") and self._side is not None:
            await self._side.settle()
            self._side = None
        elif kind == "reflection" and self._reflection is not None:
            await self._reflection.settle()
            self._reflection = None
        elif kind == "thinking" and self._thought is not None:
            await self._thought.settle()
            self._thought = None
        if not complete and kind in ("thinking", "reflection"):
            self.incomplete = True
            self.update_title()

    async def _write(self, kind: str, text: str) -> None:
        if kind in ("tool_call", "note"):
            if self._side is None:  # text without its open: be lenient
                await self._open(kind)
            assert self._side is not None
            self._side.write(text)
        elif kind == "thinking":
            if self._thought is None:
                self._thought = await self._new_thought()
            self._thought.write(text)
        elif kind == "reflection":
            if self._reflection is None:  # a reflection's text without its open: be lenient
                await self._open("reflection")
            assert self._reflection is not None
            self._reflection.write(text)
        else:
            if not self._answer_runs:
                self._answer_runs.append([])
            self._answer_runs[-1].append(text)
            self._answer.write(text)

    async def _new_thought(self) -> StreamedText:
        panel = await self._ensure_panel()
        thought = StreamedText(classes="thought")
        await panel.query_one(Collapsible.Contents).mount(thought)
        self._segments.append(thought)
        return thought

    async def _retag(self) -> None:
        """The untagged text just shown as the answer was thinking (a template pre-filled
        `<think>`): move it into the thinking panel."""
        if not self._answer_runs:
            return
        moved = "".join(self._answer_runs.pop())
        thought = await self._new_thought()
        thought.write(moved)
        await self._answer.replace("\n\n".join("".join(run) for run in self._answer_runs))
        self._answer_started = bool(self._answer_runs)
        if not self._answer_started and self._panel is not None:
            self._panel.collapsed = False

    async def _ensure_panel(self) -> ThinkingPanel:
        if self._panel is None:
            self._panel = ThinkingPanel(
                title=thinking_title(0, streaming=True, incomplete=False),  # type: ignore[arg-type]
                collapsed=False,
            )
            await self.mount(self._panel, before=self._answer)
        return self._panel

    def update_title(self) -> None:
        if self._panel is not None:
            self._panel.title = thinking_title(  # type: ignore[assignment]
                self.reflections,
                streaming=not self.finished,
                incomplete=self.incomplete,
                tokens=self.thinking_tokens,
                cut=self.thinking_cut,
            )

    async def finish(self, result: ReplyResult | None, error: str | None = None) -> None:
        """The reply ended (finished, cancelled or failed): render every part whole once,
        add notes and the footer."""
        async with self._lock:
            self.finished = True
            self.result = result
            self._note.remove_class("waiting")
            # One layout for all of it: settle every part inside a single batch.
            with self.app.batch_update():
                await asyncio.gather(*(s.settle() for s in [*self._segments, self._answer]))
            if result is not None and result.parsed.thinking_incomplete:
                self.incomplete = True
            if result is not None and result.stats.thinking_tokens:
                # The final count: the live one is only as fresh as the last drawing, and a
                # reply can end between two of them.
                self.thinking_tokens = result.stats.thinking_tokens
            self.update_title()
            if self._panel is not None and not self._answer_started:
                self._panel.collapsed = False  # nothing else to show: keep the reasoning open
            self._set_notes(result, error)
            if result is not None:
                self._footer.update(footer(result))

    def fail(self, error: str) -> None:
        """Nothing was generated (the prompt did not fit, no model, …)."""
        self.finished = True
        self._note.remove_class("waiting")
        self._note.add_class("error")
        self._note.display = True
        self._note.update(Content("✗ " + strip_controls(error)))

    def wait_for_model(self) -> None:
        self._note.add_class("waiting")
        self._note.update(Content("Waiting for the model to load…"))

    def _set_notes(self, result: ReplyResult | None, error: str | None) -> None:
        lines: list[tuple[str, str]] = []
        if error:
            lines.append(("✗ " + strip_controls(error), "$text-error"))
        if result is not None:
            parsed = result.parsed
            if parsed.thinking_incomplete:
                lines.append((INCOMPLETE_NOTE, "$text-error"))
            if not parsed.answer and result.finish_reason != "cancelled":
                note = "(no answer" + (": the thinking was cut off)" if self.incomplete else ")")
                lines.append((note, "dim"))
            if result.finish_reason == "cancelled":
                lines.append(("⏹ Stopped — the partial reply is kept.", "$text-warning"))
        if not lines:
            self._note.update("")
            self._note.display = False
            return
        self._note.display = True
        self._note.update(Content("\n").join(Content.styled(t, s) for t, s in lines))

    # -- for the app -----------------------------------------------------------------------

    @property
    def panel(self) -> ThinkingPanel | None:
        return self._panel

    @property
    def answer_source(self) -> str:
        """What the answer area shows (Markdown source)."""
        return self._answer.text

    @property
    def thinking_title(self) -> str:
        return "" if self._panel is None else str(self._panel.title)

    @property
    def parts(self) -> list[StreamedText]:
        """The reasoning parts in order, then the answer."""
        return [*self.query(StreamedText)]


def footer(result: ReplyResult) -> Content:
    """The reply's footer line, dimmed (the words are the CLI's: `footer_text`)."""
    return Content.styled(footer_text(result), "dim")


def _answer_text(parsed: ParsedReply) -> str:
    """The answer area of a stored reply: every part that is not reasoning, as streamed."""
    runs = [s.text.strip() for s in parsed.sections if s.kind in ("output", "text")]
    return "\n\n".join(r for r in runs if r)


class ExamplePicked(Message):
    def __init__(self, prompt: str) -> None:
        super().__init__()
        self.prompt = prompt


EXAMPLES = (
    'How many r\'s are in the word "strawberry"?',
    "Is 9.11 bigger than 9.9?",
    "Alice has 3 brothers and 2 sisters. How many sisters does her brother have?",
)


class ExamplePrompt(Static, can_focus=True):
    """A clickable example prompt (Enter works too when it has focus)."""

    BINDINGS = [Binding("enter", "pick", "Ask this", show=False)]

    def __init__(self, prompt: str) -> None:
        super().__init__(Content.assemble(("› ", "bold"), prompt), classes="example")
        self.prompt = prompt

    def on_click(self) -> None:
        self.action_pick()

    def action_pick(self) -> None:
        self.post_message(ExamplePicked(self.prompt))


class Welcome(Vertical):
    """The empty chat: what to try, and (with the demo model) how to get a real one."""

    def __init__(self, *, demo: bool) -> None:
        super().__init__()
        self.demo = demo

    def compose(self) -> ComposeResult:
        yield Static(Content.styled("Ask anything — or try one of these:", "bold"), classes="hello")
        for prompt in EXAMPLES:
            yield ExamplePrompt(prompt)
        yield Static(
            Content("Enter sends · Ctrl+J adds a line · F1 or /help: keys and commands"),
            classes="hint",
        )
        if self.demo:
            yield Static(Content(demo_note()), classes="demo-note")
