"""`reflectchat formats`: every reasoning format reflectchat knows (core/reply/format_catalog.py),
who writes it, what it looks like, and how it is recognised: the chat template, special tokens
in the vocabulary, the model's name, and markers in the text (`view`)."""

from __future__ import annotations

import argparse
from typing import Any

from reflectchat.cli.tables import Column, print_table
from reflectchat.core.chat.export import to_json
from reflectchat.core.reply.format_catalog import FORMATS
from reflectchat.core.reply.formats import ReasoningFormat


def recognition(fmt: ReasoningFormat) -> dict[str, Any]:
    """How detection (core/reply/detect.py) finds the format, as data."""
    starts = [m.text for m in fmt.markers if m.at_start and m.action == "open"]
    then = [m.text for m in fmt.markers if m.after_thinking and m.action == "open"]
    return {
        "template_hints": list(fmt.template_hints),
        "vocab_tokens": list(fmt.vocab_hints),
        "name_pattern": fmt.name_pattern,
        "sniff_markers": list(fmt.sniff),
        # A format with no marker of its own (harmony with its tokens stripped) is told by how
        # the text starts and what follows.
        "text_shape": (
            f"starts with {starts[0]!r} and contains {then[0]!r}"
            if not fmt.sniff and starts and then
            else ""
        ),
    }


def describe(fmt: ReasoningFormat) -> str:
    """`recognition` in words, for the table."""
    if fmt.name == "auto":
        return "the default when nothing names a format; switches to another format on its marker"
    how = recognition(fmt)
    parts = []
    if how["template_hints"]:
        parts.append("chat template has " + ", ".join(how["template_hints"]))
    if how["vocab_tokens"]:
        parts.append("tokens " + ", ".join(how["vocab_tokens"]))
    if how["name_pattern"]:
        parts.append(f"name matches /{how['name_pattern']}/")
    if how["sniff_markers"]:
        parts.append("text has " + ", ".join(how["sniff_markers"]))
    if how["text_shape"]:
        parts.append("text " + how["text_shape"])
    return "; ".join(parts) or "only with --format " + fmt.name


def run_formats(args: argparse.Namespace) -> int:
    if args.json:
        print(
            to_json(
                {
                    "formats": [
                        {
                            "name": fmt.name,
                            "title": fmt.title,
                            "models": fmt.models,
                            "example": fmt.example,
                            "special_tokens": fmt.special_tokens,
                            "prefill": list(fmt.prefill),
                            "markers": [
                                {"text": m.text, "action": m.action, "kind": m.kind}
                                | ({"target": m.target} if m.target else {})
                                for m in fmt.markers
                                if m.action != "turn"
                            ],
                            "turn_markers": [m.text for m in fmt.markers if m.action == "turn"],
                            "recognised_by": recognition(fmt),
                        }
                        for fmt in FORMATS
                    ]
                }
            )
        )
        return 0
    print_table(
        [
            Column("name"),  # what --format takes; the title is in --json
            Column("models", wrap=True, overflow="fold"),
            Column("looks like", wrap=True, overflow="fold"),
            Column("recognised by", wrap=True, overflow="fold"),
        ],
        [[fmt.name, fmt.models, fmt.example, describe(fmt)] for fmt in FORMATS],
    )
    return 0
