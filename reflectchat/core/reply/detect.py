"""Which reasoning format a reply is in: from a GGUF (chat template, vocabulary, name), from a
served model's name, or by sniffing the text. Every answer says how it was recognised, so
`reflectchat formats`, `models info` and `--debug` can show it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from reflectchat.core.reply.format_catalog import (
    AUTO,
    BY_NAME,
    FORMATS,
    HARMONY_STRIPPED,
    REFLECTION,
    THINK,
)
from reflectchat.core.reply.formats import ReasoningFormat


@dataclass(frozen=True)
class Detection:
    format: ReasoningFormat
    reason: str  # for people: "chat template contains <|channel|>"


# Most specific first: a harmony template also mentions <think> nowhere, but a Reflection one
# might quote <think>; the generic tag families come last.
_GENERIC = (AUTO.name, HARMONY_STRIPPED.name, REFLECTION.name, THINK.name)
_ORDER: tuple[ReasoningFormat, ...] = (
    *(f for f in FORMATS if f.name not in _GENERIC),
    REFLECTION,
    THINK,
)


def format_for_name(name: str | None) -> Detection | None:
    """From a model's name (GGUF general.name, file name, served model id)."""
    if not name:
        return None
    lowered = name.lower()
    for fmt in _ORDER:
        if fmt.name_pattern and re.search(fmt.name_pattern, lowered):
            return Detection(fmt, f"model name {name!r} matches {fmt.title}")
    return None


def detect_from_model(
    *,
    template: str | None = None,
    special_tokens: Iterable[str] = (),
    names: Iterable[str | None] = (),
    catalog_format: str | None = None,
) -> Detection:
    """For a local model: the catalog's word first, then the chat template, then special
    tokens in the vocabulary, then the names; `auto` when nothing says."""
    if catalog_format and catalog_format in BY_NAME:
        return Detection(BY_NAME[catalog_format], "the catalog entry says so")
    if template:
        for fmt in _ORDER:
            for hint in fmt.template_hints:
                if hint in template:
                    return Detection(fmt, f"chat template contains {hint}")
    vocab = set(special_tokens)
    if vocab:
        for fmt in _ORDER:
            for hint in fmt.vocab_hints:
                if hint in vocab:
                    return Detection(fmt, f"special token {hint} in the vocabulary")
    for name in names:
        found = format_for_name(name)
        if found is not None:
            return found
    return Detection(AUTO, "nothing in the model names a format: any tags, detected as they come")


def sniff_format(text: str) -> Detection:
    """From a whole reply (`view`): the first format whose distinctive markers appear."""
    head = text.lstrip()
    if head.startswith("analysis") and "assistantfinal" in text:
        return Detection(HARMONY_STRIPPED, "starts with 'analysis' and has 'assistantfinal'")
    for fmt in _ORDER:
        for hint in fmt.sniff:
            if hint in text:
                return Detection(fmt, f"the text contains {hint}")
    return Detection(AUTO, "no format-specific marker in the text")


def choose(
    override: str | None, detected: Detection | None, *, fallback: str = "auto"
) -> Detection:
    """`--format NAME` wins over anything detected."""
    if override:
        from reflectchat.core.reply.sections import resolve_format

        return Detection(resolve_format(override), "--format")
    return detected or Detection(BY_NAME[fallback], "default")


def prefilled_opener(prompt: str, fmt: ReasoningFormat) -> str:
    """The thinking opener a chat template wrote at the end of the prompt (DeepSeek-R1's
    `<think>\\n`), so the reply starts inside thinking; "" if none."""
    tail = prompt.rstrip()
    for opener in fmt.prefill or AUTO.prefill:
        if fmt.fold(tail[-len(opener) :]) == fmt.fold(opener):
            return opener
    return ""


def vocabulary_hints() -> tuple[str, ...]:
    """Every token text some format's detection looks for in a vocabulary."""
    return tuple(dict.fromkeys(h for fmt in FORMATS for h in fmt.vocab_hints))
