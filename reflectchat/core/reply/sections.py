"""Streaming parser that splits a reasoning model's reply into thinking, reflections, answer,
tool calls and notes, driven by a `ReasoningFormat` (formats.py, format_catalog.py).

Feed it decoded text in chunks of any size; it emits `SectionEvent`s as soon as they are certain
and keeps a flat list of `Section`s. Any chunking of the same text gives the same sections and,
after merging adjacent text events, the same event stream: a marker split across chunks is held
back until it is complete or proven not to be one, and only text that could still start a marker
is held.

Event order:
- A marked section: `open`, `text`…, `close`. A nested reasoning kind (a reflection or a budget
  note inside thinking): `open thinking`, `text`, `open reflection`, `text`, `close reflection`,
  `text` (thinking), `close thinking`. In the flat `Section` list the thinking after a
  reflection is a new section.
- Untagged top-level text: `open text`, `text`…, `close text` (when a marker or the end comes).
- A thinking closer right after top-level text (the template pre-filled the opener and the
  caller did not say so): `close text`, then `retag thinking` ("the section just closed is
  thinking").
- A turn boundary (`<|im_end|>`, harmony's `<|return|>`, …) closes what is open; everything
  after it is not part of this reply and produces no events (`ended` turns true).
"""

from __future__ import annotations

from reflectchat.core.reply.format_catalog import AUTO, BY_NAME, harmony_label
from reflectchat.core.reply.formats import (
    REASONING_KINDS,
    VERBATIM_KINDS,
    Marker,
    ReasoningFormat,
    SectionKind,
    UnknownFormatError,
)
from reflectchat.core.reply.marker_tables import Table, tables_for
from reflectchat.core.reply.parsed import (
    KINDS,
    EventType,
    ParsedReply,
    Section,
    SectionEvent,
    reply_from_sections,
    summarize,
)

__all__ = [
    "EventType",
    "ParsedReply",
    "Section",
    "SectionEvent",
    "SectionKind",
    "SectionParser",
    "parse",
    "reply_from_sections",
    "resolve_format",
]


def resolve_format(fmt: ReasoningFormat | str | None) -> ReasoningFormat:
    if fmt is None:
        return AUTO
    if isinstance(fmt, ReasoningFormat):
        return fmt
    found = BY_NAME.get(fmt.strip().lower())
    if found is None:
        known = ", ".join(BY_NAME)
        raise UnknownFormatError(f"unknown reasoning format {fmt!r} (known: {known})")
    return found


_REASONING_OR_NOTE = REASONING_KINDS | {"note"}
_MAX_HEADER = 512  # a harmony header is a few words; longer, it was never one

# Structural events carry no text, and events are immutable: build each one once.
_OPEN_EVENTS = {k: SectionEvent("open", k) for k in KINDS}
_CLOSE_EVENTS = {(k, c): SectionEvent("close", k, complete=c) for k in KINDS for c in (True, False)}
_RETAG_THINKING = SectionEvent("retag", "thinking")
# Feeding one character at a time would build one frozen event per character, the main cost of
# the fast path; events are immutable, so short text events are interned per parser and kind.
_CACHE_MAX_TEXT = 8
_CACHE_MAX_ENTRIES = 4096


