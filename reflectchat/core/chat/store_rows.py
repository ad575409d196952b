"""What the history holds, as Python values: the stored records, and the decoding of their
cells, where a cell that cannot be read is named as damaged instead of failing the read."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reflectchat.core.chat.attachments import Attachment
from reflectchat.core.reply.formats import UnknownFormatError
from reflectchat.core.reply.sections import ParsedReply, parse, reply_from_sections


@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: int
    seq: int
    role: str  # "user" | "assistant"
    content: str  # raw text exactly as the model wrote it (tags included) / the user's words
    sections: list[dict] | None  # [{"kind", "text"}] for assistant messages
    answer: str | None
    model: str | None
    params: dict | None  # sampling params used
    finish_reason: str | None  # "stop" | "length" | "cancelled" | "error"
    stats: dict | None
    created_at: float  # unix time
    turn: int = 0  # the user message's turn; its replies share it (0: replies before any)
    # Files and piped text sent with a user message: [{"name", "text"}] (schema v3).
    attachments: tuple[Attachment, ...] = ()
    # Fields whose stored value could not be read (left None/empty rather than failing the
    # whole conversation); `content` is what a renderer falls back on.
    damaged: tuple[str, ...] = ()


def parsed_reply(message: StoredMessage) -> ParsedReply:
    """An assistant message split as it was shown: from its stored sections and format (so a
    server's reasoning and every format render the same later), else parsed from the raw text
    in the format it was recorded with."""
    params = message.params or {}
    fmt = params.get("format") if isinstance(params.get("format"), str) else None
    if message.sections:
        return reply_from_sections(
            message.sections,
            fmt or "auto",
            thinking_incomplete=bool(params.get("thinking_incomplete")),
        )
    try:
        return parse(message.content, fmt=fmt)
    except UnknownFormatError:  # written by a newer reflectchat that knows more formats
        return parse(message.content)


@dataclass(frozen=True)
class ConversationSummary:
    id: int
    title: str
    model: str | None
    created_at: float
    updated_at: float
    turns: int  # number of user messages


@dataclass(frozen=True)
class Conversation:
    summary: ConversationSummary
    system_prompt: str | None
    messages: list[StoredMessage]


def to_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def decode_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


_MISSING = object()


def _json_cell(value: Any, kind: type, *, any_items: bool = False) -> Any:
    """A JSON column's value, `_MISSING` when it is not valid JSON of the expected kind."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = decode_text(value)
    if not isinstance(value, str):
        return _MISSING
    try:
        decoded: Any = json.loads(value)
    except (ValueError, RecursionError):
        return _MISSING
    if kind is list and any_items:
        good = isinstance(decoded, list)
    elif kind is list:  # sections: a list of {"kind": str, ...}
        good = isinstance(decoded, list) and all(
            isinstance(item, dict) and isinstance(item.get("kind"), str) for item in decoded
        )
    else:
        good = isinstance(decoded, kind)
    return decoded if good else _MISSING


def _text_cell(value: Any) -> Any:  # str, None or _MISSING
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return decode_text(value)
    if isinstance(value, int | float):
        return str(value)
    return _MISSING


def message_from_row(row: Sequence[Any]) -> StoredMessage:
    """One message row; a cell that cannot be read (another tool's edit, a bad byte on disk)
    becomes None and is named in `damaged`, so the rest of the conversation still shows."""
    (
        mid, cid, seq, role, content, sections, answer, model, params, finish, stats, created,
        turn,
    ) = row[:13]  # fmt: skip
    damaged: list[str] = []

    def cell(name: str, value: Any) -> Any:
        if value is _MISSING:
            damaged.append(name)
            return None
        return value

    text = cell("content", _text_cell(content))
    try:
        when = float(created)
    except (TypeError, ValueError):
        when = cell("created_at", _MISSING) or 0.0
    return StoredMessage(
        id=int(mid),
        conversation_id=int(cid),
        seq=int(seq),
        role=role,
        content=text if text is not None else "",
        sections=cell("sections", _json_cell(sections, list)),
        answer=cell("answer", _text_cell(answer)),
        model=cell("model", _text_cell(model)),
        params=cell("params", _json_cell(params, dict)),
        finish_reason=cell("finish_reason", _text_cell(finish)),
        stats=cell("stats", _json_cell(stats, dict)),
        created_at=when,
        turn=int(turn) if isinstance(turn, int) else 0,
        attachments=_attachments(cell("attachments", _json_cell(row[13], list, any_items=True)))
        if len(row) > 13
        else (),
        damaged=tuple(damaged),
    )


def _attachments(records: list | None) -> tuple[Attachment, ...]:
    found = (Attachment.from_dict(r) for r in records or ())
    return tuple(a for a in found if a is not None)
