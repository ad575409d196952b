"""The local engine picks the reasoning format from the GGUF, and harmony's markers — CONTROL
tokens, which llama-cpp-python's completion APIs would drop — reach the parser intact. Checked on
copies of the embedded model whose spare vocabulary entries are renamed to harmony's tokens, or
whose chat template is another family's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reflectchat.core.engine.base import GenerationParams, Message
from reflectchat.core.engine.llama import LlamaBackend, LoadOptions
from reflectchat.core.models.resolve import resolve_model
from reflectchat.core.reply.stream import ReplyStream
from tests.support.gguf_fixtures import (
    HARMONY_TOKENS,
    embedded_model_path,
    write_chat_template_gguf,
    write_control_token_gguf,
)

USER = [Message("user", "What is 2+2?")]


@pytest.fixture(scope="module")
def harmony(tmp_path_factory: pytest.TempPathFactory) -> LlamaBackend:
    dst = tmp_path_factory.mktemp("gguf") / "harmony-tokens-smollm2.gguf"
    path = write_control_token_gguf(embedded_model_path(), dst, HARMONY_TOKENS)
    return LlamaBackend(resolve_model(str(path)), LoadOptions(n_ctx=512))


def forced(backend: LlamaBackend, pieces: list[str]) -> Iterator[int]:
    """Token ids for `pieces`: a harmony token as its one control id, other text tokenized."""
    ids = {text: 3 + i for i, text in enumerate(HARMONY_TOKENS)}
    for piece in pieces:
        if piece in ids:
            yield ids[piece]
        else:
            yield from backend.vocab.tokenize(piece.encode(), add_bos=False)
    while True:
        yield 2  # <|im_end|>: end of generation


def test_harmony_is_detected_from_its_control_tokens(harmony: LlamaBackend) -> None:
    assert harmony.reasoning.format.name == "harmony"
    assert "<|channel|>" in harmony.reasoning.reason
    for text in HARMONY_TOKENS:
        ids = harmony.vocab.tokenize(text.encode(), add_bos=False)
        assert len(ids) == 1 and harmony.vocab.is_special(ids[0])


def test_harmony_control_tokens_reach_the_parser(
    harmony: LlamaBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = forced(
        harmony,
        [
            "<|channel|>",
            "analysis",
            "<|message|>",
            "Two and two make four.",
            "<|end|>",
            "<|start|>",
            "assistant",
            "<|channel|>",
            "final",
            "<|message|>",
            "4",
            "<|return|>",
            "<|start|>",
            "user",
            "<|message|>",
            "never shown",
        ],
    )
    monkeypatch.setattr(harmony, "_next_token", lambda sampler: next(script))
    result = ReplyStream(harmony, USER, GenerationParams(max_tokens=64, seed=1)).run()
    assert "<|channel|>analysis<|message|>" in result.raw_text  # the markers survived decoding
    assert result.parsed.format == "harmony"
    assert result.parsed.thinking == "Two and two make four."
    assert result.parsed.answer == "4"
    assert result.finish_reason == "stop"
    assert "never shown" not in result.raw_text  # the engine stopped at the turn's end


def test_format_flag_overrides_detection(
    harmony: LlamaBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = forced(harmony, ["<think>", "hmm", "</think>", "ok"])
    monkeypatch.setattr(harmony, "_next_token", lambda sampler: next(script))
    params = GenerationParams(max_tokens=32, seed=1, reasoning_format="think")
    result = ReplyStream(harmony, USER, params).run()
    assert result.parsed.format == "think"
    assert (result.parsed.thinking, result.parsed.answer) == ("hmm", "ok")


@pytest.mark.parametrize(
    ("template", "expected", "prefill"),
    [
        (
            "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
            "{% endfor %}<|im_start|>assistant\n<think>\n",
            "think",
            "<think>",
        ),
        (
            "{% for m in messages %}[INST]{{ m.content }}[/INST]{% endfor %}"
            "{# [THINK] … [/THINK] #}",
            "magistral",
            "",
        ),
    ],
)
def test_format_and_prefill_come_from_the_chat_template(
    tmp_path: Path, template: str, expected: str, prefill: str
) -> None:
    path = write_chat_template_gguf(embedded_model_path(), tmp_path / "t.gguf", template)
    backend = LlamaBackend(resolve_model(str(path)), LoadOptions(n_ctx=512))
    assert backend.reasoning.format.name == expected
    assert "chat template" in backend.reasoning.reason
    events = backend.stream(USER, GenerationParams(max_tokens=1, seed=1))
    started = next(events)
    events.close()
    assert started.format == expected  # type: ignore[union-attr]
    assert started.prefill == prefill  # type: ignore[union-attr]


def test_the_demo_model_uses_its_catalog_format() -> None:
    backend = LlamaBackend(resolve_model("smollm2"), LoadOptions(n_ctx=512))
    assert backend.reasoning.format.name == "reflection"
    assert backend.reasoning.reason == "the catalog entry says so"


def test_models_info_names_the_format_from_the_header(harmony: LlamaBackend) -> None:
    from reflectchat.core.models.info import model_info

    info = model_info(resolve_model(str(harmony.model.path)))
    assert info["reasoning_format"] == {
        "name": "harmony",
        "reason": "special token <|channel|> in the vocabulary",
    }
    assert harmony.reasoning.reason == info["reasoning_format"]["reason"]  # one detection path
