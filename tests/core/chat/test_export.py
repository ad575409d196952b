"""A stored conversation as JSON (exact text, terminal-safe) and as Markdown (reasoning folded)."""

from __future__ import annotations

import json
import time

from reflectchat.core.chat.export import local_time, to_dict, to_json, to_markdown
from reflectchat.core.chat.store import Conversation, ConversationSummary, StoredMessage

REPLY = "<thinking>\x1b]52;c;eA==\x07.</thinking><reflection>Fix.</reflection><output>3</output>"
T = 1_700_000_000.0


def message(seq: int, role: str, content: str, finish_reason: str | None = None) -> StoredMessage:
    return StoredMessage(
        id=seq,
        conversation_id=1,
        seq=seq,
        role=role,
        content=content,
        sections=None,
        answer=None,
        model="m" if role == "assistant" else None,
        params={"temperature": 0.5} if role == "assistant" else None,
        finish_reason=finish_reason,
        stats={"completion_tokens": 3} if role == "assistant" else None,
        created_at=T + seq,
    )


CONVERSATION = Conversation(
    summary=ConversationSummary(
        id=1, title="Title \u202eabc", model="m", created_at=T, updated_at=T + 2, turns=1
    ),
    system_prompt="Be brief.",
    messages=[message(1, "user", " How many? "), message(2, "assistant", REPLY, "length")],
)


def test_to_dict_keeps_the_text_and_splits_the_reply() -> None:
    data = to_dict(CONVERSATION)
    assert {k: data[k] for k in ("id", "title", "model", "turns", "system_prompt")} == {
        "id": 1,
        "title": "Title \u202eabc",
        "model": "m",
        "turns": 1,
        "system_prompt": "Be brief.",
    }
    user, reply = data["messages"]
    assert user == {"role": "user", "content": " How many? ", "created_at": T + 1}
    assert reply["content"] == REPLY
    assert reply["answer"] == "3"
    assert reply["reflections"] == ["Fix."]
    assert reply["finish_reason"] == "length"
    assert reply["params"] == {"temperature": 0.5} and reply["stats"] == {"completion_tokens": 3}


def test_to_json_escapes_what_a_terminal_acts_on_and_parses_back() -> None:
    data = {"text": "a\x1b[2J b\x9b31m c\u202e d\u2028 e\udc9b é"}
    dumped = to_json(data)
    for raw in ("\x1b", "\x9b", "\u202e", "\u2028", "\udc9b"):
        assert raw not in dumped
    assert "\\u009b" in dumped and "\\u202e" in dumped and "é" in dumped
    assert json.loads(dumped) == data
    assert json.loads(to_json(to_dict(CONVERSATION)))["messages"][1]["content"] == REPLY


def test_to_markdown_folds_reasoning_and_shows_controls_visibly() -> None:
    md = to_markdown(CONVERSATION)
    assert md.startswith("# Title <U+202E>abc\n")
    assert f"*m · {local_time(T)}*" in md
    assert "<details><summary>System prompt</summary>\n\nBe brief." in md
    assert "## You\n\nHow many?\n" in md
    assert "<details><summary>Thinking</summary>\n\n\u241b]52;c;eA==\u2407." in md
    assert "<details><summary>Reflection</summary>\n\nFix." in md
    assert "3\n" in md and "*(length)*" in md
    assert "\x1b" not in md and "\u202e" not in md
    folded = to_markdown(CONVERSATION, details=False)
    assert "Thinking" not in folded and "Reflection" not in folded and "## Assistant" in folded


def test_local_time_is_to_the_minute() -> None:
    assert local_time(T) == time.strftime("%Y-%m-%d %H:%M", time.localtime(T))
