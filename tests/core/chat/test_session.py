"""Multi-turn sessions: what goes back to the model, the context budget, the KV cache, storage."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reflectchat.core.chat.session import ChatSession, HistoryTurn
from reflectchat.core.chat.store import Store
from reflectchat.core.engine.base import ContextOverflowError, GenerationParams, Message
from reflectchat.core.engine.llama import LlamaBackend, LoadOptions
from reflectchat.core.models.resolve import resolve_model
from reflectchat.testing.scripted_backend import ScriptedBackend
from tests.conftest import run_env
from tests.support.gguf_fixtures import embedded_model_path

REPLY_1 = "<thinking>Two plus two.<reflection>Yes, four.</reflection></thinking><output>4</output>"
REPLY_2 = "<thinking>Double it.</thinking><output>8</output>"


def test_earlier_replies_go_back_as_answers_only() -> None:
    backend = ScriptedBackend([REPLY_1, REPLY_2, "ok"])
    session = ChatSession(backend, GenerationParams(), system_prompt="SYS")
    session.send("What is 2+2?").run()
    session.send("Double it.").run()
    session.send("Thanks").run()
    assert backend.calls[2] == [
        Message("system", "SYS"),
        Message("user", "What is 2+2?"),
        Message("assistant", "4"),
        Message("user", "Double it."),
        Message("assistant", "8"),
        Message("user", "Thanks"),
    ]


def test_keep_reasoning_sends_replies_whole() -> None:
    backend = ScriptedBackend([REPLY_1, "ok"])
    session = ChatSession(backend, GenerationParams(), keep_reasoning=True)
    session.send("What is 2+2?").run()
    session.send("And?").run()
    assert backend.calls[1][1] == Message("assistant", REPLY_1)


def test_a_reply_cancelled_before_its_answer_is_not_sent_back() -> None:
    backend = ScriptedBackend([list("<thinking>long thought"), "ok"])
    session = ChatSession(backend, GenerationParams())
    stream = session.send("Q1")
    for i, _ in enumerate(stream):
        if i == 3:
            stream.cancel.cancel()
    assert stream.result.finish_reason == "cancelled"
    session.send("Q2").run()
    assert backend.calls[1] == [Message("user", "Q1"), Message("user", "Q2")]


def test_oldest_turns_are_dropped_to_fit_and_counted() -> None:
    # stand-in tokenizer: one token per word, four per message
    backend = ScriptedBackend(["answer " * 10], n_ctx=120)
    params = GenerationParams(max_tokens=40)
    session = ChatSession(backend, params, system_prompt="be brief")
    for i in range(6):
        session.send(f"question {i} " + "word " * 8).run()
    plan = session.last_plan
    assert plan.dropped_turns > 0
    assert plan.prompt_tokens + params.max_tokens <= 120
    sent = backend.calls[-1]
    assert sent[0] == Message("system", "be brief")  # never dropped
    assert sent[-1].content.startswith("question 5")  # never dropped
    assert not any(m.content.startswith("question 0") for m in sent)
    # and what was kept is the most recent history, in order
    users = [m.content.split()[1] for m in sent if m.role == "user"]
    assert users == sorted(users) and users[-1] == "5"


def test_a_message_that_cannot_fit_is_an_error_with_numbers_and_nothing_is_stored(
    tmp_path,
) -> None:
    backend = ScriptedBackend(["x"], n_ctx=50)
    with Store(tmp_path / "h.sqlite3") as store:
        session = ChatSession(backend, GenerationParams(max_tokens=20), store=store)
        with pytest.raises(ContextOverflowError, match=r"needs \d+ tokens.*holds 50"):
            session.send("word " * 40)
        assert store.list_conversations() == []
        assert backend.calls == []


def test_messages_are_stored_with_sections_stats_and_cancellation(tmp_path) -> None:
    backend = ScriptedBackend([REPLY_1, list("<thinking>partial and more")])
    with Store(tmp_path / "h.sqlite3") as store:
        session = ChatSession(
            backend, GenerationParams(seed=3), store=store, model_spec="demo", system_prompt="SYS"
        )
        session.send("What is 2+2?").run()
        stream = session.send("And now?")
        for i, _ in enumerate(stream):
            if i == 4:
                stream.cancel.cancel()
        conversation = store.get_conversation(session.conversation_id)
    assert conversation.summary.title == "What is 2+2?"
    assert conversation.summary.model == "demo"
    assert conversation.system_prompt == "SYS"
    roles = [m.role for m in conversation.messages]
    assert roles == ["user", "assistant", "user", "assistant"]
    first = conversation.messages[1]
    assert first.content == REPLY_1
    assert first.answer == "4"
    assert [s["kind"] for s in first.sections] == ["thinking", "reflection", "output"]
    assert first.finish_reason == "stop"
    assert first.params["seed"] == 3
    assert first.stats["completion_tokens"] == 1
    last = conversation.messages[3]
    assert last.finish_reason == "cancelled"
    assert "<thinking>partial".startswith(last.content[:5]) and last.content


def test_resume_continues_a_stored_conversation(tmp_path) -> None:
    with Store(tmp_path / "h.sqlite3") as store:
        first = ChatSession(
            ScriptedBackend([REPLY_1]), GenerationParams(), store=store, system_prompt="SYS"
        )
        first.send("What is 2+2?").run()
        backend = ScriptedBackend([REPLY_2])
        resumed = ChatSession.resume(backend, GenerationParams(), store, first.conversation_id)
        resumed.send("Double it.").run()
        assert backend.calls[0] == [
            Message("system", "SYS"),
            Message("user", "What is 2+2?"),
            Message("assistant", "4"),
            Message("user", "Double it."),
        ]
        assert store.get_conversation(first.conversation_id).summary.turns == 2


def test_regenerate_replaces_the_last_reply(tmp_path) -> None:
    backend = ScriptedBackend([REPLY_1, "<output>five</output>", "<output>4!</output>"])
    with Store(tmp_path / "h.sqlite3") as store:
        session = ChatSession(backend, GenerationParams(), store=store)
        session.send("What is 2+2?").run()
        again = session.regenerate().run()
        assert again.parsed.answer == "five"
        assert backend.calls[1] == [Message("user", "What is 2+2?")]  # no discarded reply
        third = session.regenerate().run()
        assert third.parsed.answer == "4!"
        messages = store.get_conversation(session.conversation_id).messages
    assert [(m.role, m.answer) for m in messages] == [("user", None), ("assistant", "4!")]
    assert [t.role for t in session.history] == ["user", "assistant"]


# -- the real model -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backend() -> LlamaBackend:
    embedded_model_path()
    return LlamaBackend(resolve_model("smollm2"), LoadOptions(n_ctx=2048))


def test_second_turn_reuses_the_kv_cache(backend: LlamaBackend) -> None:
    session = ChatSession(
        backend, GenerationParams(seed=1, max_tokens=48), system_prompt="You are brief."
    )
    first = session.send("Name three colours.").run()
    assert first.stats.cached_tokens == 0 or first.stats.cached_tokens < first.stats.prompt_tokens
    second = session.send("Now name three animals.").run()
    assert second.stats.cached_tokens > 0
    # everything up to the first reply is served from the cache
    assert second.stats.cached_tokens >= first.stats.prompt_tokens - 1
    assert second.stats.prompt_tokens > first.stats.prompt_tokens


def test_real_tokenizer_budget(backend: LlamaBackend) -> None:
    session = ChatSession(backend, GenerationParams(max_tokens=1900))
    with pytest.raises(ContextOverflowError, match="context holds 2048"):
        session.send("lorem ipsum " * 100)


def long_history(turns: int) -> list[HistoryTurn]:
    history = []
    for i in range(turns):
        history.append(HistoryTurn("user", f"Question {i}: what is {i} times three, briefly?"))
        history.append(
            HistoryTurn("assistant", f"<thinking>{i}*3</thinking><output>{i * 3}</output>",
                        str(i * 3))
        )  # fmt: skip
    return history


def test_a_history_that_fits_is_measured_once(
    backend: LlamaBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a new `ask -c` process plans at turn 10: the whole conversation, one measurement,
    # instead of every message of it measured on its own first.
    session = ChatSession(backend, GenerationParams(max_tokens=256), system_prompt="Be brief.")
    session.history = long_history(10)
    calls: list[int] = []
    tokenize = backend.tokenize_prompt
    monkeypatch.setattr(backend, "tokenize_prompt", lambda p: calls.append(1) or tokenize(p))
    plan = session.plan("And what is 7 times three?")
    assert calls == [1] and plan.dropped_turns == 0 and len(plan.messages) == 1 + 20 + 1
    assert plan.prompt_tokens == backend.count_prompt_tokens(plan.messages)


@pytest.mark.parametrize("think", [None, False])  # False: an empty <think></think> written
def test_the_plan_measures_the_prompt_the_turn_sends(backend: LlamaBackend, think) -> None:
    # Thinking switches change the prompt (a pre-filled opener, an empty thinking block):
    # the budget is checked on what is sent, and the turn reuses the plan's tokenization.
    params = GenerationParams(seed=1, max_tokens=4, reasoning_format="think", think=think)
    session = ChatSession(backend, params, system_prompt="Be brief.")
    session.history = long_history(3)
    plan = session.plan("And 7 times three?")
    result = session.send("And 7 times three?").run()
    assert result.stats.prompt_tokens == plan.prompt_tokens


@pytest.mark.parametrize("system_prompt", ["You are brief.", None])
def test_a_long_history_is_planned_with_each_message_measured_once(
    backend: LlamaBackend, monkeypatch: pytest.MonkeyPatch, system_prompt: str | None
) -> None:
    params = GenerationParams(max_tokens=256)
    session = ChatSession(backend, params, system_prompt=system_prompt)
    session.history = long_history(200)
    whole = backend.count_prompt_tokens(session.model_messages(session.history))
    assert whole > 2 * backend.n_ctx  # most of it has to go

    calls: list[int] = []
    tokenize = backend.tokenize_prompt

    def counting(prompt: str) -> list[int]:
        tokens = tokenize(prompt)
        calls.append(len(tokens))
        return tokens

    monkeypatch.setattr(backend, "tokenize_prompt", counting)
    plan = session.plan("And what is 7 times three?")
    messages = 2 * 200 + 1
    assert len(calls) <= messages + 5  # each message once, plus a few whole prompts
    # Linear work: the tokens tokenized are a small multiple of the history, not one whole
    # history per dropped turn (what made `ask -c` wait a minute): the whole tried first, each
    # message with the template's frame around it, the cut measured.
    assert sum(calls) <= 4 * whole

    budget = backend.n_ctx - params.max_tokens
    assert plan.prompt_tokens <= budget
    assert plan.prompt_tokens == backend.count_prompt_tokens(plan.messages)  # measured for real
    assert 0 < plan.dropped_turns < 200
    if system_prompt is not None:
        assert plan.messages[0] == Message("system", system_prompt)
    assert plan.messages[-1] == Message("user", "And what is 7 times three?")
    kept = [m.content for m in plan.messages if m.role == "user"][:-1]
    assert kept[-1].startswith("Question 199:") and kept[0].startswith(
        f"Question {plan.dropped_turns}:"
    )
    # As much history as fits: one more turn would not have.
    newest = HistoryTurn("user", "And what is 7 times three?")
    one_more = session.model_messages([*session.history[2 * (plan.dropped_turns - 1) :], newest])
    assert backend.count_prompt_tokens(one_more) > budget

    # The next turn measures only what is new.
    session.history.append(HistoryTurn("user", "And what is 7 times three?"))
    session.history.append(HistoryTurn("assistant", "<output>21</output>", "21"))
    calls.clear()
    session.plan("And 8?")
    assert len(calls) <= 6


ASKER = """
    import sys, time
    from pathlib import Path
    from reflectchat.core.engine.base import GenerationParams
    from reflectchat.testing.scripted_backend import ScriptedBackend
    from reflectchat.core.chat.session import ChatSession
    from reflectchat.core.chat.store import Store
    db, cid, go = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    with Store(db) as store:
        backend = ScriptedBackend(["<output>A's answer</output>"])
        session = ChatSession.resume(backend, GenerationParams(), store, cid)
        stream = session.send("A asks")  # committed now; the reply comes later
        print("asked", flush=True)
        while not go.exists():
            time.sleep(0.01)
        stream.run()
    print("answered", flush=True)
