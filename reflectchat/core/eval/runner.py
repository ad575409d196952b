"""An eval run: every item, under every condition, on every model, each as a fresh
single-turn session through the same setup path as `ask` (core/chat/setup.py).

A condition is a named set of session options (the prompt and sampling flags of `ask`), so it
means exactly what those flags mean everywhere else. Nothing is written to the chat history
unless a store is given. Each scored item becomes one record (a JSON-able dict: the --out
line), which is also what --resume reads back.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reflectchat.core.chat.prompts import REFLECTION_SYSTEM_PROMPT
from reflectchat.core.chat.setup import (
    Progress,
    SessionOptions,
    generation_params,
    load_local,
    load_remote,
    open_session,
    system_prompt,
)
from reflectchat.core.chat.store import Store
from reflectchat.core.engine.base import Backend, CancelToken, ContextOverflowError
from reflectchat.core.errors import ReflectchatError
from reflectchat.core.eval.checking import check, expected
from reflectchat.core.eval.suites import Item
from reflectchat.core.models.resolve import CatalogEntry, entry_for_file, resolve_model
from reflectchat.core.reply.stream import ReplyResult

REFLECT = "reflect"
PLAIN = "plain"
DEFAULT_CONDITIONS = (REFLECT, PLAIN)


def condition_settings(name: str) -> dict[str, Any] | None:
    """The session options a built-in condition sets over the run's own (None: not a
    built-in). `reflect` is the model's defaults: its reasoning system prompt and, where its
    catalog entry says so, the strict format. `plain` takes the reflection away: no system
    prompt, no format grammar. This is the one place a condition gains a switch (a thinking
    on/off flag, say) when the session options get one."""
    if name == REFLECT:
        return {}
    if name == PLAIN:
        settings: dict[str, Any] = {
            "no_system": True,
            "system": None,
            "preset": None,
            "strict_format": False,
            "think": False,  # thinking control: the model's own switch, where it has one
        }
        return settings
    return None


_OPTION_FIELDS = frozenset(f.name for f in dataclasses.fields(SessionOptions))


@dataclass(frozen=True)
class Condition:
    name: str
    settings: dict[str, Any] = field(default_factory=dict)  # SessionOptions fields to set

    def options(self, base: SessionOptions, entry: CatalogEntry | None = None) -> SessionOptions:
        options = dataclasses.replace(base, **self.settings)
        if (
            self.name == REFLECT
            and not options.explicit_system
            and not system_prompt(options, entry)
        ):
            # A model with no reasoning prompt of its own (an unknown GGUF, a served model)
            # would run `reflect` exactly like `plain`: ask it to reflect, in the standard words.
            options.system = REFLECTION_SYSTEM_PROMPT
        return options


def builtin_conditions(names: Iterable[str] = DEFAULT_CONDITIONS) -> list[Condition]:
    conditions = []
    for name in names:
        settings = condition_settings(name)
        if settings is None:
            raise ValueError(f"not a built-in condition: {name}")
        conditions.append(Condition(name, settings))
    return conditions


@dataclass
class Loaded:
    """A model ready to answer: the backend, its catalog entry, and its name in the results."""

    backend: Backend
    entry: CatalogEntry | None
    label: str


def load_model(options: SessionOptions, progress: Progress | None = None) -> Loaded:
    """The model `options` names, local or remote, as `ask` loads it (`progress` returning
    False aborts a local load)."""
    if options.endpoint is not None:
        backend = load_remote(options.endpoint, options.model)
        name = backend.resolve_model_name()  # the name the server gave
        # a served Reflection model gets its prompt and sampling like a local one
        return Loaded(backend, entry_for_file(Path(name)), name)
    model = resolve_model(options.model)
    return Loaded(load_local(model, options, progress), model.entry, options.model or model.spec)


def record_key(record: dict[str, Any]) -> tuple[str, str, str]:
    """What identifies a scored item across runs (for --resume)."""
    return (str(record["model"]), str(record["condition"]), str(record["id"]))


def thinking_tokens(result: ReplyResult) -> int:
    """The reasoning's share of the completion tokens, by characters (thinking and
    reflections over all the reply's sections, tags aside): exact enough for a mean, and the
    same for a local model and a server that only reports totals."""
    parsed = result.parsed
    reasoning = sum(len(s.text) for s in parsed.sections if s.kind in ("thinking", "reflection"))
    total = sum(len(s.text) for s in parsed.sections)
    if not reasoning or not total:
        return 0
    return round(result.stats.completion_tokens * reasoning / total)


Loader = Callable[[SessionOptions, Progress | None], Loaded]
OnRecord = Callable[[dict[str, Any]], None]


@dataclass
class EvalRun:
    """Runs `items` × `conditions` × `models`, skipping keys in `done`; stops (without scoring
    the item in flight) when `cancel` is set."""

    base: SessionOptions
    conditions: Sequence[Condition]
    items: Sequence[Item]
    done: set[tuple[str, str, str]] = field(default_factory=set)
    cancel: CancelToken = field(default_factory=CancelToken)
    store: Store | None = None  # save each exchange to the history (off unless asked)
    load: Loader = load_model
    on_record: OnRecord | None = None
    on_model: Callable[[str], None] | None = None  # a model is about to load
    records: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # the models loaded, as results name them

    def run(self, models: Sequence[str | None]) -> list[dict[str, Any]]:
        for spec in models:
            if self.cancel.cancelled:
                break
            if self.on_model is not None:
                self.on_model(spec or "the default model")
            try:
                # a Ctrl+C while a big model loads stops the load, not just the run after it
                loaded = self.load(dataclasses.replace(self.base, model=spec), self._loading)
            except ReflectchatError:
                if self.cancel.cancelled:
                    break  # stopped by the user, not failed
                raise
            self.labels.append(loaded.label)
            try:
                self._run_model(loaded)
            finally:
                # Free a big model before the next one loads (two 40 GB models don't fit).
                del loaded
                gc.collect()
        return self.records

    def _loading(self, fraction: float) -> bool:
        return not self.cancel.cancelled

    def pending(self, labels: Sequence[str]) -> int:
        """How many items are left to score for these model names."""
        return sum(
            1
            for label in labels
            for c in self.conditions
            for item in self.items
            if (label, c.name, item.id) not in self.done
        )

    def _run_model(self, loaded: Loaded) -> None:
        for condition in self.conditions:
            options = condition.options(self.base, loaded.entry)
            options.no_save = self.store is None
            for item in self.items:
                if (loaded.label, condition.name, item.id) in self.done:
                    continue
                record = self._score(loaded, condition, options, item)
                if record is None:  # cancelled mid-reply: not scored, --resume redoes it
                    return
                self.records.append(record)
                self.done.add(record_key(record))
                if self.on_record is not None:
                    self.on_record(record)

    def _score(
        self, loaded: Loaded, condition: Condition, options: SessionOptions, item: Item
    ) -> dict[str, Any] | None:
        if self.cancel.cancelled:
            return None
        # A fresh single-turn session per item: no earlier item can leak into the prompt.
        session = open_session(
            loaded.backend, options, store=self.store, entry=loaded.entry, model_spec=loaded.label
        )
        started = time.monotonic()
        try:
            result: ReplyResult | None = session.send(item.prompt, self.cancel).run()
            error = result.error if result is not None else None
        except ContextOverflowError as exc:  # this prompt can't be asked here: score it wrong
            result, error = None, str(exc)
        seconds = time.monotonic() - started
        if result is not None and result.finish_reason == "cancelled" and self.cancel.cancelled:
            return None
        return self._record(loaded, condition, options, item, result, error, seconds)

    def _record(
        self,
        loaded: Loaded,
        condition: Condition,
        options: SessionOptions,
        item: Item,
        result: ReplyResult | None,
        error: str | None,
        seconds: float,
    ) -> dict[str, Any]:
        params = generation_params(options, loaded.entry)
        record: dict[str, Any] = {
            "model": loaded.label,
            "condition": condition.name,
            "suite": item.suite,
            "id": item.id,
            "prompt": item.prompt,
            "system_prompt": system_prompt(options, loaded.entry),
            "params": dataclasses.asdict(params),
            "checker": item.checker,
            "expected": expected(item),
            **({"choices": list(item.choices)} if item.choices else {}),
        }
        if result is None:
            return {**record, "raw": "", "answer": "", "extracted": None, "correct": False,
                    "before_reflection": None, "changed_by_reflection": False,
                    "reflections": 0, "thinking_tokens": 0, "completion_tokens": 0,
                    "prompt_tokens": 0, "seconds": round(seconds, 3), "tokens_per_second": 0.0,
                    "finish_reason": "error", "error": error}  # fmt: skip
        verdict = check(item, result.parsed)
        stats = result.stats
        record.update(
            raw=result.raw_text,
            answer=result.parsed.answer,
            extracted=verdict.extracted,
            correct=verdict.correct,
            before_reflection=verdict.before_reflection,
            changed_by_reflection=verdict.changed_by_reflection,
            reflections=len(result.parsed.reflections),
            thinking_tokens=thinking_tokens(result),
            completion_tokens=stats.completion_tokens,
            prompt_tokens=stats.prompt_tokens,
            seconds=round(seconds, 3),
            tokens_per_second=round(stats.tokens_per_second, 2),
            finish_reason=result.finish_reason,
        )
        if error:
            record["error"] = error
        return record
