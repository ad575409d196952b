"""Streaming parser that splits a reasoning model's reply into thinking, reflections and answer.

Formats handled:
- Reflection-Llama-3.1-70B: `<thinking>…<reflection>…</reflection>…</thinking><output>…</output>`
- DeepSeek-R1 / Qwen3 / QwQ: `<think>…</think>answer` (the template may pre-fill `<think>`)
- Marco-o1: `<Thought>…</Thought><Output>…</Output>`

Feed it decoded text in chunks of any size; it emits `SectionEvent`s as soon as they are certain
and keeps a flat list of `Section`s. Any chunking of the same text gives the same sections and,
after merging adjacent text events, the same event stream: a tag split across chunks is held back
until it is complete or proven not to be a tag.

Event order:
- A tagged section: `open`, `text`…, `close`. A reflection inside thinking nests:
  `open thinking`, `text`, `open reflection`, `text`, `close reflection`, `text` (thinking),
  `close thinking`. In the flat `Section` list the thinking after a reflection is a new section.
- Untagged top-level text: `open text`, `text`…, `close text` (when a tag or the end arrives).
- A stray `</thinking>` right after top-level text (the template pre-filled `<think>` and the
  caller did not say so): `close text`, then `retag thinking` ("the section just closed is
  thinking").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

SectionKind = Literal["thinking", "reflection", "output", "text"]
EventType = Literal["open", "text", "close", "retag"]


@dataclass(frozen=True, slots=True)
class SectionEvent:
    type: EventType
    kind: SectionKind
    text: str = ""  # only for type == "text"
    complete: bool = True  # for "close": False when finish() closed a section never closed


@dataclass(slots=True)
class Section:
    kind: SectionKind
    text: str  # raw, untrimmed
    complete: bool = True


@dataclass
class ParsedReply:
    sections: list[Section]  # flat, in reply order
    answer: str  # output sections if any, else untagged text after the last reasoning; trimmed
    thinking: str  # all thinking segments (not reflections) joined raw, then trimmed
    reflections: list[str]  # each trimmed
    thinking_incomplete: bool  # a thinking or reflection was still open at the end

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "thinking": self.thinking,
            "reflections": list(self.reflections),
            "sections": [{"kind": s.kind, "text": s.text.strip()} for s in self.sections],
            "thinking_incomplete": self.thinking_incomplete,
        }


# Tag name (lower case) -> section kind. Marco-o1 and the R1 family use aliases of <thinking>.
_TAG_KINDS: dict[str, SectionKind] = {
    "thinking": "thinking",
    "think": "thinking",
    "thought": "thinking",
    "reflection": "reflection",
    "output": "output",
}
# Full tag text (lower case) -> (kind, is_closing).
_ALL_TAGS: dict[str, tuple[SectionKind, bool]] = {}
for _name, _kind in _TAG_KINDS.items():
    _ALL_TAGS[f"<{_name}>"] = (_kind, False)
    _ALL_TAGS[f"</{_name}>"] = (_kind, True)
# Inside <output> only </output> is structure, so an answer can quote the other tags.
_OUTPUT_TAGS: dict[str, tuple[SectionKind, bool]] = {"</output>": ("output", True)}
_MAX_TAG_LEN = max(map(len, _ALL_TAGS))  # len("</reflection>") == 13


def _proper_prefixes(tags: dict[str, tuple[SectionKind, bool]]) -> frozenset[str]:
    return frozenset(tag[:n] for tag in tags for n in range(1, len(tag)))


_ALL_PREFIXES = _proper_prefixes(_ALL_TAGS)
_OUTPUT_PREFIXES = _proper_prefixes(_OUTPUT_TAGS)

# Parser modes. Nested reflection (inside thinking) and top-level reflection differ in what
# their closing tags close, so they are separate modes.
_TOP = "top"  # nothing open; whitespace is held back
_TEXT = "text"  # an untagged top-level text section is open
_THINKING = "thinking"
_REFLECTION = "reflection"  # inside <thinking>
_TOP_REFLECTION = "top_reflection"
_OUTPUT = "output"
# Which tags are structure in each mode, and their proper prefixes (held back at a chunk end).
_ALL = (_ALL_TAGS, _ALL_PREFIXES)
_MODE_TAGS = {
    _TOP: _ALL,
    _TEXT: _ALL,
    _THINKING: _ALL,
    _REFLECTION: _ALL,
    _TOP_REFLECTION: _ALL,
    _OUTPUT: (_OUTPUT_TAGS, _OUTPUT_PREFIXES),
}
# While one of these is open, the reply's thinking is still incomplete.
_REASONING_MODES = frozenset({_THINKING, _REFLECTION, _TOP_REFLECTION})
# Structural events carry no text, and events are immutable: build each one once.
_KINDS: tuple[SectionKind, ...] = ("text", "thinking", "reflection", "output")
_OPEN_EVENTS = {k: SectionEvent("open", k) for k in _KINDS}
_CLOSE_EVENTS = {
    (k, c): SectionEvent("close", k, complete=c) for k in _KINDS for c in (True, False)
}
_RETAG_THINKING = SectionEvent("retag", "thinking")
# Feeding one character at a time would build one frozen event per character, the main cost of
# the fast path; events are immutable, so short text events are interned per parser and kind.
_CACHE_MAX_TEXT = 8
_CACHE_MAX_ENTRIES = 4096


class SectionParser:
    """Incremental parser. `feed()` chunks, then `finish()`; `reply()` at any time."""

    __slots__ = (
        "_cache",
        "_caches",
        "_cur",
        "_early",
        "_finished",
        "_incomplete",
        "_kind",
        "_last_thinking",
        "_mode",
        "_parts",
        "_pending",
        "_sections",
        "_ws",
    )

    def __init__(self, prefill: str = "") -> None:
        self._mode = _TOP
        self._sections: list[Section] = []  # includes the open section (its text is stale)
        self._cur: Section | None = None  # the section text is appended to, if any
        self._parts: list[str] = []  # text of `_cur`, joined lazily (keeps appends O(1))
        self._ws: list[str] = []  # top-level whitespace held back
        self._pending = ""  # a possible tag prefix held back at the end of the input so far
        self._last_thinking: Section | None = None  # latest segment of the open thinking block
        self._incomplete = False
        self._finished = False
        self._kind: SectionKind = "text"
        self._caches: dict[str, dict[str, SectionEvent]] = {k: {} for k in _KINDS}
        self._cache = self._caches["text"]
        self._early: list[SectionEvent] = []
        # The pre-filled text is parsed first; its events come out with the first feed/finish.
        self._early = self.feed(prefill) if prefill else []

    # -- public API -------------------------------------------------------------------------

    def feed(self, chunk: str) -> list[SectionEvent]:
        if self._finished:
            raise RuntimeError("SectionParser.feed() called after finish()")
        # Fast path: a section is open, nothing held back, and no '<' that could start a tag.
        if self._cur is not None and not self._pending and not self._early and "<" not in chunk:
            if not chunk:
                return []
            self._parts.append(chunk)
            return [self._text_event(chunk)]
        out, self._early = self._early, []
        if chunk:
            self._scan(self._pending + chunk, out)
        return out

    def finish(self) -> list[SectionEvent]:
        """Flush held-back text and close whatever is still open (complete=False).

        Untagged top-level text has no closing tag, so the end of the reply completes it.
        """
        if self._finished:
            return []
        out, self._early = self._early, []
        if self._pending:  # an unfinished tag at the very end is just text
            pending, self._pending = self._pending, ""
            self._emit_text(pending, out)
        self._ws.clear()
        mode = self._mode
        if mode == _TEXT:
            self._close("text", True, out)
        elif mode == _THINKING:
            self._close_thinking(False, out)
            self._incomplete = True
        elif mode == _REFLECTION:
            self._close("reflection", False, out)
            self._close_thinking(False, out)
            self._incomplete = True
        elif mode == _TOP_REFLECTION:
            self._close("reflection", False, out)
            self._incomplete = True
        elif mode == _OUTPUT:
            self._close("output", False, out)
        self._mode = _TOP
        self._finished = True
        return out

    def reply(self) -> ParsedReply:
        """The reply so far; final after `finish()`. Open sections show complete=False."""
        cur = self._cur
        if cur is not None:  # bring the open section's text up to date
            if len(self._parts) != 1:
                self._parts = ["".join(self._parts)]
            cur.text = self._parts[0]
        sections = [Section(s.kind, s.text, s.complete) for s in self._sections]
        return _summarize(sections, self._incomplete or self._mode in _REASONING_MODES)

    # -- scanning ---------------------------------------------------------------------------

    def _scan(self, buf: str, out: list[SectionEvent]) -> None:
        """Parse `buf` (held-back prefix + new chunk); hold back a trailing partial tag."""
        self._pending = ""
        n = len(buf)
        start = 0  # start of the text run not yet emitted
        pos = buf.find("<")
        while pos != -1:
            tags, prefixes = _MODE_TAGS[self._mode]
            cand = buf[pos : pos + _MAX_TAG_LEN]
            close = cand.find(">")
            # Tags are ASCII; isascii() keeps e.g. the Kelvin sign from lower-casing into a 'k'.
            if close != -1:
                head = cand[: close + 1]
                tag = tags.get(head.lower()) if head.isascii() else None
                if tag is not None:
                    if pos > start:
                        self._emit_text(buf[start:pos], out)
                    self._on_tag(tag[0], tag[1], out)
                    start = pos + close + 1
                    pos = buf.find("<", start)
                    continue
            elif cand.isascii() and cand.lower() in prefixes:
                # A proper prefix is shorter than any tag, so it runs to the end of `buf`:
                # it may still become a tag.
                if pos > start:
                    self._emit_text(buf[start:pos], out)
                self._pending = cand
                return
            pos = buf.find("<", pos + 1)  # this '<' is plain text
        if start < n:
            self._emit_text(buf[start:] if start else buf, out)

    def _emit_text(self, text: str, out: list[SectionEvent]) -> None:
        if self._cur is None:
            if self._mode == _TOP:
                # Whitespace-only top-level text is not a section: hold it until we know.
                if text.isspace():
                    self._ws.append(text)
                    return
                text = "".join(self._ws) + text
                self._ws.clear()
                self._open("text", _TEXT, out)
            else:  # thinking resumed after a nested reflection: a new flat section, no event
                self._start("thinking")
                self._last_thinking = self._cur
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

    def _on_tag(self, kind: SectionKind, closing: bool, out: list[SectionEvent]) -> None:
        """Apply one recognised tag. Tags that match nothing open are dropped (no effect)."""
        mode = self._mode
        if mode == _OUTPUT:  # only </output> is recognised here
            self._close("output", True, out)
        elif mode in (_TOP, _TEXT):
            if not closing:
                if mode == _TEXT:
                    self._close("text", True, out)
                self._ws.clear()
                self._open_top(kind, out)
            elif kind == "thinking" and mode == _TEXT:
                # Missing <think> (pre-filled by the template): the text was thinking.
                self._close("text", True, out)
                self._sections[-1].kind = "thinking"
                out.append(_RETAG_THINKING)
        elif mode == _THINKING:
            if kind == "thinking":
                if closing:
                    self._close_thinking(True, out)
                # a nested <thinking> is dropped
            elif kind == "reflection":
                if not closing:
                    self._end_segment()
                    self._open("reflection", _REFLECTION, out)
            elif not closing:  # <output> ends the thinking
                self._close_thinking(True, out)
                self._open_top("output", out)
        elif mode == _REFLECTION:
            if closing and kind != "output":
                self._close("reflection", True, out)
                self._mode = _THINKING  # the next thinking text starts a new section
                if kind == "thinking":
                    self._close_thinking(True, out)
            elif not closing and kind == "output":
                self._close("reflection", True, out)
                self._close_thinking(True, out)
                self._open_top("output", out)
        elif mode == _TOP_REFLECTION:
            if closing and kind == "reflection":
                self._close("reflection", True, out)
            elif not closing and kind == "output":
                self._close("reflection", True, out)
                self._open_top("output", out)

    def _open_top(self, kind: SectionKind, out: list[SectionEvent]) -> None:
        if kind == "thinking":
            self._open("thinking", _THINKING, out)
            self._last_thinking = self._cur
        elif kind == "reflection":
            self._open("reflection", _TOP_REFLECTION, out)
        else:
            self._open("output", _OUTPUT, out)

    def _start(self, kind: SectionKind) -> None:
        section = Section(kind, "", complete=False)
        self._sections.append(section)
        self._cur = section
        self._parts = []
        if kind != self._kind:
            self._kind = kind
            self._cache = self._caches[kind]

    def _open(self, kind: SectionKind, mode: str, out: list[SectionEvent]) -> None:
        self._start(kind)
        self._mode = mode
        out.append(_OPEN_EVENTS[kind])

    def _end_segment(self) -> None:
        """Finalize the open flat section (if any) without an event."""
        cur = self._cur
        if cur is not None:
            cur.text = "".join(self._parts)
            cur.complete = True
            self._cur = None
            self._parts = []

    def _close(self, kind: SectionKind, complete: bool, out: list[SectionEvent]) -> None:
        """Close the open section; back at top level unless the caller says otherwise."""
        cur = self._cur
        self._end_segment()
        if cur is not None:
            cur.complete = complete
        self._mode = _TOP
        out.append(_CLOSE_EVENTS[kind, complete])

    def _close_thinking(self, complete: bool, out: list[SectionEvent]) -> None:
        # The block's last thinking segment carries its completeness, even when the block
        # ended right after a reflection (no segment after it).
        self._end_segment()
        if self._last_thinking is not None:
            self._last_thinking.complete = complete
        self._last_thinking = None
        self._mode = _TOP
        out.append(_CLOSE_EVENTS["thinking", complete])


def _summarize(sections: list[Section], thinking_incomplete: bool) -> ParsedReply:
    outputs = [s.text for s in sections if s.kind == "output"]
    if outputs:
        answer = "".join(outputs)
    else:
        # Untagged text after the last reasoning section; with no tags, the whole reply.
        last = max(
            (i for i, s in enumerate(sections) if s.kind in ("thinking", "reflection")),
            default=-1,
        )
        answer = "".join(s.text for s in sections[last + 1 :] if s.kind == "text")
    return ParsedReply(
        sections=sections,
        answer=answer.strip(),
        thinking="".join(s.text for s in sections if s.kind == "thinking").strip(),
        reflections=[s.text.strip() for s in sections if s.kind == "reflection"],
        thinking_incomplete=thinking_incomplete,
    )


def parse(text: str, prefill: str = "") -> ParsedReply:
    """Parse a whole reply at once."""
    parser = SectionParser(prefill)
    parser.feed(text)
    parser.finish()
    return parser.reply()