"""


def test_a_slow_reply_keeps_its_place_when_another_process_asks_meanwhile(
    tmp_path: Path,
) -> None:
    db = tmp_path / "h.sqlite3"
    with Store(db) as store:
        cid = store.create_conversation(title="shared", model=None, system_prompt=None)
    go = tmp_path / "go"
    asker = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(ASKER), str(db), str(cid), str(go)],
        env=run_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert asker.stdout is not None
        assert asker.stdout.readline().strip() == "asked"
        with Store(db) as store:  # the second process asks and is answered first
            other = ChatSession.resume(
                ScriptedBackend(["<output>B's answer</output>"]), GenerationParams(), store, cid
            )
            other.send("B asks").run()
            go.touch()
            out, err = asker.communicate(timeout=60)
            assert asker.returncode == 0, err
            assert out.strip() == "answered"
            messages = store.get_conversation(cid).messages
    finally:
        if asker.poll() is None:
            asker.kill()
            asker.wait()
    assert [m.content for m in messages] == [
        "A asks", "<output>A's answer</output>", "B asks", "<output>B's answer</output>",
    ]  # fmt: skip
    assert [m.turn for m in messages] == [1, 1, 2, 2]


def test_regenerate_replaces_its_own_reply_not_a_later_one(tmp_path: Path) -> None:
    with Store(tmp_path / "h.sqlite3") as store:
        mine = ChatSession(ScriptedBackend(["<output>1</output>", "<output>one</output>"]),
                           GenerationParams(), store=store)  # fmt: skip
        mine.send("first").run()
        theirs = ChatSession.resume(
            ScriptedBackend(["<output>2</output>"]), GenerationParams(), store,
            mine.conversation_id,  # type: ignore[arg-type]
        )  # fmt: skip
        theirs.send("second").run()
        mine.regenerate().run()
        contents = [m.content for m in store.get_conversation(mine.conversation_id).messages]
    assert contents == ["first", "<output>one</output>", "second", "<output>2</output>"]
