"""System prompts that models' cards ask for, and the bounded renderer for the chat templates
stored in GGUF files."""

from __future__ import annotations

import ctypes
import functools
import json
import re
import threading
import time
from datetime import datetime
from typing import Any

# Verbatim from the Reflection-Llama-3.1-70B model card.
REFLECTION_SYSTEM_PROMPT = (
    "You are a world-class AI system, capable of complex reasoning and reflection. "
    "Reason through the query inside <thinking> tags, and then provide your final response "
    "inside <output> tags. If you detect that you made a mistake in your reasoning at any point, "
    "correct yourself inside <reflection> tags."
)

PROMPT_STYLES: dict[str, str | None] = {
    "reflection": REFLECTION_SYSTEM_PROMPT,
    "none": None,
}


# --- chat templates ------------------------------------------------------------------------------
# A GGUF's chat template is Jinja source from whoever made the file: untrusted code. llama-cpp-
# python renders it in Jinja's immutable sandbox, which stops attribute tricks but not work and
# memory: `{{ 'x' * 200000000 }}` builds a 200 MB prompt (and gigabytes once tokenized), an empty
# nested loop runs for hours. So the sandbox here also bounds every value a template builds, the
# output it streams, and the wall time it runs.

TEMPLATE_SECONDS = 3.0  # real templates render in milliseconds
MAX_TEMPLATE_CHARS = 1 << 20  # real templates are a few kB (the largest ~40 kB)
MAX_CALL_DEPTH = 200  # nested calls; real templates nest a handful (tool schemas ~10)
_MAX_INT_BITS = 4096  # no template needs integers beyond this; `9 ** 9 ** 9` would take minutes


class TemplateError(Exception):
    """A chat template that cannot be used; ``str(e)`` is one line (no file name)."""


class UnsafeTemplateError(TemplateError):
    """The template tried to build something too large or ran too long: a broken or hostile
    file, not a problem with the conversation."""


class _TemplateTimeout(BaseException):
    """Raised inside the rendering thread once the time is up. A BaseException, so that no
    `except Exception` on the way (Jinja's, a filter's) can swallow it."""


def prompt_char_limit(n_ctx: int, input_chars: int) -> int:
    """The most characters a rendered prompt may have: far more than any prompt that fits the
    context (a token is rarely more than a few characters; 8 × n_ctx × 4 leaves wide room), plus
    the conversation itself, so a long chat is never blamed on the template."""
    return max(1 << 20, 32 * n_ctx) + 2 * input_chars


