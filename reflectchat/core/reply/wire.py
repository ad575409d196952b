"""What people paste into `reflectchat view`, decoded: raw reply text, an OpenAI-compatible
chat-completion response (JSON), a captured server-sent-event stream (`data: {…}` lines), or a
list of stream chunks (a JSON array, or one JSON object a line as Ollama streams).

The result is the reply as the server sent it: `pieces` in order, each marked reasoning (a
server's `reasoning_content` / `reasoning` / `thinking`) or content. Reasoning goes to
`SectionParser.feed_reasoning` as it is, never re-wrapped in tags, so a `</think>` inside it is
just text; content goes through the format parser. Pure decoding: nothing here raises on bad
input; a line of a stream that cannot be read is skipped and counted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from reflectchat.core.reply.detect import Detection, choose, format_for_name, sniff_format
from reflectchat.core.reply.sections import ParsedReply, SectionParser, reply_from_sections

PastedKind = Literal["raw", "json", "sse", "jsonl"]

# Fields a server puts reasoning in: vLLM/DeepSeek/llama-server `reasoning_content`,
# OpenRouter/TensorRT-LLM/LM Studio `reasoning`, Ollama's native `thinking`.
_REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking")
# SSE field lines that carry no data (`event: message`, `id: 3`, `retry: 1000`).
_SSE_FIELD = re.compile(r"(?:event|id|retry)\s*:")


@dataclass(frozen=True)
class ToolCall:
    """A tool call the server parsed out itself (`message.tool_calls`)."""

    name: str
    arguments: str


@dataclass
class Pasted:
    kind: PastedKind
    pieces: list[tuple[bool, str]]  # (is_reasoning, text), in the order the server sent them
    model: str | None = None
    finish_reason: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    error: str | None = None  # an error the server reported (`{"error": {"message": …}}`)
    skipped: int = 0  # lines of a stream that were not events we could read

    @property
    def content(self) -> str:
        """The content the server sent, without its reasoning (what sniffing looks at)."""
        return "".join(text for reasoning, text in self.pieces if not reasoning)


def decode_pasted(text: str) -> Pasted:
    """Whatever was pasted, decoded; anything that is not a response or a stream is raw text."""
    body = text.lstrip("\ufeff \t\r\n")
    if body[:1] in ("{", "["):
        whole = _json(body)
        if whole is not _INVALID:
            found = _from_document(whole)
            if found is not None:
                return found
    stream = _from_sse(text)
    if stream is not None:
        return stream
    lines = _from_json_lines(text)
    if lines is not None:
        return lines
    return Pasted("raw", [(False, text)] if text else [])


def choose_format(pasted: Pasted, override: str | None = None) -> Detection:
    """`--format NAME`, else the served model's name, else sniffing the content."""
    if override:
        return choose(override, None)
    by_name = format_for_name(pasted.model)
    if by_name is not None:
        return by_name
    return sniff_format(pasted.content)


def parse_pasted(pasted: Pasted, fmt: Detection | str | None = None) -> ParsedReply:
    """The pasted reply split into sections: reasoning pieces as thinking text, content through
    the format's parser, then the server's own tool calls as tool-call sections."""
    chosen = fmt.format if isinstance(fmt, Detection) else fmt
    parser = SectionParser(fmt=chosen)
    for reasoning, piece in pasted.pieces:
        if reasoning:
            parser.feed_reasoning(piece)
        else:
            parser.feed(piece)
    parser.finish()
    reply = parser.reply()
    # Reasoning the server sent has no closer: when it comes last (a tool call, or no answer)
    # the server's finish reason says whether the thinking was over or cut off.
    last_was_reasoning = bool(pasted.pieces) and pasted.pieces[-1][0]
    incomplete = reply.thinking_incomplete and not (
        last_was_reasoning and pasted.finish_reason in _FINISHED
    )
    if not pasted.tool_calls and incomplete == reply.thinking_incomplete:
        return reply
    items: list[dict[str, Any]] = [
        {"kind": s.kind, "text": s.text, "label": s.label} for s in reply.sections
    ]
    items += [
        {"kind": "tool_call", "text": c.arguments, "label": c.name} for c in pasted.tool_calls
    ]
    return reply_from_sections(items, reply.format, thinking_incomplete=incomplete)


# Finish reasons of a reply that ended on its own (not `length`, not cut off or cancelled).
_FINISHED = frozenset({"stop", "tool_calls", "function_call", "eos", "end_turn"})


# -- decoding ----------------------------------------------------------------------------------

_INVALID = object()


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # also a nesting too deep to decode
        return _INVALID


