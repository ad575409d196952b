"""Tests for reflectchat.core.reply.sections: the streaming reasoning-tag parser."""

from __future__ import annotations

import time
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reflectchat.core.reply.sections import (
    ParsedReply,
    Section,
    SectionEvent,
    SectionParser,
    parse,
)
from tests.support.paths import SAMPLES

needs_samples = pytest.mark.skipif(
    not SAMPLES.is_dir(), reason=f"reference samples folder not found at {SAMPLES}"
)

REFLECTION_REPLY = (
    "<thinking>\n"
    'To respond to "hello", I\'ll need to consider several factors.\n'
    "<reflection>\n"
    "The approach of responding with a standard greeting seems appropriate.\n"
    "</reflection>\n"
    "Given these considerations, a greeting it is.\n"
    "</thinking>\n"
    "\n"
    "<output>\n"
    "Hello!\n"
    "</output>"
)


# -- helpers ----------------------------------------------------------------------------------


def run(chunks: list[str], prefill: str = "") -> tuple[list[SectionEvent], ParsedReply]:
    parser = SectionParser(prefill)
    events: list[SectionEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    events += parser.finish()
    return events, parser.reply()


def merged(events: list[SectionEvent]) -> list[SectionEvent]:
    """Adjacent text events of the same kind joined: the chunking-independent stream."""
    out: list[SectionEvent] = []
    for e in events:
        if e.type == "text" and out and out[-1].type == "text" and out[-1].kind == e.kind:
            out[-1] = SectionEvent("text", e.kind, out[-1].text + e.text)
        else:
            out.append(e)
    return out


def replay(events: list[SectionEvent]) -> list[Section]:
    """Build the flat section list the way a consumer of events would."""
    sections: list[Section] = []
    stack: list[str] = []
    cur: Section | None = None
    for e in events:
        if e.type == "open":
            stack.append(e.kind)
            cur = Section(e.kind, "")
            sections.append(cur)
        elif e.type == "text":
            assert e.text, "empty text event"
            assert stack and stack[-1] == e.kind, (stack, e)
            if cur is None:  # thinking resumed after a nested reflection
                cur = Section(e.kind, "")
                sections.append(cur)
            cur.text += e.text
        elif e.type == "close":
            assert stack and stack.pop() == e.kind, (stack, e)
            if e.kind == "thinking":
                last = next(s for s in reversed(sections) if s.kind == "thinking")
                last.complete = e.complete
            elif cur is not None:
                cur.complete = e.complete
            cur = None
        else:
            assert e.type == "retag" and e.kind == "thinking"
            assert sections and sections[-1].kind == "text" and not stack
            sections[-1].kind = "thinking"
    assert not stack, f"sections left open after finish(): {stack}"
    return sections


def kinds(reply: ParsedReply) -> list[tuple[str, str]]:
    return [(s.kind, s.text) for s in reply.sections]


def check_invariant(text: str, chunks: list[str], prefill: str = "") -> None:
    assert "".join(chunks) == text
    whole_events, whole = run([text], prefill)
    events, reply = run(chunks, prefill)
    assert reply.sections == whole.sections
    assert reply.to_dict() == whole.to_dict()
    assert merged(events) == merged(whole_events)
    assert replay(events) == reply.sections


def split_at(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(max(c, 0), len(text)) for c in cuts})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in pairwise(bounds)]


# -- the reflection format --------------------------------------------------------------------


def test_reflection_reply_sections_and_summary() -> None:
    reply = parse(REFLECTION_REPLY)
    assert [s.kind for s in reply.sections] == ["thinking", "reflection", "thinking", "output"]
    assert all(s.complete for s in reply.sections)
    assert reply.sections[0].text.startswith("\nTo respond")  # raw, untrimmed
    assert reply.answer == "Hello!"
    assert reply.reflections == [
        "The approach of responding with a standard greeting seems appropriate."
    ]
    assert reply.thinking.startswith("To respond")
    assert reply.thinking.endswith("a greeting it is.")
    assert "standard greeting" not in reply.thinking  # reflections are not thinking
    assert reply.thinking_incomplete is False


def test_reflection_reply_event_stream() -> None:
    events, _ = run(list(REFLECTION_REPLY))
    assert [(e.type, e.kind) for e in merged(events)] == [
        ("open", "thinking"),
        ("text", "thinking"),
        ("open", "reflection"),
        ("text", "reflection"),
        ("close", "reflection"),
        ("text", "thinking"),
        ("close", "thinking"),
        ("open", "output"),
        ("text", "output"),
        ("close", "output"),
    ]
    assert all(e.complete for e in events)


