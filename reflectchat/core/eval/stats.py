"""What a run reports per model × condition × suite, from the scored items."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Z95 = 1.959963984540054  # the normal quantile for a two-sided 95% interval


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a proportion: unlike the normal approximation it stays
    inside [0, 1] and is not zero-width at 0/n or n/n, which matters at the small n of a
    local run."""
    if n <= 0:
        return (0.0, 1.0)
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # at 0/n and n/n the bound is exactly 0 or 1 (rounding would leave 5e-17)
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == n else min(1.0, centre + half)
    return (low, high)


@dataclass(frozen=True)
class Summary:
    model: str
    condition: str
    suite: str
    n: int
    correct: int
    accuracy: float
    ci95: tuple[float, float]
    mean_thinking_tokens: float
    mean_reflections: float
    # Among the replies with a reflection, the share whose conclusion before the last
    # reflection differs from the final answer (None when no reply reflected).
    changed_by_reflection: float | None
    reflected: int  # replies with at least one reflection
    unparsed: int  # replies with no answer that could be read
    mean_seconds: float
    tokens_per_second: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.condition,
            "model": self.model,
            "suite": self.suite,
            "n": self.n,
            "correct": self.correct,
            "accuracy": round(self.accuracy, 4),
            "ci95": [round(self.ci95[0], 4), round(self.ci95[1], 4)],
            "mean_thinking_tokens": round(self.mean_thinking_tokens, 1),
            "mean_reflections": round(self.mean_reflections, 2),
            "changed_by_reflection": None
            if self.changed_by_reflection is None
            else round(self.changed_by_reflection, 4),
            "reflected": self.reflected,
            "unparsed": self.unparsed,
            "mean_seconds": round(self.mean_seconds, 3),
            "tokens_per_second": round(self.tokens_per_second, 1),
        }


ALL_SUITES = "all"


def summarize(records: Iterable[dict[str, Any]]) -> list[Summary]:
    """One summary per (model, condition, suite) in first-seen order, plus an `all` row per
    (model, condition) when it ran more than one suite. Records are the --out lines."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["model"], r["condition"], r["suite"]), []).append(r)
    rows: list[Summary] = []
    pairs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    suites: dict[tuple[str, str], int] = {}
    for (model, condition, suite), items in groups.items():
        rows.append(_summary(model, condition, suite, items))
        pairs.setdefault((model, condition), []).extend(items)
        suites[(model, condition)] = suites.get((model, condition), 0) + 1
    for (model, condition), items in pairs.items():
        if suites[(model, condition)] > 1:
            rows.append(_summary(model, condition, ALL_SUITES, items))
    # grouped for reading: a model's suites together, each suite's conditions side by side
    order = {key: i for i, key in enumerate(dict.fromkeys((s.model, s.suite) for s in rows))}
    return sorted(rows, key=lambda s: order[(s.model, s.suite)])


def _summary(model: str, condition: str, suite: str, items: Sequence[dict[str, Any]]) -> Summary:
    n = len(items)
    correct = sum(1 for r in items if r["correct"])
    reflected = [r for r in items if r["reflections"] > 0]
    seconds = sum(r["seconds"] for r in items)
    tokens = sum(r["completion_tokens"] for r in items)
    decode_s = sum(r["completion_tokens"] / r["tokens_per_second"] for r in items
                   if r["tokens_per_second"] > 0)  # fmt: skip
    return Summary(
        model=model,
        condition=condition,
        suite=suite,
        n=n,
        correct=correct,
        accuracy=correct / n if n else 0.0,
        ci95=wilson(correct, n),
        mean_thinking_tokens=_mean(r["thinking_tokens"] for r in items),
        mean_reflections=_mean(r["reflections"] for r in items),
        changed_by_reflection=(
            sum(1 for r in reflected if r["changed_by_reflection"]) / len(reflected)
            if reflected
            else None
        ),
        reflected=len(reflected),
        unparsed=sum(1 for r in items if r["extracted"] is None),
        mean_seconds=seconds / n if n else 0.0,
        tokens_per_second=tokens / decode_s if decode_s > 0 else 0.0,
    )


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def difference_ci(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """A 95% interval for the difference of two accuracies, k1/n1 − k2/n2: Newcombe's hybrid
    score interval (1998, method 10), built from the two Wilson intervals. It treats the two
    as independent samples, which is conservative when both ran on the same items."""
    if n1 <= 0 or n2 <= 0:
        return (-1.0, 1.0)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1)
    l2, u2 = wilson(k2, n2)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return (max(-1.0, low), min(1.0, high))


@dataclass(frozen=True)
class Comparison:
    """One accuracy against another on the same suite: `condition` on `model` minus `versus`
    (another condition on the same model, or the same condition on another model)."""

    suite: str
    model: str
    condition: str
    versus_model: str
    versus_condition: str
    difference: float
    ci95: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "model": self.model,
            "condition": self.condition,
            "versus_model": self.versus_model,
            "versus_condition": self.versus_condition,
            "difference": round(self.difference, 4),
            "ci95": [round(self.ci95[0], 4), round(self.ci95[1], 4)],
        }


def compare(rows: Sequence[Summary]) -> list[Comparison]:
    """Per suite: each model's first condition against each of its other conditions (reflect
    − plain), and each condition on the first model against the same on each other model
    (Q5 − Q3)."""
    found: list[Comparison] = []
    models = list(dict.fromkeys(r.model for r in rows))
    conditions = list(dict.fromkeys(r.condition for r in rows))
    by_key = {(r.model, r.condition, r.suite): r for r in rows}
    for suite in dict.fromkeys(r.suite for r in rows):
        pairs = [((m, conditions[0]), (m, c)) for m in models for c in conditions[1:]]
        pairs += [((models[0], c), (m, c)) for c in conditions for m in models[1:]]
        for (m1, c1), (m2, c2) in pairs:
            a, b = by_key.get((m1, c1, suite)), by_key.get((m2, c2, suite))
            if a is None or b is None:
                continue
            ci = difference_ci(a.correct, a.n, b.correct, b.n)
            found.append(Comparison(suite, m1, c1, m2, c2, a.accuracy - b.accuracy, ci))
    return found
