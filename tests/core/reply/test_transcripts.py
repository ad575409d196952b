"""The section parser on the repository's own transcripts (tests/data/transcripts/).

Each vector is a reply (`*.txt`, byte-exact, modelled on real Reflection-70B and DeepSeek-R1
outputs) and a hand-written expected split (`*.json`): the flat sections' kinds and
completeness, the answer, the thinking, the reflections and `thinking_incomplete`. A text
expectation is either the exact string or an object of `starts_with` / `ends_with` /
`contains` / `excludes`. The reply must split the same whole, one character at a time and in
random chunks.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import pytest

from reflectchat.core.reply.sections import ParsedReply, SectionEvent, SectionParser, parse
from tests.support.paths import TRANSCRIPTS


@dataclass(frozen=True)
class Vector:
    name: str
    text: str
    prefill: str
    expected: dict[str, Any]


def load_vectors() -> list[Vector]:
    vectors = []
    for spec_path in sorted(TRANSCRIPTS.glob("*.json")):
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        # Bytes, not text mode: the replies' exact line endings and whitespace are the test.
        text = (TRANSCRIPTS / spec["reply"]).read_bytes().decode("utf-8")
        vectors.append(Vector(spec_path.stem, text, spec.get("prefill", ""), spec))
    return vectors


VECTORS = load_vectors()
by_name = pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])


def feed(vector: Vector, chunks: list[str]) -> tuple[list[SectionEvent], ParsedReply]:
    assert "".join(chunks) == vector.text
    parser = SectionParser(vector.prefill)
    events: list[SectionEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    events += parser.finish()
    return events, parser.reply()


def merged(events: list[SectionEvent]) -> list[SectionEvent]:
    """Adjacent text events of one kind joined: what any chunking must agree on."""
    out: list[SectionEvent] = []
    for e in events:
        if e.type == "text" and out and out[-1].type == "text" and out[-1].kind == e.kind:
            out[-1] = SectionEvent("text", e.kind, out[-1].text + e.text)
        else:
            out.append(e)
    return out


def random_chunks(text: str, rng: random.Random, longest: int) -> list[str]:
    chunks, at = [], 0
    while at < len(text):
        size = rng.randint(1, longest)
        chunks.append(text[at : at + size])
        at += size
    return chunks


def check_text(what: str, actual: str, expected: str | dict[str, Any]) -> None:
    if isinstance(expected, str):
        assert actual == expected, what
        return
    assert set(expected) <= {"starts_with", "ends_with", "contains", "excludes"}, what
    assert actual.startswith(expected.get("starts_with", "")), (what, actual[:80])
    assert actual.endswith(expected.get("ends_with", "")), (what, actual[-80:])
    for needle in expected.get("contains", []):
        assert needle in actual, (what, needle)
    for needle in expected.get("excludes", []):
        assert needle not in actual, (what, needle)


# -- the vectors themselves ---------------------------------------------------------------------


def test_every_reply_has_a_split_and_every_split_a_reply() -> None:
    replies = {p.name for p in TRANSCRIPTS.glob("*.txt")}
    used = {v.expected["reply"] for v in VECTORS}
    assert len(VECTORS) >= 10
    assert used == replies


@by_name
def test_whole_reply_splits_as_expected(vector: Vector) -> None:
    reply = parse(vector.text, prefill=vector.prefill)
    expected = vector.expected
    assert [{"kind": s.kind, "complete": s.complete} for s in reply.sections] == expected[
        "sections"
    ]
    assert reply.thinking_incomplete is expected["thinking_incomplete"]
    check_text("answer", reply.answer, expected["answer"])
    check_text("thinking", reply.thinking, expected["thinking"])
    assert len(reply.reflections) == len(expected["reflections"])
    pairs = zip(reply.reflections, expected["reflections"], strict=True)
    for i, (actual, wanted) in enumerate(pairs):
        check_text(f"reflection {i}", actual, wanted)


@by_name
def test_one_character_at_a_time_gives_the_same_split(vector: Vector) -> None:
    whole_events, whole = feed(vector, [vector.text])
    events, reply = feed(vector, list(vector.text))
    assert reply.sections == whole.sections
    assert reply.to_dict() == whole.to_dict()
    assert merged(events) == merged(whole_events)


@by_name
@pytest.mark.parametrize("seed", range(8))
def test_random_chunks_give_the_same_split(vector: Vector, seed: int) -> None:
    whole_events, whole = feed(vector, [vector.text])
    rng = random.Random(f"{vector.name}/{seed}")
    # Short chunks (a token or two) and long ones (a network read) both.
    chunks = random_chunks(vector.text, rng, longest=(4, 16, 64, 512)[seed % 4])
    events, reply = feed(vector, chunks)
    assert reply.sections == whole.sections, chunks
    assert reply.to_dict() == whole.to_dict()
    assert merged(events) == merged(whole_events)


@by_name
def test_every_split_in_two_gives_the_same_split(vector: Vector) -> None:
    # One cut anywhere, tags included: the tag held back at a chunk end is the hard case.
    whole_events, whole = feed(vector, [vector.text])
    for i in range(len(vector.text) + 1):
        events, reply = feed(vector, [vector.text[:i], vector.text[i:]])
        assert reply.sections == whole.sections, i
        assert merged(events) == merged(whole_events), i


def test_a_forgotten_prefill_splits_like_the_prefill() -> None:
    named = {v.name: v for v in VECTORS}
    with_prefill = parse(named["r1_prefilled"].text, prefill=named["r1_prefilled"].prefill)
    without = parse(named["r1_prefilled_without_prefill"].text)
    assert with_prefill.to_dict() == without.to_dict()