def _one_line(text: str, limit: int = 200) -> str:
    """Template error text is the file's text: printable, one line, bounded."""
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Measure:
    """Roughly how many characters a value becomes as text, counting no further than the
    budget. A list holding another twice, 40 levels deep, is tiny in memory but not as text;
    containers are remembered (they cannot change inside the immutable sandbox), so that one
    costs 40 steps, and asking about the conversation on every call stays cheap."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.seen: dict[int, tuple[object, int]] = {}  # id -> (the object, kept alive; size)

    def __call__(self, v: object) -> int:
        if isinstance(v, str | bytes):
            return len(v)
        if isinstance(v, bool) or v is None or isinstance(v, float):
            return 1
        if isinstance(v, int):
            return v.bit_length() // 3 + 1
        if isinstance(v, list | tuple | set | frozenset | dict):
            known = self.seen.get(id(v))
            if known is not None:
                return known[1]
            total = len(v) + 1
            items = v.items() if isinstance(v, dict) else v
            for item in items:
                if total > self.budget:
                    break
                total += self(item)
            self.seen[id(v)] = (v, total)
            return total
        attrs = getattr(v, "_Namespace__attrs", None)  # jinja2's namespace(): mutable, not kept
        if isinstance(attrs, dict):
            return 1 + sum(self(x) for x in attrs.values())
        return 1


_DIGITS = re.compile(r"\d{7,}")


class _Watchdog:
    """Stops a render after ``seconds``, two ways. Every call and operator the template makes
    checks ``deadline`` (the sandbox's hooks), which is exact and costs a clock read. An empty
    nested loop calls nothing we control, so a watchdog thread also raises _TemplateTimeout in
    the rendering thread, as an asynchronous exception (delivered between bytecodes) — and
    repeats it until the render ends, since one delivered into a finalizer run by the garbage
    collector is swallowed as unraisable (seen in CI: a render ran on until 24 GB)."""

    REPEAT_S = 0.05
    MAX_REPEATS = 40  # then give up: the render has ended or is beyond any help

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.thread_id = threading.get_ident()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.fired = False
        self.deadline = time.monotonic() + seconds
        self.thread = threading.Thread(target=self._run, name="template-watchdog", daemon=True)

    def _run(self) -> None:
        wait = self.seconds
        for _ in range(self.MAX_REPEATS):
            if self.stop.wait(wait):
                return
            with self.lock:
                if self.stop.is_set():
                    return
                self.fired = True
                _set_async_exc(self.thread_id, _TemplateTimeout)
            wait = self.REPEAT_S

    def __enter__(self) -> _Watchdog:
        self.deadline = time.monotonic() + self.seconds
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """No more firing, and nothing left pending (safe to call twice)."""
        self.stop.set()
        with self.lock:
            if self.fired:  # fired but maybe not delivered yet: clear it
                _set_async_exc(self.thread_id, None)
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join()


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
    )


class ChatTemplate:
    """A chat template compiled in the bounded sandbox. Not thread-safe (one render at a time),
    like the engine that owns it."""

    def __init__(
        self, source: str, *, bos_token: str, eos_token: str, seconds: float = TEMPLATE_SECONDS
    ) -> None:
        if len(source) > MAX_TEMPLATE_CHARS:
            raise UnsafeTemplateError(
                f"it is {len(source):,} characters long, far longer than any real template"
            )
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.seconds = seconds
        self._env = _environment_class()()
        watchdog = _Watchdog(seconds)
        try:
            with watchdog:
                self._template = self._env.from_string(source)
        except _TemplateTimeout:
            watchdog.close()  # it may have landed in __exit__ itself
            raise UnsafeTemplateError(f"compiling it took longer than {seconds:g} s") from None
        except Exception as exc:  # TemplateSyntaxError and whatever else the parser raises
            raise TemplateError(_one_line(str(exc)) or type(exc).__name__) from None

    def render(
        self,
        messages: list[dict[str, str]],
        *,
        limit: int,
        add_generation_prompt: bool = True,
        variables: dict[str, object] | None = None,
    ) -> str:
        """The prompt; raises UnsafeTemplateError past ``limit`` characters or the time limit,
        TemplateError for anything else the template raises."""

        def raise_exception(message: str) -> None:
            raise TemplateError(_one_line(str(message)))

        env = self._env
        env.budget = limit
        env.depth = 0
        env.measure = _Measure(limit)
        out: list[str] = []
        total = 0
        watchdog = _Watchdog(self.seconds)
        try:
            with watchdog:
                env.deadline = watchdog.deadline
                chunks = self._template.generate(
                    messages=messages,
                    bos_token=self.bos_token,
                    eos_token=self.eos_token,
                    add_generation_prompt=add_generation_prompt,
                    raise_exception=raise_exception,
                    strftime_now=_strftime_now,
                    # the template's own switches (enable_thinking, reasoning_effort, …)
                    **(variables or {}),
                    tools=None,
                    functions=None,
                    function_call=None,
                    tool_choice=None,
                )
                for chunk in chunks:
                    total += len(chunk)
                    if total > limit:
                        raise UnsafeTemplateError(_too_large(limit))
                    out.append(chunk)
        except _TemplateTimeout:
            watchdog.close()
            raise UnsafeTemplateError(f"rendering it took longer than {self.seconds:g} s") from None
        except TemplateError:
            raise
        except RecursionError:
            raise UnsafeTemplateError("rendering it recursed without end") from None
        except MemoryError:
            raise UnsafeTemplateError("rendering it ran out of memory") from None
        except Exception as exc:  # SecurityError from the sandbox, TypeError, UndefinedError, …
            raise TemplateError(_one_line(str(exc)) or type(exc).__name__) from None
        return "".join(out)


def _too_large(limit: int) -> str:
    return f"rendering it would produce more than {limit:,} characters"


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(str(fmt)[:100])


@functools.cache
def _environment_class() -> type[Any]:
    """Built on first use, so importing this module does not import jinja2."""
    import jinja2
    import jinja2.ext
    from jinja2.compiler import CodeGenerator
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class IgnoreGenerationTags(jinja2.ext.Extension):
        """Hugging Face's ``{% generation %}`` tag, as llama-cpp-python and Transformers
        accept it."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            parser.stream.skip(1)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    class BoundedCodeGenerator(CodeGenerator):
        # `a ~ b` is compiled to a plain join the sandbox never sees; route it through a check.
        def visit_Concat(self, node: Any, frame: Any) -> None:
            self.write("environment.bounded_concat((")
            for arg in node.nodes:
                self.visit(arg, frame)
                self.write(", ")
            self.write("))")

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        code_generator_class = BoundedCodeGenerator
        intercepted_binops = frozenset({"+", "*", "**", "%"})

        def __init__(self) -> None:
            super().__init__(
                loader=jinja2.BaseLoader(),
                trim_blocks=True,
                lstrip_blocks=True,
                extensions=[IgnoreGenerationTags, jinja2.ext.loopcontrols],
                finalize=self.bounded,
            )
            self.budget = 1 << 20
            self.depth = 0
            self.deadline = float("inf")  # set by each render
            self.measure = _Measure(self.budget)
            self.globals.pop("lipsum", None)  # lipsum(n=10**9): a loop we would have to time out
            self.filters["tojson"] = _tojson
            for name, func in list(self.filters.items()):
                self.filters[name] = self._bounded_filter(name, func)

        # checks ------------------------------------------------------------------------------
        def refuse(self) -> None:
            raise UnsafeTemplateError(_too_large(self.budget))

        def tick(self) -> None:
            if time.monotonic() > self.deadline:
                raise _TemplateTimeout

        def bounded(self, value: Any) -> Any:
            self.tick()
            if self.measure(value) > self.budget:
                self.refuse()
            return value

        def check_size(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if self.measure(args) + self.measure(kwargs) > self.budget:
                self.refuse()

        def check_counts(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            """Widths, counts and padding (center(10**9), batch(10**9, 'x')) are ints."""
            for value in (*args, *kwargs.values()):
                is_int = isinstance(value, int) and not isinstance(value, bool)
                if is_int and abs(value) > self.budget:
                    self.refuse()

        def check_format(self, fmt: Any) -> None:
            """A width written into a format string: '%0999999999d', '{:>999999999}'."""
            if isinstance(fmt, str) and any(int(d) > self.budget for d in _DIGITS.findall(fmt)):
                self.refuse()

        def check_replace(self, s: Any, old: Any, new: Any) -> None:
            if isinstance(s, str) and isinstance(old, str) and isinstance(new, str):
                count = len(s) + 1 if not old else s.count(old)
                if len(s) + count * (len(new) - len(old)) > self.budget:
                    self.refuse()

        def check_join(self, items: Any, sep: Any) -> None:
            sized = isinstance(sep, str) and hasattr(items, "__len__")
            if sized and len(sep) * len(items) > self.budget:
                self.refuse()

        # hooks -------------------------------------------------------------------------------
        def bounded_concat(self, parts: tuple[Any, ...]) -> str:
            texts = [str(p) for p in parts]
            if sum(len(t) for t in texts) > self.budget:
                self.refuse()
            return "".join(texts)

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            self.tick()
            budget = self.budget
            ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (left, right))
            if operator == "*":
                if ints:
                    if left.bit_length() + right.bit_length() > _MAX_INT_BITS:
                        self.refuse()
                else:
                    seq, n = (left, right) if isinstance(right, int) else (right, left)
                    repeat = isinstance(n, int) and hasattr(seq, "__len__")
                    if repeat and len(seq) * max(n, 0) > budget:
                        self.refuse()
            elif operator == "**":
                grows = ints and right > 0 and abs(left) > 1
                if grows and (right > _MAX_INT_BITS or right * left.bit_length() > _MAX_INT_BITS):
                    self.refuse()
            elif operator == "+":
                sized = hasattr(left, "__len__") and hasattr(right, "__len__")
                if sized and len(left) + len(right) > budget:
                    self.refuse()
            elif operator == "%" and isinstance(left, str):
                self.check_format(left)
                self.check_counts(right if isinstance(right, tuple) else (right,), {})
                self.check_size((right,), {})
            return self.bounded(super().call_binop(context, operator, left, right))

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            __self.tick()
            __self.check_size(args, kwargs)
            # the sandbox hands str.format out wrapped (functools.update_wrapper)
            method = getattr(__obj, "__wrapped__", __obj)
            owner = getattr(method, "__self__", None)
            name = getattr(method, "__name__", "")
            if isinstance(owner, str | bytes | list | tuple):  # 'x'.center(10**9), .ljust, …
                __self.check_counts(args, kwargs)
            if isinstance(owner, str):
                if name == "replace" and len(args) >= 2:
                    __self.check_replace(owner, args[0], args[1])
                elif name == "join" and args:
                    __self.check_join(args[0], owner)
                elif name in ("format", "format_map"):
                    __self.check_format(owner)
            # Our own depth bound: Python's recursion limit is not ours to rely on (a test
            # runner may have raised it; then a self-calling macro grew to 24 GB in CI).
            if __self.depth >= MAX_CALL_DEPTH:
                raise RecursionError
            __self.depth += 1
            try:
                result = super().call(__context, __obj, *args, **kwargs)
            finally:
                __self.depth -= 1
            return __self.bounded(result)

        def _bounded_filter(self, name: str, func: Any) -> Any:
            @functools.wraps(func)  # keeps jinja_pass_arg (pass_context, pass_eval_context, …)
            def bounded_filter(*args: Any, **kwargs: Any) -> Any:
                plain = [a for a in args if not _is_jinja_state(a)]
                self.check_size(tuple(plain), kwargs)
                self.check_counts(tuple(plain[1:]), kwargs)  # not the value: 10**12|string is fine
                if name == "replace" and len(plain) >= 3:
                    self.check_replace(plain[0], plain[1], plain[2])
                elif name == "join" and plain:
                    sep = plain[1] if len(plain) > 1 else kwargs.get("d", "")
                    self.check_join(plain[0], sep)
                elif name == "format" and plain:
                    self.check_format(plain[0])
                return self.bounded(func(*args, **kwargs))

            return bounded_filter

    return BoundedSandbox


def _is_jinja_state(value: object) -> bool:
    from jinja2.nodes import EvalContext
    from jinja2.runtime import Context

    return isinstance(value, Context | EvalContext) or hasattr(value, "sandboxed")


def _tojson(
    x: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """Transformers' (and llama-cpp-python's) tojson: no HTML escaping, unicode kept."""
    return json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )
