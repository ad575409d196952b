"""The run itself, on the scripted backend: conditions become session options through the
setup path, every item is a fresh single-turn session, nothing reaches the history unless a
store is given, scored items are skipped on resume, and a cancel stops without scoring the
item in flight."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reflectchat.core.chat.prompts import REFLECTION_SYSTEM_PROMPT
from reflectchat.core.chat.setup import SessionOptions
from reflectchat.core.chat.store import Store
from reflectchat.core.engine.base import (
    CancelToken,
    ContextOverflowError,
    GenerationParams,
    Message,
    StreamEvent,
)
from reflectchat.core.errors import ModelError
from reflectchat.core.eval.runner import (
    Condition,
    EvalRun,
    Loaded,
    builtin_conditions,
    condition_settings,
    thinking_tokens,
)
from reflectchat.core.eval.suites import generate
from reflectchat.core.models.resolve import load_catalog
from reflectchat.core.reply.stream import result_from_text
from reflectchat.testing.scripted_backend import ScriptedBackend

GOOD = "<thinking>Alice and her sisters.<reflection>Alice counts.</reflection></thinking>" \
       "<output>Answer: {}</output>"  # fmt: skip


class Recording(ScriptedBackend):
    """Remembers the sampling parameters of each call too."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.params: list[GenerationParams] = []

    def stream(
        self, messages: list[Message], params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[StreamEvent]:
        self.params.append(params)
        return super().stream(messages, params, cancel)


def _loader(backend: ScriptedBackend, loads: list[str | None] | None = None):
    entry = load_catalog()["smollm2"]  # a reflection-style model whose default is strict format

    def load(options: SessionOptions, progress: object = None) -> Loaded:
        if loads is not None:
            loads.append(options.model)
        return Loaded(backend, entry, options.model or "smollm2")

    return load


def test_conditions_are_session_options_and_each_item_is_one_fresh_turn() -> None:
    items = generate("aiw", 3, seed=0)
    backend = Recording([GOOD.format(i.answer) for i in items] * 2)
    run = EvalRun(SessionOptions(seed=0), builtin_conditions(), items, load=_loader(backend))
    records = run.run([None])
    assert [(r["condition"], r["id"]) for r in records] == [
        (c, i.id) for c in ("reflect", "plain") for i in items
    ]
    reflect, plain = backend.calls[:3], backend.calls[3:]
    for calls, system in ((reflect, REFLECTION_SYSTEM_PROMPT), (plain, None)):
        for messages, item in zip(calls, items, strict=True):
            # only this item's question: no earlier item, no earlier answer
            users = [m for m in messages if m.role == "user"]
            assert [m.content for m in users] == [item.prompt]
            assert [m.role for m in messages] == (["system", "user"] if system else ["user"])
            if system:
                assert messages[0].content == system
    assert [p.strict_format for p in backend.params] == [True] * 3 + [False] * 3
    assert all(p.seed == 0 for p in backend.params)
    assert all(r["correct"] for r in records[:3])
    first = records[0]
    assert first["reflections"] == 1 and first["system_prompt"] == REFLECTION_SYSTEM_PROMPT
    assert first["raw"].startswith("<thinking>") and first["answer"] == f"Answer: {items[0].answer}"
    assert records[3]["system_prompt"] is None and records[3]["params"]["strict_format"] is False


def test_the_mapping_a_think_switch_plugs_into() -> None:
    assert condition_settings("reflect") == {}
    plain = condition_settings("plain")
    assert plain is not None
    assert plain.items() >= {"no_system": True, "system": None, "strict_format": False}.items()
    # with thinking control in the session options, plain turns the model's thinking off too
    assert plain.get("think", False) is False
    assert condition_settings("hot") is None
    hot = Condition("hot", {"temperature": 1.5, "system": "Be brief."})
    options = hot.options(SessionOptions(temperature=0.2, max_tokens=64))
    assert (options.temperature, options.system, options.max_tokens) == (1.5, "Be brief.", 64)


def test_reflect_asks_a_model_without_a_reasoning_prompt_to_reflect() -> None:
    items = generate("aiw", 1, seed=0)
    backend = ScriptedBackend(["Answer: 1"])

    def load(options: SessionOptions, progress: object = None) -> Loaded:
        return Loaded(backend, None, "served-model")  # no catalog entry: no prompt of its own

    conditions = [*builtin_conditions(), Condition("mine", {"system": "Be brief."})]
    EvalRun(SessionOptions(), conditions, items, load=load).run([None])
    systems = [m[0].content if m[0].role == "system" else None for m in backend.calls]
    assert systems == [REFLECTION_SYSTEM_PROMPT, None, "Be brief."]
    # a system prompt chosen for the run is kept, in reflect too
    backend.calls.clear()
    EvalRun(SessionOptions(no_system=True), builtin_conditions(["reflect"]), items,
            load=load).run([None])  # fmt: skip
    assert [m.role for m in backend.calls[0]] == ["user"]


def test_nothing_goes_to_the_history_unless_a_store_is_given(isolated_home: Path) -> None:
    items = generate("letters", 2, seed=0)
    backend = ScriptedBackend(["Answer: 1"])
    EvalRun(SessionOptions(), builtin_conditions(), items, load=_loader(backend)).run([None])
    with Store() as store:
        assert store.list_conversations() == []
        run = EvalRun(SessionOptions(), builtin_conditions(["reflect"]), items, store=store,
                      load=_loader(backend))  # fmt: skip
        run.run([None])
        saved = store.list_conversations()
        assert len(saved) == 2  # one conversation per item
        assert all(len(store.get_conversation(c.id).messages) == 2 for c in saved)


def test_done_items_are_skipped_and_models_load_one_after_another() -> None:
    items = generate("decimals", 3, seed=0)
    backend = ScriptedBackend(["Answer: yes"])
    loads: list[str | None] = []
    done = {("a", "reflect", items[0].id), ("b", "plain", items[2].id)}
    run = EvalRun(SessionOptions(), builtin_conditions(), items, done=set(done),
                  load=_loader(backend, loads))  # fmt: skip
    assert run.pending(["a", "b"]) == 2 * 2 * 3 - 2
    records = run.run(["a", "b"])
    assert loads == ["a", "b"]
    keys = [(r["model"], r["condition"], r["id"]) for r in records]
    assert len(keys) == 10 and not set(keys) & done


def test_cancel_stops_without_scoring_the_reply_in_flight() -> None:
    items = generate("arith", 4, seed=0)
    cancel = CancelToken()

    class CancelsMidReply(ScriptedBackend):
        def stream(self, messages, params, cancel_token=None):
            for n, event in enumerate(super().stream(messages, params, cancel_token)):
                if len(self.calls) == 3 and n == 2:
                    cancel.cancel()  # Ctrl+C while the third reply streams
                yield event

    backend = CancelsMidReply([["<thinking>", "a", "b", "c", "</thinking>", "Answer: 1"]])
    run = EvalRun(SessionOptions(), builtin_conditions(), items, cancel=cancel,
                  load=_loader(backend))  # fmt: skip
    records = run.run(["m", "n"])
    assert [r["id"] for r in records] == [items[0].id, items[1].id]
    assert len(backend.calls) == 3  # nothing asked after the cancel, nor of the second model


def test_ctrl_c_while_a_model_loads_stops_the_load_and_the_run() -> None:
    cancel = CancelToken()
    asked: list[bool] = []

    def load(options: SessionOptions, progress) -> Loaded:
        asked.append(progress(0.1))  # loading goes on
        cancel.cancel()  # Ctrl+C
        if progress(0.2) is False:  # llama.cpp aborts the load and it fails
            raise ModelError("llama.cpp could not load big.gguf: aborted")
        raise AssertionError("the load was not told to stop")

    run = EvalRun(SessionOptions(), builtin_conditions(), generate("aiw", 2, 0), cancel=cancel,
                  load=load)  # fmt: skip
    assert run.run(["big", "bigger"]) == [] and asked == [True]

    def fails(options: SessionOptions, progress: object) -> Loaded:
        raise ModelError("no such model")

    with pytest.raises(ModelError):  # a failure that is not a Ctrl+C is still one
        EvalRun(SessionOptions(), builtin_conditions(), generate("aiw", 2, 0), load=fails).run(
            ["x"]
        )


def test_a_prompt_too_long_for_the_context_is_scored_wrong_and_the_run_goes_on() -> None:
    items = generate("letters", 2, seed=0)

    class Overflows(ScriptedBackend):
        def stream(self, messages, params, cancel=None):
            if len(self.calls) == 0:
                self.calls.append(messages)
                raise ContextOverflowError("the message needs 9000 tokens")
            return super().stream(messages, params, cancel)

    backend = Overflows([f"Answer: {items[1].answer}"])
    run = EvalRun(SessionOptions(), builtin_conditions(["plain"]), items, load=_loader(backend))
    first, second = run.run([None])
    assert first["extracted"] is None and not first["correct"]
    assert first["finish_reason"] == "error" and "9000 tokens" in first["error"]
    assert second["correct"]


@pytest.mark.parametrize(
    ("raw", "tokens", "expected"),
    [
        ("<thinking>" + "x" * 80 + "</thinking><output>" + "y" * 20 + "</output>", 100, 80),
        ("<thinking>ab<reflection>cd</reflection></thinking>" + "e" * 4, 40, 20),
        ("just an answer", 10, 0),
        ("", 0, 0),
    ],
)
def test_thinking_tokens_are_the_reasoning_share(raw: str, tokens: int, expected: int) -> None:
    result = result_from_text(raw)
    result.stats.completion_tokens = tokens
    assert thinking_tokens(result) == expected
