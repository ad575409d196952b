"""Reusing the KV cache where the prompt spells the same text in other tokens
(core/engine/token_reuse.py): the walk on its own against a brute force, then on the embedded
SmolLM2 with a reply the tokenizer would cut differently from how it was written."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reflectchat.core.engine.base import Finished, GenerationParams, Message, Started
from reflectchat.core.engine.llama import LlamaBackend, LoadOptions
from reflectchat.core.engine.token_reuse import reusable_prefix, reuse_held_tokens
from reflectchat.core.models.resolve import resolve_model

VOCAB = {1: b"a", 2: b"b", 3: b"ab", 4: b"ba", 5: b"aba", 6: b"<e>", 7: b"bb"}
piece = VOCAB.__getitem__
seqs = st.lists(st.sampled_from(sorted(VOCAB)), max_size=12)


def spelled(tokens: list[int]) -> bytes:
    return b"".join(piece(t) for t in tokens)


@given(seqs, seqs)
def test_the_walk_finds_the_longest_prefix_spelling_the_same(held: list[int], tokens: list[int]):
    j, k = reusable_prefix(held, tokens, piece)
    assert spelled(held[:j]) == spelled(tokens[:k])
    best = max(
        (kk for jj in range(len(held) + 1) for kk in range(len(tokens) + 1)
         if spelled(held[:jj]) == spelled(tokens[:kk])),
    )  # fmt: skip
    assert k == best
    aligned = reuse_held_tokens(held, tokens, piece)
    assert spelled(aligned) == spelled(tokens)  # the same text, whatever the tokens
    assert aligned[:j] == held[:j]


def test_equal_tokens_need_no_bytes_and_different_text_stops_the_walk() -> None:
    def no_piece(token: int) -> bytes:
        raise AssertionError("equal tokens are compared as tokens")

    assert reusable_prefix([1, 2, 6], [1, 2, 6, 6], no_piece) == (3, 3)
    assert reusable_prefix([1, 2, 3], [1, 4, 2], piece) == (3, 3)  # a|b|ab = a|ba|b
    assert reusable_prefix([1, 2, 2], [1, 4], piece) == (1, 1)  # "abb" and "aba" part at b/a
    assert reusable_prefix([1, 2, 1, 2], [3, 3], piece) == (4, 2)
    assert reuse_held_tokens([1, 2, 1], [3, 6], piece) == [1, 2, 6]


@pytest.fixture(scope="module")
def backend() -> LlamaBackend:
    return LlamaBackend(resolve_model("smollm2"), LoadOptions(n_ctx=2048))


def test_a_reply_written_in_other_tokens_is_served_from_the_cache(backend: LlamaBackend):
    reply = 'The term "oolong" means "black dragon" in Chinese.'
    messages = [
        Message("system", "You are concise."),
        Message("user", "What does oolong mean?"),
        Message("assistant", reply),
        Message("user", "Say more."),
    ]
    params = GenerationParams(seed=1, temperature=0.0, max_tokens=8)
    whole = backend.tokenize_prompt(backend.render_prompt(messages, params))
    # What memory holds after the model wrote the reply one character at a time: the same
    # text as the prompt, not the tokens the tokenizer makes of it.
    before = backend.render_prompt(messages[:2], params)
    ours = backend.tokenize_prompt(before)
    written = [t for ch in reply for t in backend.vocab.tokenize(ch.encode(), add_bos=False)]
    assert whole[: len(ours)] == ours and whole[len(ours) : len(ours) + len(written)] != written
    backend._evaluate_prompt([*ours, *written])

    events = list(backend.stream(messages, params))
    started = next(e for e in events if isinstance(e, Started))
    finished = next(e for e in events if isinstance(e, Finished))
    # Everything up to the end of the reply came from memory; only what follows it (the end
    # of the turn and the new message) was evaluated.
    assert started.cached_tokens >= len(ours) + len(written)
    evaluated = finished.stats.prompt_tokens - finished.stats.cached_tokens
    assert evaluated == len(whole) - len(backend.tokenize_prompt(before + reply))
