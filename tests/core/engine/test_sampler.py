"""Lazy grammar sampling (core/engine/sampler.py) on the embedded SmolLM2 through real
llama-cpp-python: the output stays valid under the grammar for every seed, seeds reproduce, and
the sampling semantics are `Llama.generate`'s."""

from __future__ import annotations

import re

import pytest

from reflectchat.core.chat.prompts import REFLECTION_SYSTEM_PROMPT
from reflectchat.core.engine.base import Delta, Finished, GenerationParams, Message
from reflectchat.core.engine.llama import LlamaBackend, LoadOptions
from reflectchat.core.engine.llama_glue import sampling
from reflectchat.core.engine.sampler import TokenSampler
from reflectchat.core.models.resolve import resolve_model
from tests.support.gguf_fixtures import embedded_model_path

QUESTION = [
    Message("system", REFLECTION_SYSTEM_PROMPT),
    Message("user", "Is 9.11 bigger than 9.9?"),
]
STRICT = re.compile(
    r"^<thinking>\n[^<]{1,400}(<reflection>\n[^<]{1,200}</reflection>\n[^<]{1,400}){0,3}"
    r"</thinking>\n\n<output>\n[^<]{1,400}</output>$"
)


@pytest.fixture(scope="module")
def backend() -> LlamaBackend:
    embedded_model_path()  # a clear skip message if the demo extra is missing
    return LlamaBackend(resolve_model("smollm2"), LoadOptions(n_ctx=2048))


def reply(backend: LlamaBackend, params: GenerationParams) -> tuple[str, Finished]:
    events = list(backend.stream(QUESTION, params))
    finished = events[-1]
    assert isinstance(finished, Finished)
    return "".join(e.text for e in events if isinstance(e, Delta)), finished


def decode(backend: LlamaBackend, sampler: TokenSampler, n: int) -> list[int]:
    """Up to `n` tokens of the QUESTION prompt, drawn by `sampler` one step at a time on the
    backend's context (the engine's loop, without its budget and stop handling)."""
    tokens = backend.tokenize_prompt(backend.render_prompt(QUESTION))
    out: list[int] = []
    try:
        backend._evaluate_prompt(tokens)
        while len(out) < n:
            token = sampler.sample()
            sampler.accept(token)
            if backend.vocab.is_eog(token):
                break
            out.append(token)
            backend.llm.eval([token])
    finally:
        sampler.close()
    return out


def generate(backend: LlamaBackend, params: GenerationParams, n: int, grammar=None) -> list[int]:
    """The same through `Llama.generate` (the grammar, if any, applied eagerly to every
    candidate)."""
    llm = backend.llm
    llm.reset()
    assert params.seed is not None
    llm.set_seed(params.seed)
    out: list[int] = []
    tokens = backend.tokenize_prompt(backend.render_prompt(QUESTION))
    for token in llm.generate(tokens, **sampling(params), grammar=grammar):
        if backend.vocab.is_eog(token):
            break
        out.append(token)
        if len(out) >= n:
            break
    return out


@pytest.mark.parametrize("temperature", [0.7, 1.3, 0.0])
def test_without_a_grammar_the_tokens_are_llama_generates(
    backend: LlamaBackend, temperature: float
) -> None:
    for seed in (1, 2):
        params = GenerationParams(seed=seed, temperature=temperature, top_p=0.9)
        mine = decode(backend, TokenSampler(backend.llm, sampling(params), seed), 48)
        assert mine == generate(backend, params, 48)


def test_greedy_lazy_grammar_equals_the_eager_grammar(backend: LlamaBackend) -> None:
    # With temperature 0 both pick the most likely token the grammar allows: lazily checking
    # the unconstrained pick first must not change a single token.
    from llama_cpp import LlamaGrammar

    params = GenerationParams(seed=1, temperature=0.0)
    text = backend._grammar_text
    lazy = TokenSampler(backend.llm, sampling(params), 1, text)
    mine = decode(backend, lazy, 160)
    eager = LlamaGrammar.from_string(text, verbose=False)
    assert mine == generate(backend, params, 160, grammar=eager)
    assert b"".join(backend.piece(t) for t in mine).startswith(b"<thinking>\n")


