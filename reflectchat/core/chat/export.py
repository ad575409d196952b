"""A stored conversation as a file: JSON (the exact text) or Markdown (reasoning folded).

Both are written where a terminal may show them (`history export` on stdout, the chat app's
`/export` file read with `cat`), so neither may carry anything a terminal would act on.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from reflectchat.core.chat.attachments import attachment_block
from reflectchat.core.chat.store import Conversation, ConversationSummary
from reflectchat.core.chat.store_rows import parsed_reply
from reflectchat.core.reply.sanitize import escape_controls

# json escapes C0 controls itself. The rest of what a terminal could act on is escaped by
# hand: DEL and C1 controls (8-bit CSI/OSC), bidi embeddings/overrides/isolates, the Unicode
# line/paragraph separators, and lone surrogates (raw bytes under surrogateescape). They can
# only occur inside JSON strings, where \uXXXX means the same character: the data is unchanged.
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def to_json(data: dict[str, Any]) -> str:
    """One line of JSON that is safe to print to a terminal and parses back to `data`."""
    text = json.dumps(data, ensure_ascii=False)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def local_time(ts: float) -> str:
    """A timestamp as listings and exports show it: local time to the minute."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def summary_dict(s: ConversationSummary) -> dict[str, Any]:
    """A conversation's listing fields (`history list --json`, the head of an export)."""
    return {
        "id": s.id,
        "title": s.title,
        "model": s.model,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "turns": s.turns,
    }


def to_dict(conversation: Conversation) -> dict[str, Any]:
    """Everything stored, with each reply also split into answer, thinking and reflections."""
    messages = []
    for m in conversation.messages:
        item: dict[str, Any] = {"role": m.role, "content": m.content, "created_at": m.created_at}
        if m.attachments:
            item["attachments"] = [a.to_dict() for a in m.attachments]
        if m.role == "assistant":
            parsed = parsed_reply(m).to_dict()
            item.update(
                answer=parsed["answer"],
                thinking=parsed["thinking"],
                reflections=parsed["reflections"],
                tool_calls=parsed["tool_calls"],
                sections=parsed["sections"],
                format=parsed["format"],
                model=m.model,
                params=m.params,
                finish_reason=m.finish_reason,
                stats=m.stats,
            )
        messages.append(item)
    return {
        **summary_dict(conversation.summary),
        "system_prompt": conversation.system_prompt,
        "messages": messages,
    }


def to_markdown(conversation: Conversation, *, details: bool = True) -> str:
    """Markdown with thinking and reflections in <details> blocks, which GitHub and most
    viewers fold. Stored text is quoted as it was, except that control characters (escape
    sequences, bidi overrides) are written visibly (␛, <U+202E>): the file is read with `cat`
    and `history show` pipes it, so nothing in it may act on a terminal."""
    s = conversation.summary
    out = [f"# {s.title}\n", f"*{s.model or 'unknown model'} · {local_time(s.created_at)}*\n"]
    if conversation.system_prompt:
        out.append(
            f"<details><summary>System prompt</summary>\n\n{conversation.system_prompt}"
            "\n\n</details>\n"
        )
    for m in conversation.messages:
        if m.role == "user":
            out.append(f"## You\n\n{m.content.strip()}\n")
            for a in m.attachments:  # folded, as the chat app shows them
                out.append(
                    f"<details><summary>Attached: {a.name}</summary>\n\n"
                    f"{attachment_block(a)}\n\n</details>\n"
                )
            continue
        parsed = parsed_reply(m)
        out.append("## Assistant\n")
        if details:
            for section in parsed.sections:
                if section.kind in _LABELS and section.text.strip():
                    label = _LABELS[section.kind]
                    if section.label:
                        label += f" → {section.label}"
                    out.append(
                        f"<details><summary>{label}</summary>\n\n{section.text.strip()}"
                        "\n\n</details>\n"
                    )
        if parsed.answer:
            out.append(parsed.answer + "\n")
        if m.finish_reason and m.finish_reason != "stop":
            out.append(f"*({m.finish_reason})*\n")
        stats = m.stats or {}
        if stats.get("thinking_tokens"):
            out.append(
                f"*thinking {stats['thinking_tokens']:,} tokens · answer "
                f"{stats.get('answer_tokens', 0):,} tokens*\n"
            )
    return escape_controls("\n".join(out))


_LABELS = {
    "thinking": "Thinking",
    "reflection": "Reflection",
    "tool_call": "Tool call",
    "note": "Budget note",
}