class _Collector:
    """Pieces, model, finish reason and tool calls from responses and chunks, in order."""

    def __init__(self) -> None:
        self.pieces: list[tuple[bool, str]] = []
        self.model: str | None = None
        self.finish_reason: str | None = None
        self.error: str | None = None
        self.calls: dict[int, list[str]] = {}  # index -> [name, arguments so far]

    def add(self, reasoning: bool, text: object) -> None:
        if isinstance(text, list):  # content parts: [{"type": "text", "text": "…"}]
            text = "".join(_part_text(p) for p in text)
        if not isinstance(text, str) or not text:
            return
        if self.pieces and self.pieces[-1][0] == reasoning:
            self.pieces[-1] = (reasoning, self.pieces[-1][1] + text)
        else:
            self.pieces.append((reasoning, text))

    def take(self, obj: object) -> bool:
        """One response or chunk; False when it is neither."""
        if not isinstance(obj, dict) or not _is_reply_object(obj):
            return False
        if self.model is None and isinstance(obj.get("model"), str) and obj["model"]:
            self.model = obj["model"]
        error = obj.get("error")
        if error:
            self.error = _error_text(error)
            return True
        choices = obj.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, dict) and choice.get("index", 0) in (0, None):
                    self._choice(choice)
                    break
            return True  # a usage-only chunk has `choices: []`
        message = obj.get("message")  # Ollama's /api/chat, else /api/generate
        self._message(message if isinstance(message, dict) else obj, text_field="response")
        reason = obj.get("done_reason")
        if isinstance(reason, str) and reason:
            self.finish_reason = reason
        return True

    def _choice(self, choice: dict[str, Any]) -> None:
        for key in ("message", "delta"):
            part = choice.get(key)
            if isinstance(part, dict):
                self._message(part)
        if isinstance(choice.get("text"), str):  # the legacy completions API
            self.add(False, choice["text"])
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self.finish_reason = reason

    def _message(self, message: dict[str, Any], text_field: str = "content") -> None:
        for name in _REASONING_FIELDS:
            if message.get(name):
                self.add(True, message[name])
                break
        else:  # OpenRouter's structured reasoning
            details = message.get("reasoning_details")
            if isinstance(details, list):
                self.add(True, "".join(_part_text(d) for d in details))
        self.add(False, message.get("content", message.get(text_field)))
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            for position, call in enumerate(calls):
                if isinstance(call, dict):
                    self._tool_call(position, call)

    def _tool_call(self, position: int, call: dict[str, Any]) -> None:
        """A whole call (a response) or a piece of one (a chunk: name first, then arguments in
        pieces, all under one `index`)."""
        index = call.get("index", position)
        if not isinstance(index, int):
            index = position
        function = call.get("function")
        if not isinstance(function, dict):
            return
        entry = self.calls.setdefault(index, ["", ""])
        if isinstance(function.get("name"), str):
            entry[0] += function["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            entry[1] += arguments
        elif arguments is not None:  # Ollama sends the arguments as an object
            entry[1] += json.dumps(arguments, ensure_ascii=False)

    def result(self, kind: PastedKind, skipped: int = 0) -> Pasted:
        return Pasted(
            kind,
            self.pieces,
            model=self.model,
            finish_reason=self.finish_reason,
            # A name is a label on one line; the arguments are shown as they came.
            tool_calls=[
                ToolCall(" ".join(n.split()), a) for _, (n, a) in sorted(self.calls.items())
            ],
            error=self.error,
            skipped=skipped,
        )


def _part_text(part: object) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, dict):
        for key in ("text", "content", "summary"):
            if isinstance(part.get(key), str):
                return str(part[key])
    return ""


def _error_text(error: object) -> str:
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, str) and message:
            return " ".join(message.split())
    if isinstance(error, str) and error:
        return " ".join(error.split())
    return "the server reported an error"


def _is_reply_object(obj: object) -> bool:
    """A chat-completion response or chunk, a server's error, or an Ollama message; not any
    JSON object a model might answer with (`{"choices": ["a", "b"]}` is a quiz)."""
    if not isinstance(obj, dict):
        return False
    choices = obj.get("choices")
    if isinstance(choices, list):
        if not choices:  # a usage-only chunk
            return "usage" in obj or "id" in obj
        return any(
            isinstance(c, dict) and any(k in c for k in ("message", "delta", "text"))
            for c in choices
        )
    error = obj.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return True
    if isinstance(error, str) and len(obj) <= 2:  # Ollama: {"error": "model not found"}
        return True
    if "done" in obj and "model" in obj:  # Ollama's /api/chat and /api/generate
        message = obj.get("message")
        return isinstance(message, dict) or isinstance(obj.get("response"), str)
    return False


def _from_document(whole: object) -> Pasted | None:
    """A JSON response, one chunk, or a JSON array of chunks."""
    if isinstance(whole, dict):
        if not _is_reply_object(whole):
            return None  # a reply that is a JSON object itself: raw text
        collector = _Collector()
        collector.take(whole)
        return collector.result("json")
    if isinstance(whole, list) and whole and all(_is_reply_object(x) for x in whole):
        collector = _Collector()
        for item in whole:
            collector.take(item)
        return collector.result("json")
    return None


def _from_sse(text: str) -> Pasted | None:
    """`data: {…}` events; None when the text is not mostly such a stream (a reply that
    quotes one `data:` line is still a reply)."""
    collector = _Collector()
    events = 0
    other = 0
    lines = _lines(text)
    if lines and lines[0].startswith("HTTP/"):  # `curl -i`: a status line and headers first
        while lines and lines[0].strip():
            lines.pop(0)
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith(":") or _SSE_FIELD.match(stripped):
            continue  # blank separators, comments, other SSE fields
        if not stripped.startswith("data:"):
            other += 1
            continue
        payload = stripped[5:].strip()
        if payload == "[DONE]":
            events += 1
            continue
        if collector.take(_json(payload)):
            events += 1
        else:
            other += 1
    if events == 0 or other > events:
        return None
    return collector.result("sse", other)


def _from_json_lines(text: str) -> Pasted | None:
    """One chunk per line (Ollama's stream, or SSE with the `data: ` prefixes cut off)."""
    collector = _Collector()
    events = 0
    other = 0
    for line in _lines(text):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped[:1] == "{" and collector.take(_json(stripped)):
            events += 1
        else:
            other += 1
    if events < 2 or other > events:
        return None
    return collector.result("jsonl", other)


def _lines(text: str) -> list[str]:
    # Only real line breaks: a JSON payload never holds a raw one, but splitlines() would also
    # split at U+2028 and friends, which JSON strings may carry unescaped.
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