def test_every_seed_ends_in_the_complete_structure(backend: LlamaBackend) -> None:
    # Room for the grammar's longest structure: the default 1,024 tokens can cut it short.
    for seed in range(1, 6):
        params = GenerationParams(seed=seed, max_tokens=1900, strict_format=True)
        text, finished = reply(backend, params)
        assert finished.reason == "stop", (seed, text)  # EOS right after </output>
        assert STRICT.match(text), (seed, text)


def test_a_grammar_that_rejects_almost_every_pick_still_holds(backend: LlamaBackend) -> None:
    # The model wants to answer in words; this grammar allows only a number. Nearly every
    # unconstrained pick is rejected, so the resampling path runs at almost every step.
    grammar = 'root ::= "Answer: " [0-9]{1,4} ("." [0-9]{1,2})? "\\n"'
    shape = re.compile(r"^Answer: [0-9]{1,4}(\.[0-9]{1,2})?\n$")
    texts = set()
    for seed in range(24):
        params = GenerationParams(seed=seed, temperature=1.0)
        sampler = TokenSampler(backend.llm, sampling(params), seed, grammar)
        tokens = decode(backend, sampler, 40)
        assert sampler.grammar_rejections > 0
        text = b"".join(backend.piece(t) for t in tokens).decode()
        assert shape.match(text), (seed, text)
        texts.add(text)
    assert len(texts) > 1  # still sampling, not collapsing onto one answer


def test_the_same_seed_gives_the_same_strict_reply(backend: LlamaBackend) -> None:
    params = GenerationParams(seed=11, max_tokens=200, strict_format=True, temperature=0.9)
    first, _ = reply(backend, params)
    reply(backend, GenerationParams(seed=12, max_tokens=50, strict_format=True))  # in between
    again, _ = reply(backend, params)
    assert first == again
    other, _ = reply(backend, GenerationParams(seed=13, max_tokens=200, strict_format=True))
    assert other != first


def test_allows_reflects_the_grammar_state(backend: LlamaBackend) -> None:
    grammar = 'root ::= "yes" | "no"'
    params = GenerationParams(seed=1)
    sampler = TokenSampler(backend.llm, sampling(params), 1, grammar)
    try:
        yes = backend.vocab.tokenize(b"yes", add_bos=False)
        assert len(yes) == 1
        maybe = backend.vocab.tokenize(b" maybe", add_bos=False)[0]
        assert sampler.allows(yes[0])
        assert not sampler.allows(maybe)
        sampler.accept(yes[0])  # a forced token: the grammar is then complete
        assert not sampler.allows(yes[0])
        assert sampler.allows(backend.llm.token_eos())
    finally:
        sampler.close()


def test_the_strict_format_needs_an_answer_that_says_something(backend: LlamaBackend) -> None:
    # "Answer now" cut a 135M model's thinking where it went on with "<output>\n\n</output>":
    # an empty answer the grammar allowed (CI saw it in the chat app's Ctrl+G test).
    sampler = TokenSampler(
        backend.llm, sampling(GenerationParams(seed=1)), 1, backend._grammar_text
    )
    tokenize = backend.vocab.tokenize
    try:
        for token in tokenize(b"<thinking>\nHmm.</thinking>\n\n<output>\n\n", add_bos=False):
            assert sampler.allows(token)
            sampler.accept(token)
        closing = tokenize(b"</output>", add_bos=False)[0]
        assert not sampler.allows(closing)  # only whitespace so far: no closing yet
        word = tokenize(b"Yes", add_bos=False)[0]
        assert sampler.allows(word)
        sampler.accept(word)
        assert sampler.allows(closing)
    finally:
        sampler.close()


def test_a_broken_grammar_is_one_line() -> None:
    embedded_model_path()
    from reflectchat.core.engine.base import EngineError

    small = LlamaBackend(resolve_model("smollm2"), LoadOptions(n_ctx=256))
    with pytest.raises(EngineError, match="could not parse"):
        TokenSampler(small.llm, sampling(GenerationParams()), 1, "root ::= (")
