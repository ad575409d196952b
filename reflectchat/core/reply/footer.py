"""The one line under a reply, in words: model, tokens, speed, time, why it stopped.

Each front end styles it its own way (the CLI as Rich `Text`, the chat app as Textual
`Content`); the words are the same in both, and model-controlled text in them is stripped of
control sequences here.
"""

from __future__ import annotations

from typing import Literal

from reflectchat.core.reply.sanitize import strip_controls
from reflectchat.core.reply.stream import ReplyResult

FooterRole = Literal["model", "tokens", "thinking", "speed", "time", "reason"]
SEPARATOR = " · "

# Finish reasons that read badly as they are; anything else is shown verbatim.
_STOP_WORDS = {"length": "stopped at the token limit", "cancelled": "cancelled"}


def stop_reason_text(finish_reason: str) -> str:
    """Why a reply ended, as words (`length` → "stopped at the token limit")."""
    return _STOP_WORDS.get(finish_reason, finish_reason)


def footer_parts(result: ReplyResult) -> list[tuple[str, FooterRole]]:
    """The footer's parts with what each one is, in order; zero stats are left out."""
    s = result.stats
    parts: list[tuple[str, FooterRole]] = [(result.model, "model")] if result.model else []
    if s.completion_tokens:
        parts.append((f"{s.completion_tokens} tokens", "tokens"))
    if s.thinking_tokens:
        cut = {"budget": ", cut by the budget", "user": ", cut short"}.get(
            result.thinking_cut or "", ""
        )
        parts.append((f"thinking {s.thinking_tokens}{cut}", "thinking"))
    if s.tokens_per_second:
        parts.append((f"{s.tokens_per_second:.1f} tok/s", "speed"))
    if s.total_s:
        parts.append((f"{s.total_s:.2f} s", "time"))
    parts.append((stop_reason_text(result.finish_reason), "reason"))
    return [(strip_controls(text), role) for text, role in parts]


def footer_text(result: ReplyResult) -> str:
    """The footer as one plain line."""
    return SEPARATOR.join(text for text, _ in footer_parts(result))