def test_to_dict() -> None:
    d = parse(REFLECTION_REPLY).to_dict()
    assert set(d) == {
        "format",
        "answer",
        "thinking",
        "reflections",
        "tool_calls",
        "sections",
        "thinking_incomplete",
    }
    assert d["format"] == "auto" and d["tool_calls"] == []
    assert d["answer"] == "Hello!"
    assert d["sections"][3] == {"kind": "output", "text": "Hello!"}
    assert d["sections"][1]["text"].startswith("The approach")  # trimmed


# -- tag names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "<thinking>t</thinking>a",
        "<think>t</think>a",
        "<thought>t</thought>a",
        "<THINKING>t</Thinking>a",
        "<Think>t</THINK>a",
        "<Thought>t</Thought>a",
        "<think>t</thinking>a",  # aliases are the same tag
    ],
)
def test_thinking_aliases_and_case(text: str) -> None:
    reply = parse(text)
    assert kinds(reply) == [("thinking", "t"), ("text", "a")]
    assert reply.answer == "a"
    assert reply.thinking == "t"


def test_marco_o1_format() -> None:
    reply = parse("<Thought>\nhmm\n</Thought>\n<Output>\n42\n</Output>")
    assert reply.thinking == "hmm"
    assert reply.answer == "42"


@pytest.mark.parametrize(
    "text",
    [
        "a < b and b > c",
        "<div>x</div>",
        "I <3 this",
        "<thinkin",
        "<thinkin>",
        "<output x>",
        "< think>",
        "<think >",
        "<think/>",
        "<thin\u212a>",  # Kelvin sign lower-cases to 'k'; tags are ASCII
        "<<<>>>",
        "</",
        "<",
    ],
)
def test_unknown_tags_are_text(text: str) -> None:
    reply = parse(text)
    assert kinds(reply) == [("text", text)]
    assert reply.answer == text.strip()


def test_unknown_tags_inside_sections_are_text() -> None:
    reply = parse("<think>if a<b then <div></think>x <y>")
    assert kinds(reply) == [("thinking", "if a<b then <div>"), ("text", "x <y>")]


def test_tags_quoted_inside_output_are_text() -> None:
    quoted = "Use <thinking>, <reflection> and </thinking> or <output>; </reflection>."
    reply = parse(f"<thinking>t</thinking><output>{quoted}</output>")
    assert reply.answer == quoted
    assert [s.kind for s in reply.sections] == ["thinking", "output"]


def test_split_tags_at_every_point() -> None:
    text = "<THINK>a<reflection>b</Reflection>c</think>d<output>e</OUTPUT>"
    expected = parse(text)
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            _, reply = run([text[:i], text[i:j], text[j:]])
            assert reply.sections == expected.sections, (i, j)


# -- structure rules ----------------------------------------------------------------------------


def test_nested_thinking_is_dropped() -> None:
    reply = parse("<thinking>a<thinking>b</thinking>c")
    assert kinds(reply) == [("thinking", "ab"), ("text", "c")]
    assert reply.answer == "c"


def test_stray_close_tags_are_dropped() -> None:
    reply = parse("</output>hello</reflection> world</output>")
    assert kinds(reply) == [("text", "hello world")]
    assert reply.answer == "hello world"


def test_stray_close_tags_inside_thinking_are_dropped() -> None:
    reply = parse("<thinking>a</output>b</reflection>c</thinking>")
    assert kinds(reply) == [("thinking", "abc")]


def test_top_level_reflection() -> None:
    reply = parse("<reflection>wait, no</reflection>\nThe answer.")
    assert kinds(reply) == [("reflection", "wait, no"), ("text", "\nThe answer.")]
    assert reply.reflections == ["wait, no"]
    assert reply.answer == "The answer."
    assert reply.thinking == ""


def test_top_level_reflection_ignores_close_thinking_and_output_closes_it() -> None:
    reply = parse("<reflection>r</thinking>s<output>o</output>")
    assert kinds(reply) == [("reflection", "rs"), ("output", "o")]