class SectionParser:
    """Incremental parser. `feed()` chunks (and `feed_reasoning()` for text a server already
    marked as reasoning), then `finish()`; `reply()` at any time."""

    __slots__ = (
        "_cache",
        "_caches",
        "_cur",
        "_early",
        "_finished",
        "_fmt",
        "_header",
        "_incomplete",
        "_kind",
        "_last_thinking",
        "_parts",
        "_pending",
        "_reasoning_stream",
        "_sections",
        "_stack",
        "_started",
        "_tables",
        "_thought_done",
        "_ws",
        "ended",
    )

    def __init__(self, prefill: str = "", fmt: ReasoningFormat | str | None = None) -> None:
        self._fmt = resolve_format(fmt)
        self._tables = tables_for(self._fmt)
        self._stack: list[SectionKind] = []  # open kinds, outermost first ("text" included)
        self._sections: list[Section] = []  # includes the open section (its text is stale)
        self._cur: Section | None = None  # the section text is appended to, if any
        self._parts: list[str] = []  # text of `_cur`, joined lazily (keeps appends O(1))
        self._ws: list[str] = []  # top-level whitespace held back
        self._pending = ""  # a possible marker prefix held back at the end of the input so far
        self._header: list[str] | None = None  # a harmony header being read
        self._last_thinking: Section | None = None  # latest segment of the open thinking block
        self._incomplete = False
        self._finished = False
        self._started = False  # anything but whitespace seen: `at_start` markers are over
        self._reasoning_stream = False  # the open thinking came from feed_reasoning()
        self._thought_done = False  # a thinking section has been closed by its marker
        self.ended = False  # a turn boundary came: the rest is not this reply
        self._kind: SectionKind = "text"
        self._caches: dict[str, dict[str, SectionEvent]] = {k: {} for k in KINDS}
        self._cache = self._caches["text"]
        self._early: list[SectionEvent] = []
        # The pre-filled text is parsed first; its events come out with the first feed/finish.
        self._early = self.feed(prefill) if prefill else []

    @property
    def format(self) -> ReasoningFormat:
        """The format in force (the `auto` format switches once the text shows its own)."""
        return self._fmt

    @property
    def open_kinds(self) -> list[SectionKind]:
        """What is open, outermost first (`["thinking", "reflection"]`)."""
        return list(self._stack)

    @property
    def server_reasoning(self) -> bool:
        """The open thinking came from `feed_reasoning` (content after it closes it)."""
        return self._reasoning_stream

    @property
    def in_reasoning(self) -> bool:
        """Inside a thinking, reflection or budget note right now."""
        return bool(self._stack) and self._stack[0] in _REASONING_OR_NOTE

    # -- public API -------------------------------------------------------------------------

    def feed(self, chunk: str) -> list[SectionEvent]:
        if self._finished:
            raise RuntimeError("SectionParser.feed() called after finish()")
        if self.ended:
            return self._take_early()
        if self._reasoning_stream and chunk:
            out = self._take_early()
            self._end_reasoning_stream(out)
            self._scan(chunk, out)
            return out
        # Fast path: a section is open, nothing held back, no character that starts a marker.
        if (
            self._cur is not None
            and not self._pending
            and not self._early
            and self._header is None
            and self._context().first.isdisjoint(chunk)
        ):
            if not chunk:
                return []
            self._parts.append(chunk)
            return [self._text_event(chunk)]
        out = self._take_early()
        if chunk:
            self._scan(self._pending + chunk, out)
        return out

    def feed_reasoning(self, text: str) -> list[SectionEvent]:
        """Text a server sent as reasoning (`reasoning_content`): thinking, never scanned for
        markers, so a `</think>` inside it is just text."""
        if self._finished:
            raise RuntimeError("SectionParser.feed_reasoning() called after finish()")
        out = self._take_early()
        if self.ended or not text:
            return out
        if not self._reasoning_stream:
            if self._pending:
                pending, self._pending = self._pending, ""
                self._emit_text(pending, out)
            self._close_all(True, out)
            self._ws.clear()
            self._open_top("thinking", "", out)
            self._reasoning_stream = True
        self._started = True
        self._parts.append(text)
        out.append(self._text_event(text))
        return out

    def finish(self) -> list[SectionEvent]:
        """Flush held-back text and close whatever is still open (complete=False).

        Untagged top-level text has no closing marker, so the end of the reply completes it.
        """
        if self._finished:
            return []
        out = self._take_early()
        if self._header is not None:  # a header that never ended was text
            header, self._header = "".join(self._header), None
            self._emit_text(header, out)
        if self._pending:  # an unfinished marker at the very end is just text
            pending, self._pending = self._pending, ""
            self._emit_text(pending, out)
        self._ws.clear()
        self._close_all(False, out)
        self._finished = True
        return out

    def reply(self) -> ParsedReply:
        """The reply so far; final after `finish()`. Open sections show complete=False."""
        cur = self._cur
        if cur is not None:  # bring the open section's text up to date
            if len(self._parts) != 1:
                self._parts = ["".join(self._parts)]
            cur.text = self._parts[0]
        sections = [Section(s.kind, s.text, s.complete, s.label) for s in self._sections]
        open_reasoning = any(k in REASONING_KINDS for k in self._stack)
        return summarize(sections, self._incomplete or open_reasoning, self._fmt.name)

    # -- scanning ---------------------------------------------------------------------------

    def _take_early(self) -> list[SectionEvent]:
        out, self._early = self._early, []
        return out

    def _context(self) -> Table:
        if self._header is not None:
            return self._tables["header"]
        stack = self._stack
        if not stack:
            return self._tables["top" if self._started else "start"]
        if stack == ["text"]:
            return self._tables["answer" if self._thought_done else "top"]
        inner = stack[-1]
        if inner in VERBATIM_KINDS:
            return self._tables[f"verbatim:{inner}"]
        return self._tables["section"]

    def _scan(self, buf: str, out: list[SectionEvent]) -> None:
        """Parse `buf` (held-back prefix + new chunk); hold back a trailing partial marker."""
        self._pending = ""
        n = len(buf)
        pos = 0
        while pos < n and not self.ended:
            table = self._context()
            found = table.regex.search(buf, pos) if table.regex is not None else None
            stop = found.start() if found is not None else self._held_from(buf, pos, table)
            if stop > pos:
                self._emit(buf[pos:stop], out)
                pos = stop
                if self._context() is not table:
                    continue  # that text opened a section: what follows is read in its context
            if found is None:
                self._pending = buf[pos:]
                return
            start, end = found.span()
            # A longer marker may still start here (`<|channel>` vs `<|channel>thought`).
            if n - start < table.maxlen and self._fmt.fold(buf[start:]) in table.prefixes:
                self._pending = buf[start:]
                return
            text = found.group()
            marker = self._fmt.marker(text)
            if marker is None and self._header is not None:
                marker = Marker(text, "header")  # the header's own end marker
            assert marker is not None
            self._apply(marker, text, out)
            pos = end

    def _held_from(self, buf: str, pos: int, table: Table) -> int:
        """Where a trailing possible marker prefix starts (len(buf) if none)."""
        n = len(buf)
        fold = self._fmt.fold
        for k in range(min(table.maxlen - 1, n - pos), 0, -1):
            if fold(buf[n - k :]) in table.prefixes:
                return n - k
        return n

    def _emit(self, text: str, out: list[SectionEvent]) -> None:
        header = self._header
        if header is not None:
            header.append(text)
            if sum(map(len, header)) > _MAX_HEADER:  # never a header: show it as text
                self._header = None
                self._emit_text("".join(header), out)
            return
        self._emit_text(text, out)

    def _emit_text(self, text: str, out: list[SectionEvent]) -> None:
        if self._cur is None:
            if not self._stack:
                # Whitespace-only top-level text is not a section: hold it until we know.
                if text.isspace():
                    self._ws.append(text)
                    return
                text = "".join(self._ws) + text
                self._ws.clear()
                self._open_top("text", "", out)
            else:  # thinking resumed after a nested section: a new flat section, no event
                self._start(self._stack[-1])
                self._last_thinking = self._cur
        self._started = True
        self._parts.append(text)
        out.append(self._text_event(text))

    def _text_event(self, text: str) -> SectionEvent:
        if len(text) > _CACHE_MAX_TEXT:
            return SectionEvent("text", self._kind, text)
        cache = self._cache
        event = cache.get(text)
        if event is None:
            if len(cache) >= _CACHE_MAX_ENTRIES:
                cache.clear()
            event = cache[text] = SectionEvent("text", self._kind, text)
        return event

    # -- structure ----------------------------------------------------------------------------

    def _apply(self, marker: Marker, text: str, out: list[SectionEvent]) -> None:
        action = marker.action
        self._started = True
        if self._header is not None:
            self._in_header(marker, text, out)
        elif action == "open":
            assert marker.kind is not None
            self._on_open(marker, out)
        elif action == "close":
            assert marker.kind is not None
            self._on_close(marker.kind, out)
        elif action == "header":
            self._close_all(True, out)
            self._ws.clear()
            self._header = [text]
        elif action == "end":
            self._close_all(True, out)
        elif action == "turn":
            self._close_all(True, out, reasoning_done=False)
            self.ended = True
            self._pending = ""
        elif action == "switch":
            self._fmt = BY_NAME[marker.target]
            self._tables = tables_for(self._fmt)
            real = self._fmt.marker(marker.text)
            if real is not None:
                self._apply(real, marker.text, out)
        # "drop": nothing to show

    def _in_header(self, marker: Marker, text: str, out: list[SectionEvent]) -> None:
        header = self._header
        assert header is not None
        fmt = self._fmt
        if marker.action == "header" and text != fmt.header_end:
            header.append(text)  # `<|start|>assistant<|channel|>final`: one header
            return
        self._header = None
        if marker.action == "end":
            return  # a message with a header and no body
        if marker.action == "turn":
            self.ended = True
            return
        whole = "".join(header)
        kind = fmt.classify_header(whole) if fmt.classify_header else "thinking"
        if kind == "turn":
            self.ended = True
            self._pending = ""
            return
        label = harmony_label(whole) if kind == "tool_call" else ""
        self._open_top(kind or "thinking", label, out)

    def _on_open(self, marker: Marker, out: list[SectionEvent]) -> None:
        kind = marker.kind
        assert kind is not None
        stack = self._stack
        if not stack or stack == ["text"]:
            if stack and kind == "output" and marker.after_thinking:
                self._retag_text(out)  # "Here are my reasoning steps:" was pre-filled
            elif stack:
                self._close("text", True, out)
            self._ws.clear()
            self._open_top(kind, "", out)
        elif len(stack) == 1 and stack[0] in REASONING_KINDS | {"note"}:
            if stack[0] == "thinking" and kind in self._fmt.nested:
                self._end_segment()
                self._open_nested(kind, out)
            elif kind == "output":  # the answer begins: the thinking is over
                self._close_all(True, out)
                self._open_top(kind, "", out)
            # any other opener inside reasoning is dropped (a nested <thinking>, …)
        elif len(stack) == 2 and kind == "output":
            self._close_all(True, out)
            self._open_top(kind, "", out)

    def _on_close(self, kind: SectionKind, out: list[SectionEvent]) -> None:
        """A closer that matches nothing open is dropped (no effect)."""
        stack = self._stack
        if not stack:
            return
        if stack == ["text"]:
            if kind == "thinking":
                self._retag_text(out)
            return
        if kind == stack[-1]:
            if len(stack) == 2:
                self._close(kind, True, out)  # back in the thinking; its next text is new
            else:
                self._close_all(True, out)
        elif len(stack) == 2 and kind == stack[0]:
            self._close_all(True, out)

    def _retag_text(self, out: list[SectionEvent]) -> None:
        """Missing opener (pre-filled by the template): the text just written was thinking."""
        self._close("text", True, out)
        self._sections[-1].kind = "thinking"
        out.append(_RETAG_THINKING)

    def _open_top(self, kind: SectionKind, label: str, out: list[SectionEvent]) -> None:
        self._start(kind, label)
        self._stack = [kind]
        if kind == "thinking":
            self._last_thinking = self._cur
        out.append(SectionEvent("open", kind, label=label) if label else _OPEN_EVENTS[kind])

    def _open_nested(self, kind: SectionKind, out: list[SectionEvent]) -> None:
        self._start(kind)
        self._stack.append(kind)
        out.append(_OPEN_EVENTS[kind])

    def _start(self, kind: SectionKind, label: str = "") -> None:
        section = Section(kind, "", complete=False, label=label)
        self._sections.append(section)
        self._cur = section
        self._parts = []
        if kind != self._kind:
            self._kind = kind
            self._cache = self._caches[kind]

    def _end_segment(self) -> None:
        """Finalize the open flat section (if any) without an event."""
        cur = self._cur
        if cur is not None:
            cur.text = "".join(self._parts)
            cur.complete = True
            self._cur = None
            self._parts = []

    def _close(self, kind: SectionKind, complete: bool, out: list[SectionEvent]) -> None:
        """Close the innermost open section."""
        cur = self._cur
        self._end_segment()
        if cur is not None:
            cur.complete = complete
        self._stack.pop()
        out.append(_CLOSE_EVENTS[kind, complete])

    def _close_all(
        self, complete: bool, out: list[SectionEvent], reasoning_done: bool | None = None
    ) -> None:
        """Close everything open. Unterminated reasoning marks the thinking incomplete;
        untagged text needs no closer, so it is always complete. A turn boundary completes an
        answer but not a thinking (`reasoning_done=False`)."""
        stack = self._stack
        if reasoning_done is None:
            reasoning_done = complete
        if any(k in REASONING_KINDS for k in stack) and not reasoning_done:
            self._incomplete = True
        if len(stack) == 2:
            self._close(stack[1], reasoning_done, out)
        if stack:
            kind = stack[0]
            reasoning = kind in REASONING_KINDS or kind == "note"
            done = kind == "text" or (reasoning_done if reasoning else complete)
            if kind == "thinking":
                # The block's last thinking segment carries its completeness, even when the
                # block ended right after a reflection (no segment after it).
                self._end_segment()
                if self._last_thinking is not None:
                    self._last_thinking.complete = done
                self._last_thinking = None
                stack.pop()
                out.append(_CLOSE_EVENTS["thinking", done])
                self._thought_done = self._thought_done or done
            else:
                self._close(kind, done, out)
        self._reasoning_stream = False

    def _end_reasoning_stream(self, out: list[SectionEvent]) -> None:
        """Content after a server's reasoning deltas: the thinking is over."""
        self._reasoning_stream = False
        if self._stack == ["thinking"]:
            self._close_all(True, out)


def parse(text: str, prefill: str = "", fmt: ReasoningFormat | str | None = None) -> ParsedReply:
    """Parse a whole reply at once."""
    parser = SectionParser(prefill, fmt)
    parser.feed(text)
    parser.finish()
    return parser.reply()
