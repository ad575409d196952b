"""The footer's words: what each front end shows under a reply."""

from __future__ import annotations

from reflectchat.core.engine.base import GenerationStats
from reflectchat.core.reply.footer import footer_parts, footer_text, stop_reason_text
from reflectchat.core.reply.stream import result_from_text


def test_footer_words_and_roles() -> None:
    result = result_from_text("Six.", "m\x1b]0;x\x07odel")
    result.stats = GenerationStats(completion_tokens=12, tokens_per_second=3.456, total_s=2.5)
    result.finish_reason = "length"
    assert footer_parts(result) == [
        ("model", "model"),
        ("12 tokens", "tokens"),
        ("3.5 tok/s", "speed"),
        ("2.50 s", "time"),
        ("stopped at the token limit", "reason"),
    ]
    words = "model · 12 tokens · 3.5 tok/s · 2.50 s · stopped at the token limit"
    assert footer_text(result) == words


def test_zero_stats_and_no_model_leave_the_reason() -> None:
    result = result_from_text("Six.", "")
    assert footer_text(result) == result.finish_reason
    assert stop_reason_text("cancelled") == "cancelled"
    assert stop_reason_text("stop") == "stop"