def test_output_implicitly_closes_thinking() -> None:
    events, reply = run(["<thinking>t<output>o</output>"])
    assert kinds(reply) == [("thinking", "t"), ("output", "o")]
    assert all(s.complete for s in reply.sections)
    assert SectionEvent("close", "thinking", complete=True) in events
    assert reply.thinking_incomplete is False


def test_close_thinking_inside_reflection_closes_both() -> None:
    events, reply = run(["<thinking>a<reflection>r</thinking>answer"])
    assert kinds(reply) == [("thinking", "a"), ("reflection", "r"), ("text", "answer")]
    assert [(e.type, e.kind) for e in events if e.type == "close"][:2] == [
        ("close", "reflection"),
        ("close", "thinking"),
    ]
    assert reply.answer == "answer"


def test_output_inside_reflection_closes_both() -> None:
    reply = parse("<thinking>a<reflection>r<output>o</output>")
    assert kinds(reply) == [("thinking", "a"), ("reflection", "r"), ("output", "o")]
    assert reply.answer == "o"
    assert reply.thinking_incomplete is False


def test_nested_open_tags_inside_reflection_are_dropped() -> None:
    reply = parse("<thinking><reflection>a<thinking>b<reflection>c</reflection>d</thinking>")
    assert kinds(reply) == [("thinking", ""), ("reflection", "abc"), ("thinking", "d")]


def test_thinking_resumes_as_new_section_only_when_text_follows() -> None:
    reply = parse("<thinking>a<reflection>r</reflection></thinking>x")
    assert kinds(reply) == [("thinking", "a"), ("reflection", "r"), ("text", "x")]
    reply = parse("<thinking>a<reflection>r</reflection><reflection>s</reflection>b</thinking>")
    assert kinds(reply) == [
        ("thinking", "a"),
        ("reflection", "r"),
        ("reflection", "s"),
        ("thinking", "b"),
    ]
    assert reply.thinking == "ab"
    assert reply.reflections == ["r", "s"]


def test_whitespace_between_thinking_and_output_is_not_a_section() -> None:
    text = "<thinking>t</thinking>\n\n  \t\n<output>o</output>\n\n"
    reply = parse(text)
    assert kinds(reply) == [("thinking", "t"), ("output", "o")]
    _, by_char = run(list(text))
    assert by_char.sections == reply.sections


def test_top_level_whitespace_is_held_until_text() -> None:
    parser = SectionParser()
    assert parser.feed("\n\n") == []
    assert parser.feed("  ") == []
    events = parser.feed("Hi")
    assert events == [SectionEvent("open", "text"), SectionEvent("text", "text", "\n\n  Hi")]
    assert parser.feed(" \n") == [SectionEvent("text", "text", " \n")]  # inside: plain text


def test_leading_whitespace_before_a_tag_is_discarded() -> None:
    reply = parse("\n\n<think>\nx\n</think>\n\nanswer\n")
    assert kinds(reply) == [("thinking", "\nx\n"), ("text", "\n\nanswer\n")]


def test_whitespace_only_reply() -> None:
    events, reply = run([" \n\t ", "\n"])
    assert events == []
    assert reply.sections == []
    assert reply.answer == ""


def test_empty_input() -> None:
    events, reply = run([])
    assert events == []
    assert reply == ParsedReply([], "", "", [], False)
    assert parse("") == reply
    assert run(["", "", ""])[1] == reply


def test_empty_thinking_block() -> None:
    reply = parse("<think>\n\n</think>\n\nHi there")  # Qwen3 with thinking switched off
    assert kinds(reply) == [("thinking", "\n\n"), ("text", "\n\nHi there")]
    assert reply.thinking == ""
    assert reply.answer == "Hi there"


# -- unclosed sections and finish() ------------------------------------------------------------


def test_unclosed_thinking_is_incomplete_with_empty_answer() -> None:
    events, reply = run(["<think>still going"])
    assert events[-1] == SectionEvent("close", "thinking", complete=False)
    assert kinds(reply) == [("thinking", "still going")]
    assert reply.sections[0].complete is False
    assert reply.thinking_incomplete is True
    assert reply.answer == ""
    assert reply.thinking == "still going"


def test_unclosed_reflection_closes_reflection_and_thinking() -> None:
    events, reply = run(["<thinking>a<reflection>r"])
    assert events[-2:] == [
        SectionEvent("close", "reflection", complete=False),
        SectionEvent("close", "thinking", complete=False),
    ]
    assert [s.complete for s in reply.sections] == [False, False]
    assert reply.thinking_incomplete is True
    assert reply.answer == ""


