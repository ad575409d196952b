"""What a reply splits into: sections, the events that stream them, and the summary (answer,
thinking, reflections, tool calls) built from the sections — also from stored ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from reflectchat.core.reply.formats import REASONING_KINDS, SectionKind

# "cut": the thinking was ended early (text: "budget" or "user"); see core/reply/stream.py.
EventType = Literal["open", "text", "close", "retag", "cut"]
KINDS: tuple[SectionKind, ...] = ("text", "thinking", "reflection", "output", "tool_call", "note")


@dataclass(frozen=True, slots=True)
class SectionEvent:
    type: EventType
    kind: SectionKind
    text: str = ""  # only for type == "text"
    complete: bool = True  # for "close": False when finish() closed a section never closed
    label: str = ""  # for "open": a tool call's recipient


@dataclass(slots=True)
class Section:
    kind: SectionKind
    text: str  # raw, untrimmed
    complete: bool = True
    label: str = ""


@dataclass
class ParsedReply:
    sections: list[Section]  # flat, in reply order
    answer: str  # output sections if any, else untagged text after the last reasoning; trimmed
    thinking: str  # all thinking segments (not reflections) joined raw, then trimmed
    reflections: list[str]  # each trimmed
    thinking_incomplete: bool  # a thinking or reflection was still open at the end
    format: str = "auto"
    tool_calls: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        sections: list[dict[str, Any]] = []
        for s in self.sections:
            item: dict[str, Any] = {"kind": s.kind, "text": s.text.strip()}
            if s.label:
                item["label"] = s.label
            sections.append(item)
        return {
            "format": self.format,
            "answer": self.answer,
            "thinking": self.thinking,
            "reflections": list(self.reflections),
            "tool_calls": list(self.tool_calls),
            "sections": sections,
            "thinking_incomplete": self.thinking_incomplete,
        }


def summarize(sections: list[Section], thinking_incomplete: bool, fmt: str) -> ParsedReply:
    outputs = [s.text for s in sections if s.kind == "output"]
    if outputs:
        answer = "".join(outputs)
    else:
        # Untagged text after the last reasoning section; with no tags, the whole reply.
        last = max(
            (i for i, s in enumerate(sections) if s.kind in REASONING_KINDS),
            default=-1,
        )
        answer = "".join(s.text for s in sections[last + 1 :] if s.kind == "text")
    return ParsedReply(
        sections=sections,
        answer=answer.strip(),
        thinking="".join(s.text for s in sections if s.kind == "thinking").strip(),
        reflections=[s.text.strip() for s in sections if s.kind == "reflection"],
        thinking_incomplete=thinking_incomplete,
        format=fmt,
        tool_calls=[s.text.strip() for s in sections if s.kind == "tool_call"],
    )


def reply_from_sections(
    items: list[dict[str, Any]], fmt: str = "auto", *, thinking_incomplete: bool = False
) -> ParsedReply:
    """A reply rebuilt from its stored sections (`to_dict()["sections"]`), so a later render
    is the one the user saw, whatever the format (and a server's reasoning, which has no
    markers in the raw text)."""
    kinds = set(KINDS)
    sections = [
        Section(
            item["kind"] if item.get("kind") in kinds else "text",
            str(item.get("text", "")),
            label=str(item.get("label", "")),
        )
        for item in items
        if isinstance(item, dict)
    ]
    return summarize(sections, thinking_incomplete, fmt)
