"""The bounded chat-template sandbox: ordinary templates render as llama-cpp-python renders them;
hostile ones (issue 13: `{{ 'x' * 200000000 }}` grew to 20 GB) fail fast, in bounded memory."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from reflectchat.core.chat.prompts import (
    ChatTemplate,
    TemplateError,
    UnsafeTemplateError,
    prompt_char_limit,
)

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Is 9.11 > 9.9? 12345678901234 %s {x} {{ y }}"},
]
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LIMIT = 1 << 20


def render(source: str, *, seconds: float = 3.0, limit: int = LIMIT) -> str:
    return ChatTemplate(source, bos_token="<s>", eos_token="</s>", seconds=seconds).render(
        MESSAGES, limit=limit
    )


def test_an_ordinary_template_renders_like_llama_cpp_python() -> None:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    sources = [
        CHATML,
        "{{ bos_token }}{% for m in messages %}{{ m.role|upper }}: {{ m.content|trim }}"
        "{{ eos_token }}{% endfor %}{{ messages|tojson }}{{ '%s-%d'|format('a', 3) }}"
        "{{ ('ab' * 3)|replace('b', 'c') }}{{ [1, 2]|join(', ') }}{{ 'x'.center(9) }}"
        "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
        "{% endfor %}{{ ns.n ~ '!' }}{{ 10 ** 3 }}{{ 1700000000000|string }}",
    ]
    for source in sources:
        theirs = Jinja2ChatFormatter(source, eos_token="</s>", bos_token="<s>")
        assert render(source) == theirs(messages=MESSAGES).prompt


HOSTILE = {
    "repeat": "{{ 'x' * 200000000 }}",
    "repeat, int first": "{{ 200000000 * 'x' }}",
    "center filter": "{{ 'x'|center(200000000) }}",
    "ljust method": "{{ 'x'.ljust(200000000) }}",
    "printf width": "{{ '%0200000000d' % 1 }}",
    "printf star": "{{ '%*d' % (200000000, 1) }}",
    "format width": "{{ '{:>200000000}'.format('x') }}",
    "format filter": "{{ '%0200000000d'|format(1) }}",
    "batch padding": "{{ [1]|batch(200000000, 'x')|list }}",
    "replace": "{{ ('x' * 1000)|replace('x', 'y' * 100000) }}",
    "join": "{{ range(100000)|join('y' * 1000) }}",
    "doubling ~": "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "doubling +": "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
    "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
    "doubling block set": "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
    "{% set ns.s %}{{ ns.s }}{{ ns.s }}{% endset %}{% endfor %}{{ ns.s }}",
    "nested lists": "{% set ns = namespace(s=['x']) %}{% for i in range(60) %}"
    "{% set ns.s = [ns.s, ns.s] %}{% endfor %}{{ ns.s|tojson }}",
    "huge integers": "{% set ns = namespace(n=10) %}{% for i in range(40) %}"
    "{% set ns.n = ns.n * ns.n %}{% endfor %}{{ ns.n }}",
    "power": "{{ 9 ** 999999999 }}",
    "many outputs": "{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}",
}


@pytest.mark.parametrize("source", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_template_is_refused_quickly_in_bounded_memory(source: str) -> None:
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(UnsafeTemplateError, match="more than 1,048,576 characters"):
            render(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - start < 2.0
    assert peak < 32 << 20  # the 200 MB string is never built


def test_a_template_that_runs_too_long_is_stopped() -> None:
    nested_loop = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    for source in (
        nested_loop,
        "{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}"
        "{{ m(40) }}",
    ):
        start = time.monotonic()
        with pytest.raises(UnsafeTemplateError, match=r"longer than 0\.5 s"):
            render(source, seconds=0.5)
        assert time.monotonic() - start < 2.0
    # the time limit is lifted afterwards: the same object renders again
    template = ChatTemplate(CHATML, bos_token="", eos_token="", seconds=0.2)
    for _ in range(3):
        assert template.render(MESSAGES, limit=LIMIT).endswith("<|im_start|>assistant\n")
        time.sleep(0.1)
    time.sleep(0.3)  # a stale watchdog would fire here, into this thread
    assert template.render(MESSAGES, limit=LIMIT)


def stopped_quickly(source: str) -> None:
    start = time.monotonic()
    with pytest.raises(UnsafeTemplateError, match=r"longer than 0\.3 s"):
        render(source, seconds=0.3)
    assert time.monotonic() - start < 2.0


def test_the_time_limit_holds_when_the_watchdog_is_swallowed(monkeypatch) -> None:
    """CI ran out of memory (24 GB) on the self-calling macro above: the watchdog's exception
    had landed in a finalizer run by the garbage collector, which swallows it. Macros and
    operators check the deadline themselves; an empty loop gets the exception again."""
    from reflectchat.core.chat import prompts

    real = prompts._set_async_exc
    monkeypatch.setattr(prompts, "_set_async_exc", lambda thread_id, exc: None)  # all lost
    exponential = (
        "{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(40) }}"
    )
    stopped_quickly(exponential)

    calls: list[object] = []

    def first_one_lost(thread_id: int, exc: object) -> None:
        calls.append(exc)
        if len(calls) > 1:
            real(thread_id, exc)

    monkeypatch.setattr(prompts, "_set_async_exc", first_one_lost)
    # nothing inside the loops calls back into the sandbox: only the watchdog can stop it
    empty_loop = (
        "{% set x = range(100000)|list %}{% for i in x %}{% for j in x %}{% endfor %}{% endfor %}"
    )
    stopped_quickly(empty_loop)
    assert calls[0] is not None and calls[-1] is None  # fired again, then cleared
    time.sleep(0.3)  # and no stray exception arrives afterwards


def test_other_failures_are_one_line_template_errors() -> None:
    with pytest.raises(UnsafeTemplateError, match="recursed"):
        render("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}")
    with pytest.raises(TemplateError) as info:
        render("{{ raise_exception('no system\x1b[31m role\nhere') }}")
    assert not isinstance(info.value, UnsafeTemplateError)
    assert str(info.value) == "no system [31m role here"  # printable, one line
    with pytest.raises(TemplateError):
        render("{% for %}")
    with pytest.raises(TemplateError, match="lipsum"):
        render("{{ lipsum(1000000000) }}")  # dropped: a loop with nothing to check
    with pytest.raises(UnsafeTemplateError, match="characters long"):
        ChatTemplate("x" * (2 << 20), bos_token="", eos_token="")


def test_recursion_is_bounded_whatever_the_interpreter_limit() -> None:
    # hypothesis raises sys.getrecursionlimit() during its tests; CI ran out of memory (24 GB)
    # on a self-calling macro after such a test. The sandbox's own depth bound holds anyway.
    import sys

    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200_000)
    try:
        tracemalloc.start()
        with pytest.raises(UnsafeTemplateError, match="recursed"):
            render("{% macro m(s) %}{{ m(s ~ 'xxxxxxxx') }}{% endmacro %}{{ m('') }}")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        sys.setrecursionlimit(old_limit)
    assert peak < 32 << 20


def test_the_limit_grows_with_the_context_and_the_conversation() -> None:
    assert prompt_char_limit(2048, 0) == 1 << 20
    assert prompt_char_limit(131072, 0) == 32 * 131072
    long_chat = [{"role": "user", "content": "word " * 400_000}]  # 2 MB of the user's own text
    limit = prompt_char_limit(2048, len(long_chat[0]["content"]))
    prompt = ChatTemplate(CHATML, bos_token="", eos_token="").render(long_chat, limit=limit)
    assert len(prompt) > 2_000_000