def test_thinking_unclosed_after_reflection_marks_last_segment() -> None:
    _, reply = run(["<thinking>a<reflection>r</reflection>"])
    assert kinds(reply) == [("thinking", "a"), ("reflection", "r")]
    assert [s.complete for s in reply.sections] == [False, True]
    assert reply.thinking_incomplete is True


def test_unclosed_top_level_reflection() -> None:
    events, reply = run(["<reflection>r"])
    assert events[-1] == SectionEvent("close", "reflection", complete=False)
    assert reply.thinking_incomplete is True


def test_unclosed_output_is_still_the_answer() -> None:
    events, reply = run(["<thinking>t</thinking><output>almost"])
    assert events[-1] == SectionEvent("close", "output", complete=False)
    assert reply.answer == "almost"
    assert reply.sections[-1].complete is False
    assert reply.thinking_incomplete is False


def test_text_at_the_end_is_complete() -> None:
    events, reply = run(["just an answer"])
    assert events[-1] == SectionEvent("close", "text", complete=True)
    assert reply.sections == [Section("text", "just an answer", True)]


def test_partial_tag_at_the_end_is_text() -> None:
    reply = parse("<think>hmm</thi")
    assert kinds(reply) == [("thinking", "hmm</thi")]
    assert reply.thinking_incomplete is True
    assert kinds(parse("answer <outp")) == [("text", "answer <outp")]


def test_feed_after_finish_raises_and_finish_is_idempotent() -> None:
    parser = SectionParser()
    parser.feed("x")
    assert parser.finish() != []
    assert parser.finish() == []
    with pytest.raises(RuntimeError):
        parser.feed("y")


# -- missing opening tag (template pre-filled <think>) ------------------------------------------


def test_stray_close_thinking_retags_preceding_text() -> None:
    events, reply = run(["Let me think.\n</think>\n\nThe answer is 6."])
    assert kinds(reply) == [("thinking", "Let me think.\n"), ("text", "\n\nThe answer is 6.")]
    assert reply.sections[0].complete is True
    assert reply.thinking == "Let me think."
    assert reply.answer == "The answer is 6."
    assert [(e.type, e.kind) for e in merged(events)] == [
        ("open", "text"),
        ("text", "text"),
        ("close", "text"),
        ("retag", "thinking"),
        ("open", "text"),
        ("text", "text"),
        ("close", "text"),
    ]


def test_stray_close_thinking_without_text_is_dropped() -> None:
    events, reply = run(["  \n</think>\nanswer"])
    assert all(e.type != "retag" for e in events)
    assert kinds(reply) == [("text", "  \n\nanswer")]
    events, reply = run(["<output>o</output></thinking>"])
    assert all(e.type != "retag" for e in events)
    assert kinds(reply) == [("output", "o")]
    assert run(["</think>"])[1].sections == []


def test_retag_only_the_most_recent_text_section() -> None:
    reply = parse("intro<reflection>r</reflection>more</think>answer")
    assert kinds(reply) == [
        ("text", "intro"),
        ("reflection", "r"),
        ("thinking", "more"),
        ("text", "answer"),
    ]
    assert reply.answer == "answer"


def test_prefill_opens_thinking() -> None:
    events, reply = run(["reasoning\n</think>\n\nanswer"], prefill="<think>\n")
    assert all(e.type != "retag" for e in events)
    assert events[0] == SectionEvent("open", "thinking")  # the prefill's events come first
    assert kinds(reply) == [("thinking", "\nreasoning\n"), ("text", "\n\nanswer")]
    assert reply.answer == "answer"


def test_prefill_alone_is_incomplete_thinking() -> None:
    parser = SectionParser("<think>\n")
    assert parser.finish() == [
        SectionEvent("open", "thinking"),
        SectionEvent("text", "thinking", "\n"),
        SectionEvent("close", "thinking", complete=False),
    ]
    assert parser.reply().thinking_incomplete is True


def test_prefill_split_across_prefill_and_feed() -> None:
    check_invariant("k>a</think>b", ["k>a", "</think>b"], prefill="<thin")
    assert parse("k>a</think>b", prefill="<thin").thinking == "a"


# -- answer rules -------------------------------------------------------------------------------


