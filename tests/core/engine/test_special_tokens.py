"""Reflection 70B's tags are control tokens. llama-cpp-python's completion APIs drop control
tokens, so every tag would vanish; the engine must keep them. Checked on a copy of the embedded
model whose spare vocabulary entries 3..8 are the six tags with the CONTROL token type."""

from __future__ import annotations

from pathlib import Path

import pytest

from reflectchat.core.chat.prompts import REFLECTION_SYSTEM_PROMPT
from reflectchat.core.engine.base import GenerationParams, Message
from reflectchat.core.engine.llama import LlamaBackend, LoadOptions
from reflectchat.core.models.resolve import resolve_model
from reflectchat.core.reply.stream import ReplyStream
from tests.support.gguf_fixtures import (
    REFLECTION_TAG_IDS,
    REFLECTION_TAGS,
    embedded_model_path,
    write_reflection_token_gguf,
)


@pytest.fixture(scope="module")
def reflection_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("gguf") / "reflection-tokens-smollm2.gguf"
    return write_reflection_token_gguf(embedded_model_path(), dst)


@pytest.fixture(scope="module")
def backend(reflection_gguf: Path) -> LlamaBackend:
    return LlamaBackend(resolve_model(str(reflection_gguf)), LoadOptions(n_ctx=1024))


def test_the_tag_loss_bug_is_real(backend: LlamaBackend) -> None:
    llm = backend.llm
    assert llm.detokenize([3, 4], special=False) == b""
    assert llm.detokenize([3, 4], special=True) == b"<thinking></thinking>"
    out = llm.create_completion("Hello", max_tokens=3, logit_bias={3: 100.0}, temperature=0)
    assert out["choices"][0]["text"] == ""  # three <thinking> tokens, silently dropped


def test_engine_finds_the_tags_as_special_tokens(backend: LlamaBackend) -> None:
    assert backend.special_tags == dict(zip(REFLECTION_TAGS, REFLECTION_TAG_IDS, strict=True))
    for tag, token in backend.special_tags.items():
        assert backend.piece(token) == tag.encode()


def test_tags_reach_the_parser(backend: LlamaBackend) -> None:
    # The strict-format grammar names the control tokens by id, so decoding is forced through
    # them; the engine must detokenize them as text for the parser to see any structure.
    messages = [Message("system", REFLECTION_SYSTEM_PROMPT), Message("user", "Is 9.11 > 9.9?")]
    params = GenerationParams(seed=4, max_tokens=1024, strict_format=True)
    result = ReplyStream(backend, messages, params).run()
    raw = result.raw_text
    for tag in REFLECTION_TAGS[:4]:
        assert raw.count(tag) == 1, raw
    assert raw.startswith("<thinking>\n")
    assert raw.endswith("</output>")
    assert result.finish_reason == "stop"
    kinds = [s.kind for s in result.parsed.sections]
    assert kinds[0] == "thinking" and kinds[-1] == "output"
    assert result.parsed.thinking and result.parsed.answer
    assert "<" not in result.parsed.answer
