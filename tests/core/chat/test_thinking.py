"""Thinking control per format (issue 11): what --think/--effort/--think-budget do to each
family's prompt or request, and the closing sequence that ends a thinking early, checked on
the parser for every format that has one."""

from __future__ import annotations

import pytest

from reflectchat.core.chat.thinking import remote_thinking_body, thinking_switch
from reflectchat.core.engine.base import GenerationParams, Message
from reflectchat.core.reply.closing import WRAP_UP, closing_sequence
from reflectchat.core.reply.format_catalog import BY_NAME, FORMATS
from reflectchat.core.reply.sections import SectionParser
from reflectchat.core.reply.stream import ReplyStream
from reflectchat.testing.scripted_backend import ScriptedBackend

QWEN3 = "{%- if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>"
GPT_OSS = "Reasoning: {{ reasoning_effort | default('medium') }}<|channel|>"
SEED = "{%- if thinking_budget is defined %}<seed:cot_budget_reflect>"


def test_qwen3_switch_is_its_template_variable() -> None:
    switch = thinking_switch(BY_NAME["think"], QWEN3, think=False)
    assert switch.variables == {"enable_thinking": False} and not switch.prompt_suffix
    assert thinking_switch(BY_NAME["think"], QWEN3, think=True).variables == {
        "enable_thinking": True
    }


def test_r1_style_templates_get_an_empty_prefilled_thinking() -> None:
    switch = thinking_switch(BY_NAME["think"], "<｜Assistant｜><think>\n", think=False)
    assert switch.prompt_suffix == "<think>\n\n</think>\n\n"
    assert "no effort switch" in thinking_switch(BY_NAME["think"], "", effort="low").notes[0]


def test_gpt_oss_effort_and_seed_budget() -> None:
    assert thinking_switch(BY_NAME["harmony"], GPT_OSS, effort="high").variables == {
        "reasoning_effort": "high"
    }
    off = thinking_switch(BY_NAME["harmony"], GPT_OSS, think=False)
    assert off.variables == {"reasoning_effort": "low"} and "always thinks" in off.notes[0]
    assert thinking_switch(BY_NAME["seed-oss"], SEED, budget=512).variables == {
        "thinking_budget": 512
    }
    assert thinking_switch(BY_NAME["seed-oss"], SEED, think=False).variables == {
        "thinking_budget": 0
    }


def test_reflection_off_drops_its_prompt_and_others_say_they_cannot() -> None:
    assert thinking_switch(BY_NAME["reflection"], "", think=False).drop_reasoning_prompt
    kimi = thinking_switch(BY_NAME["kimi"], "◁think▷", think=False)
    assert kimi.notes and "no thinking switch" in kimi.notes[0]
    assert thinking_switch(BY_NAME["kimi"], "◁think▷").notes == ()


def test_remote_request_fields_follow_the_profile() -> None:
    body = remote_thinking_body(think=False, effort=None, budget=None)
    assert body == {"reasoning_effort": "low", "chat_template_kwargs": {"enable_thinking": False}}
    body = remote_thinking_body(think=None, effort="high", budget=300)
    assert body == {
        "reasoning_effort": "high",
        "chat_template_kwargs": {"thinking_budget": 300},
        "reasoning_budget": 300,
    }
    assert remote_thinking_body(think=False, effort="low", budget=0, allowed=()) == {}


OPENERS = {
    "reflection": "<thinking>\nA thought",
    "think": "<think>\nA thought",
    "marco-o1": "<Thought>\nA thought",
    "exaone": "<thought>\nA thought",
    "harmony": "<|channel|>analysis<|message|>A thought",
    "magistral": "[THINK]A thought",
    "kimi": "◁think▷A thought",
    "seed-oss": "<seed:think>A thought",
    "gemma4": "<|channel>thought\nA thought",
    "apriel": "Here are my reasoning steps:\nA thought",
    "command-a": "<|START_THINKING|>A thought",
    "auto": "<thinking>\nA thought",
}


@pytest.mark.parametrize("name", OPENERS)
@pytest.mark.parametrize("wrap_up", [False, True])
def test_each_formats_closing_sequence_ends_the_thinking(name: str, wrap_up: bool) -> None:
    fmt = BY_NAME[name]
    parser = SectionParser(fmt=fmt)
    parser.feed(OPENERS[name])
    assert parser.in_reasoning
    parser.feed(closing_sequence(parser.format, parser.open_kinds, wrap_up=wrap_up))
    assert not parser.in_reasoning, name
    parser.feed("The answer.")
    parser.finish()
    reply = parser.reply()
    assert reply.answer == "The answer."
    assert reply.thinking.startswith("A thought")
    assert reply.thinking.endswith(WRAP_UP.strip()) == wrap_up
    assert not reply.thinking_incomplete


def test_every_format_with_thinking_has_a_closing_sequence() -> None:
    for fmt in FORMATS:
        if fmt.name != "harmony-stripped":
            assert fmt.close_thinking, fmt.name


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("reflection", "<thinking>\nA\n<reflection>\nwait"),
        ("seed-oss", "<seed:think>A<seed:cot_budget_reflect>used 100"),
    ],
)
def test_closing_from_inside_a_nested_section(name: str, text: str) -> None:
    parser = SectionParser(fmt=name)
    parser.feed(text)
    assert len(parser.open_kinds) == 2
    parser.feed(closing_sequence(parser.format, parser.open_kinds, wrap_up=False) + "Done.")
    parser.finish()
    assert parser.reply().answer == "Done."


def test_a_backend_that_cannot_be_steered_gets_its_thinking_cut_client_side() -> None:
    # The scripted backend, like a remote server, cannot write a closing sequence: the stream
    # marks the cut and keeps counting; the thinking is what came before the budget ran out.
    chunks = ["<think>", "one ", "two ", "three ", "four ", "five", "</think>", "Answer."]
    backend = ScriptedBackend([chunks])
    params = GenerationParams(think_budget=3)
    stream = ReplyStream(backend, [Message("user", "hi")], params)
    events = list(stream)
    result = stream.result
    assert result is not None and result.thinking_cut == "budget"
    assert next(e for e in events if e.type == "cut").text == "budget"
    assert result.stats.thinking_tokens == 7 and result.stats.answer_tokens == 1
    assert result.to_dict()["thinking_cut"] == "budget"
    assert result.to_dict()["stats"]["thinking_tokens"] == 7
