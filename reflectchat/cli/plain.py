"""Plain-text output for pipes: no Rich, no styling, nothing to import but the core."""

from __future__ import annotations

from typing import TextIO

from reflectchat.core.reply.sanitize import strip_controls
from reflectchat.core.reply.sections import ParsedReply


def write_plain(stream: TextIO, parsed: ParsedReply, *, show_reasoning: bool) -> None:
    """Piped output: plain text, no styling. Only the answer unless reasoning is asked for."""
    if show_reasoning:
        for section in parsed.sections:
            if section.kind in ("thinking", "reflection") and section.text.strip():
                label = "Thinking" if section.kind == "thinking" else "Reflection"
                stream.write(f"[{label}]\n{strip_controls(section.text.strip())}\n\n")
        if parsed.thinking_incomplete:
            stream.write("[Thinking incomplete]\n\n")
        if parsed.thinking or parsed.reflections:
            stream.write("[Answer]\n")
    answer = strip_controls(parsed.answer)
    stream.write(answer + ("\n" if answer else ""))
    stream.flush()
