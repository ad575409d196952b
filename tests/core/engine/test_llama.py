"""The local engine on a real GGUF through real llama-cpp-python (the embedded SmolLM2-135M)."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import threading
import time
from pathlib import Path

import pytest

from reflectchat.core.chat.prompts import REFLECTION_SYSTEM_PROMPT
from reflectchat.core.engine.base import (
    CancelToken,
    ContextOverflowError,
    Delta,
    EngineError,
    Finished,
    GenerationParams,
    Message,
    Started,
)
from reflectchat.core.engine.llama import (
    LlamaBackend,
    LoadOptions,
    ModelLoadError,
    resolve_gpu_layers,
)
from reflectchat.core.models.resolve import ResolvedModel, resolve_model
from reflectchat.core.reply.stream import ReplyStream
from tests.conftest import cli, run_env
from tests.support.gguf_fixtures import embedded_model_path, write_chat_template_gguf

QUESTION = [
    Message("system", REFLECTION_SYSTEM_PROMPT),
    Message("user", "Is 9.11 bigger than 9.9?"),
]
STRICT = re.compile(
    r"^<thinking>\n[^<]+(<reflection>\n[^<]+</reflection>\n[^<]+){0,3}</thinking>\n\n"
    r"<output>\n[^<]+</output>$"
)


@pytest.fixture(scope="module")
def backend() -> LlamaBackend:
    embedded_model_path()  # a clear skip message if the demo extra is missing
    return LlamaBackend(resolve_model("smollm2"), LoadOptions(n_ctx=2048))


def collect(backend: LlamaBackend, params: GenerationParams, messages=QUESTION, cancel=None):
    events = list(backend.stream(messages, params, cancel))
    text = "".join(e.text for e in events if isinstance(e, Delta))
    return events, text


def test_loads_the_embedded_model(backend: LlamaBackend) -> None:
    assert backend.header.architecture == "llama"
    assert backend.n_ctx == 2048
    assert "<|im_start|>" in backend.chat_template
    prompt = backend.render_prompt(QUESTION)
    assert prompt.startswith("<|im_start|>system\n" + REFLECTION_SYSTEM_PROMPT)
    assert prompt.endswith("<|im_start|>assistant\n")


def test_streams_deltas_and_reports_stats(backend: LlamaBackend) -> None:
    events, text = collect(backend, GenerationParams(seed=1, max_tokens=24))
    assert isinstance(events[0], Started)
    assert events[0].prompt_tokens > 20
    assert isinstance(events[-1], Finished)
    assert all(isinstance(e, Delta) for e in events[1:-1])
    assert text
    stats = events[-1].stats
    assert 1 <= stats.completion_tokens <= 24
    assert stats.prompt_tokens == events[0].prompt_tokens
    assert 0 < stats.ttft_s <= stats.total_s


def test_same_seed_same_output(backend: LlamaBackend) -> None:
    params = GenerationParams(seed=42, max_tokens=40, temperature=0.9)
    _, first = collect(backend, params)
    _, again = collect(backend, params)
    assert first == again
    fresh = LlamaBackend(resolve_model("smollm2"), LoadOptions(n_ctx=2048))
    _, from_fresh = collect(fresh, params)
    assert from_fresh == first
    others = {
        collect(backend, GenerationParams(seed=s, max_tokens=40, temperature=0.9))[1]
        for s in (1, 2, 3)
    }
    assert len(others | {first}) > 1  # the seed really drives sampling


def test_max_tokens_gives_length(backend: LlamaBackend) -> None:
    events, _ = collect(backend, GenerationParams(seed=3, max_tokens=5, strict_format=True))
    assert events[-1].reason == "length"
    assert events[-1].stats.completion_tokens == 5


def test_strict_format_gives_the_structure_and_stops_at_eos(backend: LlamaBackend) -> None:
    events, text = collect(backend, GenerationParams(seed=1, max_tokens=1024, strict_format=True))
    assert events[-1].reason == "stop", text  # EOS after </output>, not the token limit
    assert STRICT.match(text), text
    result = ReplyStream(backend, QUESTION, GenerationParams(seed=5, strict_format=True)).run()
    assert result.parsed.thinking
    assert result.parsed.answer
    assert result.parsed.sections[0].kind == "thinking"
    assert result.parsed.sections[-1].kind == "output"


def test_cancel_stops_within_one_token_and_model_stays_usable(backend: LlamaBackend) -> None:
    params = GenerationParams(seed=7, max_tokens=60, strict_format=True)
    _, reference = collect(backend, params)
    cancel = CancelToken()
    deltas = 0
    finished = None
    for event in backend.stream(QUESTION, params, cancel):
        if isinstance(event, Delta):
            deltas += 1
            if deltas == 5:
                cancel.cancel()
        elif isinstance(event, Finished):
            finished = event
    assert finished is not None and finished.reason == "cancelled"
    assert deltas == 5  # nothing more was produced after the cancel
    assert finished.stats.completion_tokens <= 6
    # the model is still usable, and the same seed gives the same reply as before the cancel
    _, after = collect(backend, params)
    assert after == reference


def test_prompt_too_long_for_context(backend: LlamaBackend) -> None:
    small = LlamaBackend(resolve_model("smollm2"), LoadOptions(n_ctx=64))
    with pytest.raises(ContextOverflowError, match="context holds 64"):
        collect(small, GenerationParams(), [Message("user", "word " * 200)])


def test_split_utf8_characters_are_reassembled(backend: LlamaBackend) -> None:
    text = "naïve café 🙂 世界 ∑ — ok"
    ids = backend.llm.tokenize(text.encode(), add_bos=False, special=False)
    pieces = [backend.piece(t) for t in ids]
    partial = []
    for p in pieces:
        try:
            p.decode("utf-8")
        except UnicodeDecodeError:
            partial.append(p)
    assert partial, "expected the byte-level BPE to split at least one character"
    decoder = backend.decoder()
    out = "".join(decoder.decode(t) for t in ids) + decoder.flush()
    assert out == text
    assert "\ufffd" not in out


def test_gpu_layers_resolution() -> None:
    assert resolve_gpu_layers("all") == -1
    assert resolve_gpu_layers("7") == 7
    assert resolve_gpu_layers("auto") in (0, -1)
    with pytest.raises(ValueError):
        resolve_gpu_layers("many")


def test_unknown_file_model_has_no_catalog_entry(tmp_path) -> None:
    copy = tmp_path / "my-model.gguf"
    copy.symlink_to(embedded_model_path())
    model = resolve_model(str(copy))
    assert isinstance(model, ResolvedModel) and model.entry is None


def test_loads_and_generates_without_extra_buffer_types(monkeypatch: pytest.MonkeyPatch) -> None:
    # The path taken on llama.cpp builds with AMX kernels (they crash on some Xeon VMs).
    import reflectchat.core.engine.llama as lb

    monkeypatch.setattr(lb, "extra_buffers_allowed", lambda: False)
    seen: list[float] = []
    plain = LlamaBackend(resolve_model("smollm2"), LoadOptions(n_ctx=512, progress=seen.append))
    events, text = collect(plain, GenerationParams(seed=1, max_tokens=8))
    assert events[-1].stats.completion_tokens == 8 and text
    assert seen and seen[-1] == 1.0  # the load-progress callback ran too


def test_extra_buffers_follow_the_build_and_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    import reflectchat.core.engine.llama_glue as glue

    monkeypatch.setattr(glue, "amx_build", lambda: True)
    monkeypatch.delenv("REFLECTCHAT_AMX", raising=False)
    assert glue.extra_buffers_allowed() is False
    monkeypatch.setenv("REFLECTCHAT_AMX", "1")
    assert glue.extra_buffers_allowed() is True
    monkeypatch.setattr(glue, "amx_build", lambda: False)
    monkeypatch.delenv("REFLECTCHAT_AMX")
    assert glue.extra_buffers_allowed() is True


# -- issue 13: hostile templates, impossible contexts ------------------------------------------

BOMB = "{{ 'x' * 200000000 }}"
# Harmless for a lone user turn (what the load tries), explosive once a system prompt is there.
LATE_BOMB = (
    "{% if messages[0]['role'] == 'system' %}{{ 'x' * 200000000 }}{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}<|im_start|>assistant\n"
)


@pytest.fixture(scope="module")
def bomb_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("bomb") / "bomb-smollm2.gguf"
    return write_chat_template_gguf(embedded_model_path(), dst, BOMB)


def test_a_hostile_chat_template_fails_the_load_quickly(bomb_gguf: Path) -> None:
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as info:
        LlamaBackend(resolve_model(str(bomb_gguf)), LoadOptions(n_ctx=2048))
    assert time.monotonic() - start < 20  # the load itself, and the template refused in ms
    message = str(info.value)
    assert "\n" not in message
    assert "chat template in bomb-smollm2.gguf is unsafe" in message
    assert "more than" in message and "another copy" in message


def test_ask_with_a_hostile_template_is_one_line_and_bounded_in_memory(
    bomb_gguf: Path, tmp_path: Path
) -> None:
    def cap_memory() -> None:  # were the template rendered, the child dies instead of the host
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))

    out_path, err_path = tmp_path / "out", tmp_path / "err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(
            cli("ask", "hi", "-m", str(bomb_gguf)),
            stdout=out,
            stderr=err,
            env=run_env(),
            preexec_fn=cap_memory,
        )
    killer = threading.Timer(120, proc.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)  # wait4: this child's own peak memory
    finally:
        killer.cancel()
    stderr = err_path.read_text()
    assert os.waitstatus_to_exitcode(status) == 2, stderr
    assert out_path.read_text() == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "chat template" in lines[0] and "unsafe" in lines[0], stderr
    assert "Traceback" not in stderr
    assert usage.ru_maxrss < 1 << 20, usage.ru_maxrss  # < 1 GB: the 200 MB string never existed


def test_a_template_that_explodes_later_fails_that_prompt_only(tmp_path: Path) -> None:
    path = write_chat_template_gguf(embedded_model_path(), tmp_path / "late.gguf", LATE_BOMB)
    late = LlamaBackend(resolve_model(str(path)), LoadOptions(n_ctx=512))
    user_only = [Message("user", "hi")]
    expected = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant"  # Jinja drops the last \n
    assert late.render_prompt(user_only) == expected
    start = time.monotonic()
    with pytest.raises(EngineError, match=r"chat template in late\.gguf is unsafe") as info:
        list(late.stream(QUESTION, GenerationParams(max_tokens=4)))
    assert time.monotonic() - start < 2
    assert "\n" not in str(info.value)
    events, text = collect(late, GenerationParams(seed=1, max_tokens=4), user_only)
    assert events[-1].stats.completion_tokens == 4 and text  # the model is still usable


def test_a_context_too_big_to_allocate_says_so() -> None:
    # 10M tokens of SmolLM2's KV cache is ~230 GB: --force skips the fit check, llama.cpp fails.
    with pytest.raises(ModelLoadError) as info:
        LlamaBackend(resolve_model("smollm2"), LoadOptions(n_ctx=10_000_000, force=True))
    message = str(info.value)
    assert "could not allocate a 10,000,000-token context" in message, message
    assert re.search(r"try --ctx \d+ or smaller", message), message
    assert "damaged" not in message and "download" not in message.lower()


def test_ask_with_a_context_too_big_to_allocate_is_one_line() -> None:
    proc = subprocess.run(
        cli("ask", "hi", "--ctx", "10000000", "--force"),
        capture_output=True,
        text=True,
        env=run_env(),
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "could not allocate a 10,000,000-token context" in lines[0]
    assert "--ctx" in lines[0] and "damaged" not in lines[0]


def test_the_context_is_capped_at_the_trained_one_unless_forced() -> None:
    assert LlamaBackend(resolve_model("smollm2"), LoadOptions(n_ctx=16384)).n_ctx == 8192
    forced = LlamaBackend(resolve_model("smollm2"), LoadOptions(n_ctx=16384, force=True))
    assert forced.n_ctx == 16384 and forced.describe().n_ctx == 16384
    with pytest.raises(ModelLoadError, match="--ctx must be between 1 and 16,777,216"):
        LlamaBackend(resolve_model("smollm2"), LoadOptions(n_ctx=1 << 32, force=True))