def test_no_tags_whole_reply_is_the_answer() -> None:
    assert parse("  Just text.\n").answer == "Just text."


def test_text_before_thinking_is_not_the_answer() -> None:
    reply = parse("Sure.<think>x</think>Done")
    assert reply.answer == "Done"


def test_output_sections_win_over_text() -> None:
    reply = parse("<thinking>t</thinking>chatter<output>A</output> trailing <output>B</output>")
    assert reply.answer == "AB"  # outputs joined raw, then trimmed


def test_output_before_thinking_still_counts() -> None:
    assert parse("<output>o</output><think>t</think>").answer == "o"


# -- streaming behaviour ------------------------------------------------------------------------


def test_holds_back_only_possible_tag_prefixes() -> None:
    parser = SectionParser()
    assert parser.feed("abc<thi") == [
        SectionEvent("open", "text"),
        SectionEvent("text", "text", "abc"),
    ]
    assert parser.feed("nk>x") == [
        SectionEvent("close", "text"),
        SectionEvent("open", "thinking"),
        SectionEvent("text", "thinking", "x"),
    ]
    assert parser.feed("a<") == [SectionEvent("text", "thinking", "a")]
    assert parser.feed("3") == [SectionEvent("text", "thinking", "<3")]


def test_inside_output_only_close_output_is_held_back() -> None:
    parser = SectionParser()
    parser.feed("<output>")
    assert parser.feed("x<thi") == [SectionEvent("text", "output", "x<thi")]
    assert parser.feed("y</out") == [SectionEvent("text", "output", "y")]
    assert parser.feed("put>") == [SectionEvent("close", "output")]


def test_one_text_event_per_run_per_feed() -> None:
    parser = SectionParser()
    events = parser.feed("<think>a < b, c <d> e<3</think>")
    assert [(e.type, e.kind) for e in events] == [
        ("open", "thinking"),
        ("text", "thinking"),
        ("close", "thinking"),
    ]


def test_reply_during_streaming() -> None:
    parser = SectionParser()
    parser.feed("<thinking>step one")
    reply = parser.reply()
    assert kinds(reply) == [("thinking", "step one")]
    assert reply.sections[0].complete is False  # still open
    assert reply.thinking_incomplete is True
    assert reply.answer == ""
    parser.feed(", step two</thinking><output>ans")
    reply = parser.reply()
    assert reply.thinking == "step one, step two"
    assert reply.thinking_incomplete is False
    assert reply.answer == "ans"
    parser.feed("wer</output>")
    parser.finish()
    assert parser.reply().answer == "answer"


def test_reply_returns_copies() -> None:
    parser = SectionParser()
    parser.feed("<think>abc")
    parser.reply().sections[0].text = "mutated"
    parser.feed("def")
    assert parser.reply().thinking == "abcdef"


# -- chunk invariance (property-based) ---------------------------------------------------------

TOKENS = [
    *(f"<{n}>" for n in ("thinking", "think", "thought", "reflection", "output")),
    *(f"</{n}>" for n in ("thinking", "think", "thought", "reflection", "output")),
    "<THINK>",
    "</Think>",
    "<Output>",
    "</REFLECTION>",
    "<thin",
    "</refl",
    "<outp",
    "</",
    "<",
    ">",
    "/",
    "<3",
    "<div>",
    "<output x>",
    "a",
    "b",
    "T",
    " ",
    "\n",
    "\t",
    "  \n",
    "é",
    "\u212a",
    "😀",
    "\u00a0",
]
texts = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_chunking_matches_whole_parse(text: str, cuts: list[int]) -> None:
    check_invariant(text, split_at(text, cuts))


@settings(max_examples=200, deadline=None)
@given(text=texts, prefill=st.sampled_from(["", "<think>\n", "<thinking>", "<out", "\n"]))
def test_one_char_chunks_match_whole_parse(text: str, prefill: str) -> None:
    check_invariant(text, list(text), prefill)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet="<>/thinkgrelcoupTHO \n", max_size=60))
def test_random_characters_chunk_invariance(text: str) -> None:
    check_invariant(text, list(text))


