"""Decoding what people paste into `view` (core/reply/wire.py): raw text, chat-completion JSON,
SSE streams, chunk lists and JSON lines; reasoning kept apart from content, never re-tagged;
malformed input skipped and counted, never raised."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reflectchat.core.errors import UsageError
from reflectchat.core.reply.sections import parse
from reflectchat.core.reply.wire import Pasted, choose_format, decode_pasted, parse_pasted
from tests.support.paths import REPO, SAMPLES

WIRE = REPO / "tests" / "data" / "wire"


def read(name: str) -> str:
    return (WIRE / name).read_bytes().decode("utf-8")


def sse(*chunks: dict, done: bool = True) -> str:
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks)
    return body + ("data: [DONE]\n\n" if done else "")


def delta(model: str = "m", finish: str | None = None, **fields: object) -> dict:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": fields, "finish_reason": finish}],
    }


# -- raw text ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "<think>hm</think>4",
        "",
        '{"type": "complex", "agentId": null}',  # a reply that is JSON itself
        '{"choices": ["a", "b"], "answer": "a"}',  # JSON with a "choices" key: a quiz, not an API
        '[{"q": 1}, {"q": 2}]',
        '{"choices": [{"index": 0, "message": {"content": "cut off',  # invalid JSON
        'Here is how SSE looks:\ndata: {"choices": [{"delta": {"content": "x"}}]}\n'
        "and that is all.\nThe answer is 4.\nAnother line.",  # prose quoting one event
        "data: not json at all\n\ndata: still not\n",
        "[[[[[[[[[[" * 20000,  # nested too deep for json
    ],
)
def test_what_is_not_a_response_or_stream_is_raw_text(text: str) -> None:
    pasted = decode_pasted(text)
    assert pasted.kind == "raw"
    assert pasted.pieces == ([(False, text)] if text else [])
    assert pasted.model is None and pasted.skipped == 0


# -- JSON responses ------------------------------------------------------------------------------


def test_reasoning_content_is_thinking_as_is_never_reparsed() -> None:
    pasted = decode_pasted(read("vllm_qwen3_response.json"))
    assert pasted.kind == "json"
    assert pasted.model == "Qwen/Qwen3-8B"
    assert pasted.finish_reason == "stop"
    assert [r for r, _ in pasted.pieces] == [True, False]
    reply = parse_pasted(pasted, choose_format(pasted))
    assert reply.format == "think"  # from the model name
    # The reasoning quotes </think> and <output>: they stay text inside the thinking.
    assert "between <think> and </think>" in reply.thinking
    assert "in <output>" in reply.thinking
    assert [s.kind for s in reply.sections] == ["thinking", "text"]
    assert (
        reply.answer == "Reasoning models wrap their thinking in tags such as `<think>…</think>`."
    )
    assert reply.thinking_incomplete is False


def test_markers_in_content_still_go_through_the_format() -> None:
    pasted = decode_pasted(read("llama_server_gptoss_response.json"))
    detection = choose_format(pasted)
    assert detection.format.name == "harmony" and "gpt-oss" in detection.reason
    reply = parse_pasted(pasted, detection)
    assert reply.thinking == "User asks 2+2. Simple arithmetic: 4."
    assert reply.answer == "2 + 2 = **4**."
    assert "<|" not in reply.answer


def test_openrouter_reasoning_and_a_parsed_tool_call() -> None:
    pasted = decode_pasted(read("openrouter_tool_call_response.json"))
    assert pasted.finish_reason == "tool_calls"
    assert [(c.name, json.loads(c.arguments)) for c in pasted.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    reply = parse_pasted(pasted, choose_format(pasted))
    assert reply.thinking.startswith("The user wants the weather in Paris.")
    assert reply.answer == ""
    assert reply.tool_calls == ['{"city": "Paris"}']
    assert reply.thinking_incomplete is False  # it thought, then called: finish "tool_calls"
    assert [(s.kind, s.label) for s in reply.sections] == [
        ("thinking", ""),
        ("tool_call", "get_weather"),
    ]


def test_message_shapes() -> None:
    # content parts, a second choice (not the reply), a legacy completion, Ollama's message
    parts = {
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"content": [{"type": "text", "text": "a"}, "b"]}},
            {"index": 1, "message": {"content": "other choice"}},
        ],
    }
    assert decode_pasted(json.dumps(parts)).pieces == [(False, "ab")]
    legacy = {"object": "text_completion", "choices": [{"index": 0, "text": "<think>x</think>y"}]}
    assert decode_pasted(json.dumps(legacy)).pieces == [(False, "<think>x</think>y")]
    ollama = {
        "model": "qwen3:8b",
        "message": {"role": "assistant", "content": "4", "thinking": "2+2"},
        "done": True,
        "done_reason": "stop",
    }
    pasted = decode_pasted(json.dumps(ollama))
    assert pasted.pieces == [(True, "2+2"), (False, "4")]
    assert (pasted.model, pasted.finish_reason) == ("qwen3:8b", "stop")
    generate = {"model": "r1", "response": "ok", "thinking": "hm", "done": True}
    assert decode_pasted(json.dumps(generate)).pieces == [(True, "hm"), (False, "ok")]
    details = {"choices": [{"message": {"reasoning_details": [{"text": "why"}], "content": "so"}}]}
    assert decode_pasted(json.dumps(details)).pieces == [(True, "why"), (False, "so")]
    null_content = {"choices": [{"message": {"content": None, "reasoning_content": "only"}}]}
    assert decode_pasted(json.dumps(null_content)).pieces == [(True, "only")]


@pytest.mark.parametrize(
    ("finish", "incomplete"), [("stop", False), ("length", True), (None, True)]
)
def test_reasoning_last_is_complete_only_when_the_server_finished(
    finish: str | None, incomplete: bool
) -> None:
    body = {"choices": [{"message": {"reasoning_content": "hm"}, "finish_reason": finish}]}
    reply = parse_pasted(decode_pasted(json.dumps(body)))
    assert (reply.thinking, reply.answer, reply.thinking_incomplete) == ("hm", "", incomplete)
    # content with an unclosed <think> stays incomplete whatever the server says
    body = {"choices": [{"message": {"content": "<think>hm"}, "finish_reason": "stop"}]}
    assert parse_pasted(decode_pasted(json.dumps(body))).thinking_incomplete is True


def test_a_server_error_is_reported_not_shown_as_a_reply() -> None:
    body = {"error": {"message": "The model `x`\ndoes not exist.", "type": "NotFound", "code": 404}}
    pasted = decode_pasted(json.dumps(body))
    assert pasted.kind == "json" and pasted.pieces == []
    assert pasted.error == "The model `x` does not exist."
    assert decode_pasted('{"error": "model \\"q\\" not found"}').error == 'model "q" not found'


def test_a_chunk_list_is_one_reply() -> None:
    pasted = decode_pasted(read("magistral_chunks.json"))
    assert pasted.kind == "json"
    assert pasted.finish_reason == "stop"
    reply = parse_pasted(pasted, choose_format(pasted))
    assert reply.format == "magistral"
    assert reply.thinking == "Petals: alternate colours."
    assert reply.answer == "Alternate red and blue petals."


# -- streams -------------------------------------------------------------------------------------


def test_sse_stream_with_reasoning_deltas_comments_usage_and_done() -> None:
    pasted = decode_pasted(read("vllm_r1_stream.sse"))
    assert pasted.kind == "sse"
    assert pasted.skipped == 0  # blank lines, a keep-alive comment and [DONE] are the stream
    assert pasted.model == "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
    assert pasted.finish_reason == "stop"
    reply = parse_pasted(pasted, choose_format(pasted))
    assert reply.format == "think"
    assert reply.thinking == (
        "Is 9.11 bigger than 9.9? Compare tenths: 1 < 9. A closing </think> tag here is just text."
    )
    assert reply.answer == "No: 9.9 is bigger than 9.11."
    assert [s.kind for s in reply.sections] == ["thinking", "text"]


def test_crlf_and_extra_sse_fields() -> None:
    text = read("vllm_r1_stream.sse").replace("\n", "\r\n")
    text = "event: message\r\nid: 1\r\nretry: 3000\r\n" + text
    pasted = decode_pasted(text)
    assert pasted.kind == "sse" and pasted.skipped == 0
    assert pasted.pieces == decode_pasted(read("vllm_r1_stream.sse")).pieces


def test_malformed_lines_are_skipped_and_counted() -> None:
    good = sse(delta(content="Hello"), delta(content=" there"), delta(finish="stop"))
    lines = good.split("\n")
    lines.insert(2, 'data: {"choices": [{"delta": {"content": "tru')  # cut in the middle
    lines.insert(4, "[... cut ...]")
    lines.insert(6, "data: 42")
    pasted = decode_pasted("\n".join(lines))
    assert pasted.kind == "sse"
    assert pasted.skipped == 3
    assert pasted.pieces == [(False, "Hello there")]
    assert pasted.finish_reason == "stop"


def test_curl_include_headers_before_the_stream() -> None:
    text = "HTTP/1.1 200 OK\ncontent-type: text/event-stream\n\n" + sse(delta(content="hi"))
    pasted = decode_pasted(text)
    assert (pasted.kind, pasted.pieces, pasted.skipped) == ("sse", [(False, "hi")], 0)


def test_streamed_tool_call_deltas_become_one_call() -> None:
    pasted = decode_pasted(read("vllm_tool_call_stream.sse"))
    assert [(c.name, c.arguments) for c in pasted.tool_calls] == [
        ("get_weather", '{"city": "Paris"}')
    ]
    reply = parse_pasted(pasted, choose_format(pasted))
    assert reply.thinking == "Need the weather tool."
    assert reply.tool_calls == ['{"city": "Paris"}']
    assert reply.answer == ""


def test_ollama_json_lines_stream() -> None:
    pasted = decode_pasted(read("ollama_chat_stream.jsonl"))
    assert pasted.kind == "jsonl"
    assert pasted.pieces == [(True, "Two plus two is four."), (False, "2 + 2 = 4")]
    assert (pasted.model, pasted.finish_reason) == ("qwen3:8b", "stop")


def test_an_error_event_in_the_middle_of_a_stream() -> None:
    text = sse(delta(content="partial"), {"error": {"message": "out of memory"}}, done=False)
    pasted = decode_pasted(text)
    assert pasted.pieces == [(False, "partial")]
    assert pasted.error == "out of memory"


@pytest.mark.parametrize("name", ["35", "36"])
def test_real_captured_streams(name: str) -> None:
    path = next(WIRE.glob(f"{name}_*.txt"))
    pasted = decode_pasted(path.read_bytes().decode("utf-8"))
    reply = parse_pasted(pasted, choose_format(pasted))
    assert pasted.kind == "sse"
    assert reply.format == "harmony"  # openai/gpt-oss-*
    assert reply.answer == ""
    assert reply.thinking_incomplete is True  # cut off: no content ever came
    if name == "35":
        assert pasted.skipped == 1  # the "[... cut ...]" line
        assert pasted.model == "openai/gpt-oss-20b"
        # The tool-call arguments arrived as reasoning_content (the vLLM bug): thinking.
        assert reply.thinking == 'need to use the tool{"query":"how to'
    else:
        assert pasted.skipped == 0
        assert (pasted.model, pasted.finish_reason) == ("openai/gpt-oss-120b", "length")
        assert reply.thinking == "as many"


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared/reference/samples is not here")
@pytest.mark.parametrize("name", ["35", "36"])
def test_repository_copies_match_the_shared_samples(name: str) -> None:
    shared = next((SAMPLES / "formats").glob(f"{name}_*.txt"))
    assert (WIRE / shared.name).read_bytes() == shared.read_bytes()


# -- any chunking, same reply ------------------------------------------------------------------


HARMONY_REPLY = (
    "<|channel|>analysis<|message|>Think: 2+2.<|end|><|start|>assistant<|channel|>commentary "
    'to=functions.calc <|constrain|>json<|message|>{"x": "2+2"}<|call|>'
    "<|start|>assistant<|channel|>final<|message|>It is 4, not <|end|>5?"
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, len(HARMONY_REPLY)), max_size=12))
def test_content_split_over_deltas_parses_like_the_whole_text(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    pieces = [
        HARMONY_REPLY[a:b] for a, b in zip([0, *points], [*points, len(HARMONY_REPLY)], strict=True)
    ]
    text = sse(*(delta("gpt-oss-120b", content=p) for p in pieces if p))
    reply = parse_pasted(decode_pasted(text), choose_format(decode_pasted(text)))
    whole = parse(HARMONY_REPLY, fmt="harmony")
    assert reply.to_dict() == whole.to_dict()


# -- choosing the format -------------------------------------------------------------------------


def test_format_choice_order() -> None:
    harmony_text = "<|channel|>analysis<|message|>a<|end|>"
    named = Pasted("json", [(False, "<think>x</think>y")], model="Magistral-Small-2509")
    assert choose_format(named).format.name == "magistral"  # the model's name first
    assert choose_format(named, "think").format.name == "think"  # --format wins
    assert choose_format(named, "think").reason == "--format"
    unnamed = Pasted("sse", [(True, "[THINK]"), (False, harmony_text)], model="my-finetune")
    assert choose_format(unnamed).format.name == "harmony"  # sniffed from content only
    reasoning_only = Pasted("sse", [(True, "<|channel|>")], model=None)
    assert choose_format(reasoning_only).format.name == "auto"
    with pytest.raises(UsageError, match="unknown reasoning format 'nope'"):
        choose_format(named, "nope")


# -- never a traceback ---------------------------------------------------------------------------


_FRAGMENTS = st.sampled_from(
    [
        "data: ",
        "data: [DONE]",
        "\n",
        "\r\n",
        "\n\n",
        "{",
        "}",
        "[",
        "]",
        '"choices"',
        ":",
        ",",
        '{"index": 0, ',
        '"delta": ',
        '"message": ',
        '"content": ',
        '"reasoning_content": ',
        '"tool_calls": [{"index": "x", "function": {"name": 1, "arguments": {}}}]',
        '"error": ',
        "null",
        "[]",
        '"<think>"',
        '"x"',
        "1",
        ": keep-alive",
        '"done": true, "model": "m", ',
        '"message": {"content": 5}',
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_FRAGMENTS, max_size=40).map("".join))
def test_garbage_never_raises(text: str) -> None:
    pasted = decode_pasted(text)
    assert pasted.kind in ("raw", "json", "sse", "jsonl")
    assert all(isinstance(p, str) for _, p in pasted.pieces)
    parse_pasted(pasted, choose_format(pasted))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_any_text_never_raises(text: str) -> None:
    pasted = decode_pasted(text)
    parse_pasted(pasted, choose_format(pasted))


def test_wire_data_files_are_valid() -> None:
    for path in WIRE.glob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))
