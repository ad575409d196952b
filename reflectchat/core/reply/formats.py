"""Reasoning formats as data: which markers a model family writes and what each one does.

A format is a list of `Marker`s. The streaming parser (sections.py) is driven by it; adding a
model family means adding one `ReasoningFormat` to format_catalog.py and its test vectors.

Marker actions:
- ``open``: a section of ``kind`` starts (``<think>``, ``[THINK]``, ``<|START_RESPONSE|>``).
- ``close``: the open section of ``kind`` ends (``</think>``). A thinking closer after untagged
  text means the template pre-filled the opener: that text was thinking.
- ``header``: a harmony-style message header starts (``<|channel|>``, ``<|start|>``); it runs
  to the format's ``header_end`` marker and the format's ``classify_header`` names the kind.
- ``end``: whatever message is open ends (harmony's ``<|end|>``, ``<|call|>``).
- ``turn``: the turn is over (``<|im_end|>``, ``<|return|>``): nothing after it is this reply.
- ``drop``: a marker that carries nothing for the reader (``<|CHATBOT_TOKEN|>``).
- ``switch``: only in the ``auto`` format: the text turns out to be another format's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from reflectchat.core.errors import UsageError

SectionKind = Literal["thinking", "reflection", "output", "text", "tool_call", "note"]
MarkerAction = Literal["open", "close", "header", "end", "turn", "drop", "switch"]

# Kinds whose text is reasoning: while one is open, the thinking is not finished.
REASONING_KINDS: frozenset[str] = frozenset({"thinking", "reflection"})
# Kinds shown verbatim: inside them only their own closer (and turn/end markers) is structure,
# so an answer or a tool call's arguments can quote any other marker.
VERBATIM_KINDS: frozenset[str] = frozenset({"output", "tool_call"})


@dataclass(frozen=True, slots=True)
class Marker:
    text: str
    action: MarkerAction
    kind: SectionKind | None = None
    # ``open`` of an answer kind: untagged text before it was thinking (Apriel's
    # `[BEGIN FINAL RESPONSE]` after a pre-filled "Here are my reasoning steps:").
    after_thinking: bool = False
    at_start: bool = False  # only at the very start of the reply (stripped harmony's "analysis")
    target: str = ""  # for ``switch``: the format the text is in


HeaderKind = SectionKind | Literal["turn"] | None


@dataclass(frozen=True)
class ReasoningFormat:
    name: str
    title: str
    models: str  # who writes it, for `reflectchat formats`
    markers: tuple[Marker, ...]
    case_insensitive: bool = False  # XML-ish tags: `<Thought>` is `<thought>`
    # Reasoning kinds that may nest inside a thinking section (Reflection's reflections,
    # Seed-OSS's budget notes).
    nested: frozenset[str] = frozenset()
    special_tokens: bool = False  # markers are single special tokens in the model's vocabulary
    header_end: str = ""
    classify_header: Callable[[str], HeaderKind] | None = None
    # What the chat template may have written already (`<think>`): a prompt ending with one of
    # these starts the reply inside thinking.
    prefill: tuple[str, ...] = ()
    # Detection (detect.py): substrings of the chat template, tokens of the vocabulary, and a
    # regular expression for model names (GGUF general.name, file or served model name).
    template_hints: tuple[str, ...] = ()
    vocab_hints: tuple[str, ...] = ()
    name_pattern: str = ""
    # Markers whose appearance in a text shows it is in this format (view, `auto`).
    sniff: tuple[str, ...] = ()
    example: str = ""
    # Sequences that end the thinking and start the answer, for closing it early.
    close_thinking: str = ""
    lookup: dict[str, Marker] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for marker in self.markers:
            self.lookup.setdefault(self.fold(marker.text), marker)

    def fold(self, text: str) -> str:
        """Case-folded for matching: ASCII letters only, so the Kelvin sign stays no 'k'."""
        return text.translate(_ASCII_LOWER) if self.case_insensitive else text

    def marker(self, text: str) -> Marker | None:
        return self.lookup.get(self.fold(text))


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


class UnknownFormatError(UsageError):
    """`--format NAME` names no known format."""


def tags(names: dict[str, SectionKind], *, closers: bool = True) -> tuple[Marker, ...]:
    """`<name>`/`</name>` pairs for XML-ish tag families."""
    out: list[Marker] = []
    for name, kind in names.items():
        out.append(Marker(f"<{name}>", "open", kind))
        if closers:
            out.append(Marker(f"</{name}>", "close", kind))
    return tuple(out)


def turn_markers(*texts: str) -> tuple[Marker, ...]:
    return tuple(Marker(t, "turn") for t in texts)


# End-of-turn and next-turn markers of the common chat templates (Llama 3, ChatML, Kimi, Gemma,
# DeepSeek, Command, GLM/Phi). Leaked into a reply, they end it; none is prose anyone writes.
COMMON_TURN_ENDS: tuple[str, ...] = (
    "<|eot_id|>",
    "<|start_header_id|>",
    "<|end_of_text|>",
    "<|endoftext|>",
    "<|im_end|>",
    "<|im_start|>",
    "<|im_assistant|>",
    "<|im_user|>",
    "<|im_system|>",
    "<end_of_turn>",
    "<start_of_turn>",
    "<｜end▁of▁sentence｜>",
    "<｜User｜>",
    "<|END_OF_TURN_TOKEN|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
)
