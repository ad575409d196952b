"""Saved KV caches per conversation (core/engine/kv_store.py): the file format's checks, atomic
writes and the size cap on their own, then restoring on the embedded SmolLM2 through real
llama-cpp-python, the way a new `ask -c` process does."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from reflectchat.core.chat.session import ChatSession
from reflectchat.core.engine.base import GenerationParams
from reflectchat.core.engine.kv_store import CacheIdentity, KVStore
from reflectchat.core.engine.llama import LlamaBackend, LoadOptions
from reflectchat.core.engine.llama_glue import LLAMA_LOG
from reflectchat.core.models.resolve import resolve_model
from tests.conftest import cli, run_env
from tests.support.gguf_fixtures import embedded_model_path

IDENTITY = CacheIdentity("/models/m.gguf", 1234, 5678, 2048, "0.3.36")


def store(tmp_path: Path, cap: int = 1 << 20) -> KVStore:
    return KVStore(tmp_path / "kv", cap=cap)


def test_saves_and_loads_tokens_and_state(tmp_path: Path) -> None:
    kv = store(tmp_path)
    assert kv.save(7, IDENTITY, [1, 2, 3, 70000], b"state-bytes")
    saved = kv.load(7, IDENTITY)
    assert saved is not None
    assert saved.tokens == [1, 2, 3, 70000]
    state = saved.read_state()
    assert state is not None and bytes(state) == b"state-bytes"
    assert kv.load(8, IDENTITY) is None  # no file: nothing to say
    assert not list(kv.root.glob("*.tmp"))  # written through a temporary file, renamed


def test_a_prefetch_reads_the_state_in_the_background(tmp_path: Path) -> None:
    kv = store(tmp_path)
    kv.save(7, IDENTITY, [5, 6, 7], b"state-bytes")
    pending = kv.prefetch(7, IDENTITY)
    read = pending.result()
    assert read is not None
    saved, state = read
    assert saved.tokens == [5, 6, 7] and state is not None and bytes(state) == b"state-bytes"
    kv.path_for(7).unlink()
    assert pending.result() == read  # read once, kept: the file is not opened again
    assert kv.prefetch(7, IDENTITY).result() is None  # no file: nothing, no note
    assert kv.prefetch(8, CacheIdentity(**{**IDENTITY.__dict__, "n_ctx": 1})).result() is None


def test_a_prefetch_waits_for_a_save_still_being_written(tmp_path: Path) -> None:
    kv = store(tmp_path)
    kv.save(3, IDENTITY, [1], b"old")
    gate = threading.Event()

    def slow_save() -> None:  # a 70B model's gigabytes take a while
        gate.wait(5)
        kv.save(3, IDENTITY, [1, 2], b"new")

    saving = threading.Thread(target=slow_save)
    saving.start()
    pending = kv.prefetch(3, IDENTITY, after=saving)  # returns at once, reads after the save
    gate.set()
    read = pending.result()
    assert read is not None and read[0].tokens == [1, 2] and bytes(read[1] or b"") == b"new"


@pytest.mark.parametrize(
    "change",
    [
        {"model_size": 1235},
        {"model_mtime_ns": 9999},
        {"n_ctx": 4096},
        {"model_path": "/models/other.gguf"},
        {"llama_cpp": "0.4.0"},
    ],
)
def test_a_cache_for_another_model_context_or_llama_cpp_is_ignored(
    tmp_path: Path, change: dict, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setattr(LLAMA_LOG, "echo", True)  # as --debug sets it
    kv = store(tmp_path)
    kv.save(1, IDENTITY, [1, 2], b"x")
    other = CacheIdentity(**{**IDENTITY.__dict__, **change})
    assert kv.load(1, other) is None
    err = capsys.readouterr().err
    assert "another model" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("via", ["load", "prefetch"])
@pytest.mark.parametrize(
    "damage",
    ["truncate", "flip_state", "garbage", "empty", "padded", "header"],
)
def test_a_damaged_or_foreign_file_is_ignored_with_a_debug_note(
    tmp_path: Path, damage: str, via: str, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setattr(LLAMA_LOG, "echo", True)
    kv = store(tmp_path)
    kv.save(1, IDENTITY, [1, 2, 3], b"0123456789")
    path = kv.path_for(1)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[:-3])
    elif damage == "flip_state":
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif damage == "garbage":
        path.write_bytes(os.urandom(300))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "padded":
        path.write_bytes(data + b"\0")
    elif damage == "header":
        path.write_bytes(data[:12] + b"{not json" + data[21:])
    if via == "load":
        saved = kv.load(1, IDENTITY)
        state = saved.read_state() if saved is not None else None
    else:  # read in the background thread, as `ask -c` does while the weights load
        read = kv.prefetch(1, IDENTITY).result()
        state = read[1] if read is not None else None
    assert state is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "debug:" in err  # one line, only under --debug
    monkeypatch.setattr(LLAMA_LOG, "echo", False)
    kv.load(1, IDENTITY)
    assert capsys.readouterr().err == ""


def test_least_recently_used_files_go_beyond_the_cap(tmp_path: Path) -> None:
    kv = store(tmp_path, cap=3700)  # three of these files (~1,200 bytes each) fit
    for conversation in (1, 2, 3):
        assert kv.save(conversation, IDENTITY, [1], b"x" * 900)
        os.utime(kv.path_for(conversation), (1000 + conversation, 1000 + conversation))
    saved = kv.load(1, IDENTITY)  # using conversation 1 makes it the most recent
    assert saved is not None
    kv.touch(saved)
    kv.save(4, IDENTITY, [1], b"x" * 900)
    assert sorted(p.name for p in kv.root.glob("*.kv")) == [
        "conversation-1.kv",
        "conversation-3.kv",
        "conversation-4.kv",
    ]
    assert not kv.save(5, IDENTITY, [1], b"x" * 4000)  # bigger than the cap: not written
    assert not kv.path_for(5).exists()
    assert not store(tmp_path, cap=0).save(6, IDENTITY, [1], b"x")  # 0: off


def test_the_cap_comes_from_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFLECTCHAT_KV_CACHE_MB", "3")
    assert KVStore().cap == 3 * 1024 * 1024
    monkeypatch.setenv("REFLECTCHAT_KV_CACHE_MB", "0")
    assert not KVStore().enabled


def test_history_rm_deletes_the_conversations_cache(isolated_home: Path) -> None:
    from reflectchat.core.chat.store import Store

    with Store() as s:
        conversation = s.create_conversation(title="t", model="m", system_prompt=None)
    kv = KVStore(cap=1 << 20)
    kv.save(conversation, IDENTITY, [1], b"x")
    kv.save(conversation + 1, IDENTITY, [1], b"x")
    done = subprocess.run(
        cli("history", "rm", str(conversation)), capture_output=True, text=True, env=run_env()
    )
    assert done.returncode == 0, done.stderr
    assert not kv.path_for(conversation).exists()
    assert kv.path_for(conversation + 1).exists()  # another conversation's stays


# -- on the embedded model ------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_path() -> Path:
    return embedded_model_path()


def new_process_backend() -> LlamaBackend:
    """What a new `ask -c` process starts from: a freshly loaded model."""
    return LlamaBackend(resolve_model("smollm2"), LoadOptions(n_ctx=2048))


PARAMS = GenerationParams(seed=4, max_tokens=40, temperature=0.8)


def two_turns(backend: LlamaBackend, conversation: int | None) -> tuple[ChatSession, str]:
    session = ChatSession(backend, PARAMS, system_prompt="You are concise.")
    session.conversation_id = conversation
    session.send("Name one kind of tea.").run()
    backend.wait_for_saves()  # written in the background after the reply
    return session, session.history[-1].content


def test_a_new_process_restores_the_saved_cache_and_replies_the_same(model_path: Path) -> None:
    first = new_process_backend()
    session, _ = two_turns(first, conversation=5)
    assert KVStore().path_for(5).exists()  # saved when the turn ended

    second = new_process_backend()
    resumed = ChatSession(second, PARAMS, system_prompt="You are concise.")
    resumed.conversation_id = 5
    resumed.history = list(session.history)
    restored = resumed.send("And one more?").run()
    # The reference: the first process going on with what its memory holds. (Out of the
    # conversation's cache, which now holds the second process's longer state and would
    # serve it better than its memory — both processes share the cache folder.)
    session.conversation_id = None
    in_memory = session.send("And one more?").run()
    assert in_memory.stats.cached_tokens > 0
    # Everything up to the new message came from the file, and the reply is the same one.
    assert restored.stats.cached_tokens == in_memory.stats.cached_tokens
    assert restored.raw_text == in_memory.raw_text

    plain = ChatSession(new_process_backend(), PARAMS, system_prompt="You are concise.")
    plain.history = session.history[:2]
    assert plain.send("And one more?").run().stats.cached_tokens == 0  # no conversation: none


def test_ask_continue_reads_the_saved_cache_while_the_weights_load(model_path: Path) -> None:
    session, _ = two_turns(new_process_backend(), conversation=9)
    reference = ChatSession(new_process_backend(), PARAMS, system_prompt="You are concise.")
    reference.conversation_id = 9
    reference.history = list(session.history)
    expected = reference.send("And one more?").run()
    assert expected.stats.cached_tokens > 0  # restored the usual way, inside the turn
    KVStore().forget(9)
    two_turns(new_process_backend(), conversation=9)  # the same first turn, saved again

    # What `ask -c` builds: the conversation named in the load options.
    backend = LlamaBackend(resolve_model("smollm2"), LoadOptions(n_ctx=2048, conversation=9))
    backend._pending.result()  # the background read, begun before the weights loaded
    KVStore().forget(9)  # so the turn cannot be reading the file itself
    resumed = ChatSession(backend, PARAMS, system_prompt="You are concise.")
    resumed.conversation_id = 9
    resumed.history = list(session.history)
    got = resumed.send("And one more?").run()
    assert got.stats.cached_tokens == expected.stats.cached_tokens
    assert got.raw_text == expected.raw_text


def test_a_cache_that_does_not_fit_is_not_used(
    model_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    session, _ = two_turns(new_process_backend(), conversation=6)
    kv = KVStore()
    path = kv.path_for(6)
    original = path.read_bytes()
    # another context size: a foreign identity, evaluated from scratch
    other_ctx = LlamaBackend(resolve_model("smollm2"), LoadOptions(n_ctx=1024))
    again = ChatSession(other_ctx, PARAMS, system_prompt="You are concise.")
    again.conversation_id = 6
    again.history = session.history[:2]
    assert again.send("And one more?").run().stats.cached_tokens == 0
    other_ctx.wait_for_saves()
    # a damaged state: refused by the checksum, evaluated from scratch, one debug line
    data = bytearray(original)  # (the 1,024-token run saved its own state since)
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    monkeypatch.setattr(LLAMA_LOG, "echo", True)
    damaged = ChatSession(new_process_backend(), PARAMS, system_prompt="You are concise.")
    damaged.conversation_id = 6
    damaged.history = session.history[:2]
    result = damaged.send("And one more?").run()
    assert result.stats.cached_tokens == 0
    assert "damaged" in capsys.readouterr().err


def test_ask_continue_in_new_processes_starts_from_the_saved_cache(model_path: Path) -> None:
    def ask(*words: str, env: dict[str, str] | None = None) -> dict:
        done = subprocess.run(
            cli("ask", *words, "--seed", "2", "--max-tokens", "24", "--json"),
            capture_output=True,
            text=True,
            env=run_env(**(env or {})),
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    first = ask("Say hello.")
    second = ask("-c", "Say it again.")
    assert second["conversation_id"] == first["conversation_id"]
    # All of the first prompt but the opener the template pre-filled (<thinking> for the demo
    # model: the stored history holds the answer only, so the prompts part ways there).
    assert second["stats"]["cached_tokens"] >= first["stats"]["prompt_tokens"] - 8
    off = ask("-c", "Say it again.", env={"REFLECTCHAT_KV_CACHE_MB": "0"})  # caching off
    assert off["stats"]["cached_tokens"] == 0
