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
