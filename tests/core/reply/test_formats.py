"""Every reasoning format in the catalog: its own vectors (modelled on the real replies in
../shared/reference/samples/formats/), and the parser's guarantees checked per format — any
chunking gives the same sections and events, linear time, only possible marker prefixes held
back, answers that quote markers."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reflectchat.core.reply.detect import detect_from_model, format_for_name, sniff_format
from reflectchat.core.reply.format_catalog import BY_NAME, FORMATS
from reflectchat.core.reply.formats import UnknownFormatError
from reflectchat.core.reply.sections import (
    SectionEvent,
    SectionParser,
    parse,
    reply_from_sections,
    resolve_format,
)
from tests.support.paths import SAMPLES

# name: (format, raw reply, thinking, answer, tool calls)
VECTORS: dict[str, tuple[str, str, str, str, list[str]]] = {
    "reflection": (
        "reflection",
        "<thinking>\nCount.\n<reflection>\nNo, two r's at the end.\n</reflection>\nSo 3.\n"
        "</thinking>\n<output>\nThree.\n</output><|eot_id|>leaked next turn",
        "Count.\n\nSo 3.",
        "Three.",
        [],
    ),
    "think": (
        "think",
        "<think>\nLet me count the r's.\n</think>\n\nThere are **3**.  \n<|im_end|>junk",
        "Let me count the r's.",
        "There are **3**.",
        [],
    ),
    "think, empty": ("think", "<think>\n\n</think>\n\nHello! 😊", "", "Hello! 😊", []),
    "think, GLM answer unclosed": (
        "think",
        "<think>Got it, two cats.</think><answer>The image shows two cats",
        "Got it, two cats.",
        "The image shows two cats",
        [],
    ),
    "think, Hunyuan answer": ("think", "<think>x</think>\n<answer>\ny\n</answer>", "x", "y", []),
    "think, tool call": (
        "think",
        '<think>Need the weather.</think>\n\n<tool_call>\n{"name": "get_weather"}\n</tool_call>',
        "Need the weather.",
        "",
        ['{"name": "get_weather"}'],
    ),
    "think, code with <": (
        "think",
        '<think>Plan.</think>\n```bash\nwhile read -r l; do [[ $l < x ]]; done <<< "$s"\n```',
        "Plan.",
        '```bash\nwhile read -r l; do [[ $l < x ]]; done <<< "$s"\n```',
        [],
    ),
    "marco-o1": (
        "marco-o1",
        "<Thought>\nHmm, 9.11 < 9.90.\n</Thought>\n<Output>\nNo.\n</Output>",
        "Hmm, 9.11 < 9.90.",
        "No.",
        [],
    ),
    "exaone": ("exaone", "<thought>\nHmm.\n</thought>\nYes.[|endofturn|]x", "Hmm.", "Yes.", []),
    "harmony": (
        "harmony",
        '<|channel|>analysis<|message|>User says "hi". Reply politely.<|end|>\n\n'
        "<|start|>assistant<|channel|>final<|message|>Hello! 👋<|return|>",
        'User says "hi". Reply politely.',
        "Hello! 👋",
        [],
    ),
    "harmony, commentary tool call": (
        "harmony",
        "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>"
        'commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}'
        "<|call|>",
        "Need weather.",
        "",
        ['{"city":"Paris"}'],
    ),
    "harmony, tool call on analysis": (
        "harmony",
        "<|channel|>analysis<|message|>Let's search.<|end|><|start|>assistant<|channel|>"
        'analysis to=search_arch_wiki code<|message|>{"query":"Newelle Arch"}',
        "Let's search.",
        "",
        ['{"query":"Newelle Arch"}'],
    ),
    "harmony, final only": (
        "harmony",
        '<|channel|>final<|message|>{"issues":[]}<|return|>',
        "",
        '{"issues":[]}',
        [],
    ),
    "harmony, next turn": (
        "harmony",
        "<|channel|>final<|message|>4<|end|><|start|>user<|message|>and 5?",
        "",
        "4",
        [],
    ),
    "harmony-stripped": (
        "harmony-stripped",
        'analysisWe need to answer "2+2" in words.assistantfinalfour',
        'We need to answer "2+2" in words.',
        "four",
        [],
    ),
    "magistral": (
        "magistral",
        "[THINK]Petals: 5.[/THINK]Five petals.</s>",
        "Petals: 5.",
        "Five petals.",
        [],
    ),
    "magistral, double close": (
        "magistral",
        "[THINK]Try A.[/THINK]This still doesn't work.[/THINK]\n\n# Answer\n\nB.",
        "Try A.This still doesn't work.",
        "# Answer\n\nB.",
        [],
    ),
    "kimi": (
        "kimi",
        "◁think▷So, two cats.◁/think▷Two tabby cats.<|im_assistant|>",
        "So, two cats.",
        "Two tabby cats.",
        [],
    ),
    "kimi, empty": (
        "kimi",
        "◁think▷◁/think▷Title:\nSpire<|im_assistant|>",
        "",
        "Title:\nSpire",
        [],
    ),
    "seed-oss": (
        "seed-oss",
        "<seed:think>Janet sells 9 eggs.<seed:cot_budget_reflect>I have used 129 tokens, and "
        "there are 383 tokens remaining for use.</seed:cot_budget_reflect>9 x 2 = 18."
        "</seed:think>**Answer:** 18",
        "Janet sells 9 eggs.9 x 2 = 18.",
        "**Answer:** 18",
        [],
    ),
    "gemma4": (
        "gemma4",
        "<|channel>thought\n*   Image: a church.\n<channel|>Title: Akeman Street<turn|>",
        "*   Image: a church.",
        "Title: Akeman Street",
        [],
    ),
    "apriel": (
        "apriel",
        "Here are my reasoning steps:\nThe user asks for a caption.\n[BEGIN FINAL RESPONSE]\n"
        "Two cats side‑by‑side.\n[END FINAL RESPONSE]\n<|end|>\n",
        "The user asks for a caption.",
        "Two cats side‑by‑side.",
        [],
    ),
    "apriel, header pre-filled": (
        "apriel",
        "The user asks.\n[BEGIN FINAL RESPONSE]Cats.[END FINAL RESPONSE]",
        "The user asks.",
        "Cats.",
        [],
    ),
    "command-a": (
        "command-a",
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|><|START_THINKING|>S-T-R-A-W-B-E-R-R-Y: three."
        "<|END_THINKING|><|START_RESPONSE|>There are \\boxed{3} r's.<|END_RESPONSE|>"
        "<|END_OF_TURN_TOKEN|>",
        "S-T-R-A-W-B-E-R-R-Y: three.",
        "There are \\boxed{3} r's.",
        [],
    ),
}
# Each format's markers, for the "no marker in the answer" check.
MARKERS = {f.name: [m.text for m in f.markers] for f in FORMATS}


def run(chunks: list[str], fmt: str, prefill: str = "") -> tuple[list[SectionEvent], object]:
    parser = SectionParser(prefill, fmt)
    events: list[SectionEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    events += parser.finish()
    return merged(events), parser.reply()


def merged(events: list[SectionEvent]) -> list[SectionEvent]:
    out: list[SectionEvent] = []
    for e in events:
        if e.type == "text" and out and out[-1].type == "text" and out[-1].kind == e.kind:
            out[-1] = SectionEvent("text", e.kind, out[-1].text + e.text)
        else:
            out.append(e)
    return out


@pytest.mark.parametrize("name", VECTORS)
def test_each_format_splits_its_vector(name: str) -> None:
    fmt, raw, thinking, answer, tools = VECTORS[name]
    reply = parse(raw, fmt=fmt)
    assert reply.format == fmt
    assert reply.thinking == thinking
    assert reply.answer == answer
    assert reply.tool_calls == tools
    for marker in MARKERS[fmt]:
        if len(marker) > 1 and marker not in ("analysis",):
            assert marker not in reply.answer, marker


@pytest.mark.parametrize("name", VECTORS)
def test_every_split_point_and_one_char_chunks_give_the_same_split(name: str) -> None:
    fmt, raw, *_ = VECTORS[name]
    events, whole = run([raw], fmt)
    for cut in range(1, len(raw)):
        assert run([raw[:cut], raw[cut:]], fmt) == (events, whole), cut
    assert run(list(raw), fmt) == (events, whole)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
@pytest.mark.parametrize("name", VECTORS)
def test_any_chunking_gives_the_same_events(name: str, data: st.DataObject) -> None:
    fmt, raw, *_ = VECTORS[name]
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(raw) - 1)), max_size=12)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert run(chunks, fmt) == run([raw], fmt)


@settings(max_examples=40, deadline=None)
@given(
    fmt=st.sampled_from([f.name for f in FORMATS]),
    pieces=st.lists(
        st.sampled_from(
            sorted({m.text for f in FORMATS for m in f.markers} | {"a", " ", "\n", "<", "[", "|"})
        ),
        max_size=25,
    ),
    cut=st.integers(0, 400),
)
def test_marker_soup_chunk_invariance(fmt: str, pieces: list[str], cut: int) -> None:
    raw = "".join(pieces)
    cut = min(cut, len(raw))
    assert run([raw[:cut], raw[cut:]], fmt) == run([raw], fmt)
    assert run(list(raw), fmt) == run([raw], fmt)


@pytest.mark.parametrize("fmt", [f.name for f in FORMATS])
def test_only_possible_marker_prefixes_are_held_back(fmt: str) -> None:
    format_ = BY_NAME[fmt]
    parser = SectionParser(fmt=fmt)
    shown = "".join(e.text for e in parser.feed("word ") if e.type == "text")
    for ch in "plain text, no marker here. x < y ; [a] |b| ◁ ":
        shown += "".join(e.text for e in parser.feed(ch) if e.type == "text")
    fed = "word plain text, no marker here. x < y ; [a] |b| ◁ "
    held = fed[len(shown) :]
    assert fed.startswith(shown)
    # what is held is a proper prefix of one of this format's markers (or nothing)
    assert not held or any(
        format_.fold(m.text).startswith(format_.fold(held)) for m in format_.markers
    ), held


@pytest.mark.parametrize(
    ("fmt", "raw", "answer"),
    [
        (
            "reflection",
            "<thinking>t</thinking><output>Write <thinking> and </thinking>.</output>",
            "Write <thinking> and </thinking>.",
        ),
        (
            "think",
            "<think>t</think>In XML, wrap it in <think> … </think> tags.",
            "In XML, wrap it in <think> … </think> tags.",
        ),
        (
            "harmony",
            "<|channel|>final<|message|>The token is <think> and [THINK].<|return|>",
            "The token is <think> and [THINK].",
        ),
        (
            "command-a",
            "<|START_RESPONSE|>Use <think> or <|START_THINKING|>?<|END_RESPONSE|>",
            "Use <think> or <|START_THINKING|>?",
        ),
        (
            "auto",
            "<think>t</think>Tags like <thinking> and <think> are plain here.",
            "Tags like <thinking> and <think> are plain here.",
        ),
    ],
)
def test_an_answer_can_quote_markers(fmt: str, raw: str, answer: str) -> None:
    assert parse(raw, fmt=fmt).answer == answer


@pytest.mark.parametrize("fmt", [f.name for f in FORMATS])
def test_one_megabyte_one_char_at_a_time_is_linear(fmt: str) -> None:
    unit = next((v[1] for v in VECTORS.values() if v[0] == fmt), "<think>a</think>b")
    unit += " noise: a < b, [x], <|, ◁, <div>\n" * 10
    text = (unit * (1_000_000 // len(unit) + 1))[:1_000_000]
    parser = SectionParser(fmt=fmt)
    feed = parser.feed
    start = time.perf_counter()
    for ch in text:
        feed(ch)
    parser.finish()
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"{fmt}: 1 MB fed char by char took {elapsed:.2f} s"
    assert parser.reply().sections == parse(text, fmt=fmt).sections


def test_auto_switches_to_the_format_the_text_shows() -> None:
    for name in ("harmony", "magistral", "kimi", "seed-oss", "gemma4", "command-a"):
        fmt, raw, thinking, answer, _tools = VECTORS[name]
        reply = parse(raw)
        assert (reply.format, reply.thinking, reply.answer) == (fmt, thinking, answer), name


def test_turn_boundary_ends_the_reply_and_what_follows_is_dropped() -> None:
    parser = SectionParser(fmt="think")
    events = parser.feed("<think>a</think>b<|im_end|>")
    assert parser.ended
    assert parser.feed("<think>more</think>c") == []
    assert parser.reply().answer == "b"
    assert ("close", "text") in [(e.type, e.kind) for e in events]


def test_turn_boundary_inside_thinking_marks_it_incomplete() -> None:
    reply = parse("<think>still going<|im_end|>", fmt="think")
    assert reply.thinking == "still going" and reply.thinking_incomplete


def test_server_reasoning_is_text_and_content_is_parsed() -> None:
    parser = SectionParser(fmt="think")
    parser.feed_reasoning("Is </think> a tag? <output>")
    parser.feed_reasoning(" no.")
    parser.feed("Answer <think>quoted</think>.")
    parser.finish()
    reply = parser.reply()
    assert reply.thinking == "Is </think> a tag? <output> no."
    assert reply.answer == "Answer <think>quoted</think>."


def test_tool_call_label_and_stored_sections_round_trip() -> None:
    reply = parse(VECTORS["harmony, commentary tool call"][1], fmt="harmony")
    call = next(s for s in reply.sections if s.kind == "tool_call")
    assert call.label == "functions.get_weather"
    d = reply.to_dict()
    assert d["format"] == "harmony" and d["tool_calls"] == ['{"city":"Paris"}']
    again = reply_from_sections(d["sections"], d["format"])
    assert (again.thinking, again.answer, again.tool_calls) == (
        reply.thinking,
        reply.answer,
        reply.tool_calls,
    )


def test_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(UnknownFormatError, match="known: auto, reflection"):
        resolve_format("nope")


# -- detection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ '<|start|>assistant<|channel|>final<|message|>' }}", "harmony"),
        ("{% if thinking %}[THINK]{{ t }}[/THINK]{% endif %}", "magistral"),
        ("{{ '<|im_start|>assistant\n<think>\n' }}", "think"),
        ("{{ '<seed:think>' }}", "seed-oss"),
        ("{{ '<|channel>thought' }}", "gemma4"),
        ("[BEGIN FINAL RESPONSE]", "apriel"),
        ("<|START_THINKING|>", "command-a"),
        ("◁think▷", "kimi"),
        ("You are a world-class AI system … <thinking> … <reflection>", "reflection"),
        ("{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}", "auto"),
    ],
)
def test_detection_from_the_chat_template(template: str, expected: str) -> None:
    found = detect_from_model(template=template)
    assert found.format.name == expected
    assert found.reason


def test_detection_order_catalog_then_template_then_vocabulary_then_name() -> None:
    assert detect_from_model(template="<think>", catalog_format="reflection").format.name == (
        "reflection"
    )
    assert detect_from_model(special_tokens=["<|channel|>"]).format.name == "harmony"
    found = detect_from_model(names=["gpt-oss-20b-Q4_K_M.gguf"])
    assert found.format.name == "harmony" and "gpt-oss" in found.reason
    assert format_for_name("Qwen/Qwen3-8B") is not None
    assert format_for_name("SmolLM2-135M-Instruct") is None


def test_sniffing_a_pasted_reply() -> None:
    for name, (fmt, raw, *_) in VECTORS.items():
        if name.startswith(("marco", "exaone", "apriel, header")):
            continue  # no distinctive marker: auto parses them the same
        assert sniff_format(raw).format.name == fmt, name


# -- the real samples, when ../shared is there -------------------------------------------------

REAL = {
    "01": ("harmony", 'User says "hi"', "Hello Armando! How can I help you today?"),
    "05": ("harmony", "We need to answer", "I’m ChatGPT—your AI chat buddy!"),
    "06": ("harmony", "The user says", ""),
    "08": ("harmony", "", '{"issues":[]}'),
    "09": ("harmony-stripped", "We need to answer", "four"),
    "11": ("think", "Okay, the user is asking", 'The word "strawberry" contains **3**'),
    "12": ("think", "", "Hello! How can I assist you today? 😊"),
    "15": ("think", "Hello! How can I assist you today?", "Hello! How can I assist you today?"),
    "17": ("think", "Okay, I need to figure out", "```bash"),
    "20": ("kimi", "So, let's describe the image", "Two tabby cats are resting"),
    "21": ("kimi", "", "Title:\nSt John the Evangelist's Church Spire"),
    "23": ("apriel", "The user asks", "Two tabby cats are curled up"),
    "25": ("think", "Got it, let's describe", "The image shows two tabby cats"),
    "31": ("gemma4", "*   Image:", "Title: Akeman Street Baptist Church"),
    "33": ("seed-oss", "Got it, let's try", "To determine how much Janet makes"),
    "40": ("command-a", "Okay, let's see.", 'The word "strawberry" is spelled'),
}


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="reference samples not found")
@pytest.mark.parametrize("prefix", REAL)
def test_the_real_samples_split_as_their_readme_says(prefix: str) -> None:
    path = next((SAMPLES / "formats").glob(f"{prefix}_*.txt"))
    raw = path.read_text(encoding="utf-8")
    fmt, thinking_start, answer_start = REAL[prefix]
    detected = sniff_format(raw).format.name
    assert detected == fmt
    reply = parse(raw, fmt=detected)
    assert reply.thinking.startswith(thinking_start)
    assert reply.answer.startswith(answer_start)
    for marker in MARKERS[fmt]:
        if len(marker) > 2 and marker != "analysis":
            assert marker not in reply.answer, marker
    assert run(list(raw), detected) == run([raw], detected)