@settings(max_examples=200, deadline=None)
@given(text=texts)
def test_parse_summary_is_consistent(text: str) -> None:
    reply = parse(text)
    assert reply.answer == reply.answer.strip()
    assert all(r == r.strip() for r in reply.reflections)
    assert all(s.text.strip() or s.kind != "text" for s in reply.sections)  # no blank text
    if not any(s.kind == "output" for s in reply.sections):
        # the answer never contains reasoning
        reasoning = [s for s in reply.sections if s.kind in ("thinking", "reflection")]
        if reasoning and reply.sections[-1] is reasoning[-1]:
            assert reply.answer == ""


def test_invariance_on_the_reflection_example() -> None:
    for i in range(len(REFLECTION_REPLY) + 1):
        check_invariant(REFLECTION_REPLY, [REFLECTION_REPLY[:i], REFLECTION_REPLY[i:]])
    check_invariant(REFLECTION_REPLY, list(REFLECTION_REPLY))


# -- real samples ------------------------------------------------------------------------------
# Byte-exact model outputs from ../shared, an extra check where that folder is present; the
# repository's own vectors modelled on them run everywhere (test_transcripts.py).


def sample(prefix: str) -> str:
    (path,) = [p for p in SAMPLES.glob(f"{prefix}_*.txt") if not p.name.endswith(".prompt.txt")]
    return path.read_text(encoding="utf-8")


@needs_samples
def test_sample_20_closed_think() -> None:
    reply = parse(sample("20"))
    assert [s.kind for s in reply.sections] == ["thinking", "text"]
    assert reply.thinking.startswith("First, I identify")
    assert "boxed{6}" in reply.answer
    assert "boxed" not in reply.thinking
    assert "think>" not in reply.answer
    assert reply.thinking_incomplete is False


@needs_samples
def test_sample_21_unclosed_think() -> None:
    reply = parse(sample("21"))
    assert [s.kind for s in reply.sections] == ["thinking"]
    assert reply.thinking_incomplete is True
    assert reply.sections[0].complete is False
    assert reply.answer == ""
    assert reply.thinking.startswith("Okay, so Alice")


@needs_samples
@pytest.mark.parametrize("prefix", ["03", "04", "05", "06", "07", "08"])
def test_samples_with_stripped_tags_are_only_an_answer(prefix: str) -> None:
    text = sample(prefix)
    reply = parse(text)
    assert [s.kind for s in reply.sections] == ["text"]
    assert reply.thinking == ""
    assert reply.reflections == []
    assert reply.thinking_incomplete is False
    assert reply.answer == text.strip()


@needs_samples
@pytest.mark.parametrize("prefix", ["03", "04", "05", "06", "07", "08", "20", "21"])
def test_samples_every_two_split_and_one_char_chunking(prefix: str) -> None:
    text = sample(prefix)
    whole_events, whole = run([text])
    for i in range(len(text) + 1):
        events, reply = run([text[:i], text[i:]])
        assert reply.sections == whole.sections, i
        assert merged(events) == merged(whole_events), i
    check_invariant(text, list(text))


@needs_samples
def test_sample_20_with_prefill_and_think_stripped() -> None:
    # The same reply as a DeepSeek-R1 template produces it: <think> already in the prompt.
    body = sample("20").split("<think>", 1)[1]
    assert parse(body, prefill="<think>").to_dict() == parse(sample("20")).to_dict()
    retagged = parse(body)  # caller forgot the prefill: the retag rule recovers
    assert retagged.thinking == parse(sample("20")).thinking
    assert retagged.answer == parse(sample("20")).answer


# -- linear cost --------------------------------------------------------------------------------


def megabyte_reply() -> str:
    unit = REFLECTION_REPLY + "\nSome words, a < b, <3, and <div> tags.\n" * 20
    return (unit * (1_000_000 // len(unit) + 1))[:1_000_000]


def test_one_megabyte_one_char_at_a_time_is_linear() -> None:
    text = megabyte_reply()
    parser = SectionParser()
    feed = parser.feed
    start = time.perf_counter()
    for ch in text:
        feed(ch)
    parser.finish()
    reply = parser.reply()
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"1 MB fed char by char took {elapsed:.2f} s"
    assert reply.sections == parse(text).sections


def test_one_megabyte_whole_is_fast() -> None:
    text = megabyte_reply()
    start = time.perf_counter()
    reply = parse(text)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"1 MB parsed whole took {elapsed:.2f} s"
    assert len(reply.sections) > 1000
    plain = "no tags here, just words " * 40_000
    start = time.perf_counter()
    assert parse(plain).answer == plain.strip()
    assert time.perf_counter() - start < 5.0
