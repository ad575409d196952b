"""The numbers a run reports."""

from __future__ import annotations

import math
from typing import Any

import pytest

from reflectchat.core.eval.stats import compare, difference_ci, summarize, wilson


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # reference values (R: prop.test(k, n, correct = FALSE)$conf.int; Wilson 1927)
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),
        (1, 2, 0.0945, 0.9055),
    ],
)
def test_wilson_matches_reference_values(k: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson(k, n)
    assert math.isclose(lo, low, abs_tol=1e-4) and math.isclose(hi, high, abs_tol=1e-4)


def test_wilson_edges() -> None:
    assert wilson(0, 0) == (0.0, 1.0)  # nothing measured: anything is possible
    for n in range(1, 40):
        for k in range(n + 1):
            lo, hi = wilson(k, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0
            assert hi - lo > 0  # never a zero-width interval, even at 0/n and n/n
    # more items, narrower interval
    assert wilson(50, 100)[1] - wilson(50, 100)[0] < wilson(5, 10)[1] - wilson(5, 10)[0]


def _record(condition: str, suite: str, correct: bool, **kw: Any) -> dict[str, Any]:
    base = {
        "model": "m", "condition": condition, "suite": suite, "id": f"{suite}-{id(kw)}",
        "correct": correct, "extracted": "1", "reflections": 0, "thinking_tokens": 0,
        "changed_by_reflection": False, "seconds": 1.0, "completion_tokens": 10,
        "tokens_per_second": 10.0,
    }  # fmt: skip
    base.update(kw)
    return base


def test_summary_per_condition_and_suite() -> None:
    records = [
        _record("reflect", "aiw", True, reflections=2, thinking_tokens=100,
                changed_by_reflection=True, seconds=2.0),
        _record("reflect", "aiw", False, reflections=1, thinking_tokens=50, seconds=4.0),
        _record("reflect", "aiw", False, extracted=None, thinking_tokens=30, seconds=3.0),
        _record("plain", "aiw", True, completion_tokens=20, tokens_per_second=20.0),
        _record("reflect", "letters", True),
        _record("plain", "letters", False),
    ]  # fmt: skip
    rows = summarize(records)
    assert [(r.condition, r.suite) for r in rows] == [
        ("reflect", "aiw"), ("plain", "aiw"), ("reflect", "letters"), ("plain", "letters"),
        ("reflect", "all"), ("plain", "all"),
    ]  # fmt: skip
    first = rows[0]
    assert (first.n, first.correct, first.unparsed, first.reflected) == (3, 1, 1, 2)
    assert math.isclose(first.accuracy, 1 / 3)
    assert first.ci95 == wilson(1, 3)
    assert math.isclose(first.mean_thinking_tokens, 60)
    assert math.isclose(first.mean_reflections, 1.0)
    assert first.changed_by_reflection == 0.5  # of the 2 replies that reflected
    assert math.isclose(first.mean_seconds, 3.0)
    assert rows[1].changed_by_reflection is None  # nothing reflected: not 0%
    all_reflect = rows[4]
    assert (all_reflect.n, all_reflect.correct) == (4, 2)
    data = first.to_dict()
    assert set(data) >= {"name", "model", "suite", "n", "accuracy", "ci95",
                         "mean_thinking_tokens", "mean_reflections", "changed_by_reflection",
                         "unparsed", "mean_seconds"}  # fmt: skip
    assert data["name"] == "reflect" and data["ci95"][0] <= data["accuracy"] <= data["ci95"][1]


def test_one_suite_has_no_all_row() -> None:
    rows = summarize([_record("reflect", "aiw", True), _record("plain", "aiw", True)])
    assert [r.suite for r in rows] == ["aiw", "aiw"]
    assert summarize([]) == []


def test_difference_interval_matches_newcombe() -> None:
    # Newcombe (1998), Table II, example (a): 56/70 − 48/80 = 0.2000, method 10: 0.0524, 0.3339
    lo, hi = difference_ci(56, 70, 48, 80)
    assert math.isclose(lo, 0.0524, abs_tol=1e-4) and math.isclose(hi, 0.3339, abs_tol=1e-4)
    # example (d): 10/10 − 0/10 = 1, method 10: 0.6075, 1.0
    lo, hi = difference_ci(10, 10, 0, 10)
    assert math.isclose(lo, 0.6075, abs_tol=1e-4) and hi == 1.0
    lo, hi = difference_ci(3, 10, 3, 10)
    assert lo < 0 < hi and math.isclose(-lo, hi)


def test_comparisons_of_conditions_and_of_models() -> None:
    records = [
        _record("reflect", "aiw", True, model="q5"), _record("reflect", "aiw", True, model="q5"),
        _record("plain", "aiw", False, model="q5"), _record("plain", "aiw", True, model="q5"),
        _record("reflect", "aiw", False, model="q3"), _record("reflect", "aiw", True, model="q3"),
        _record("plain", "aiw", False, model="q3"), _record("plain", "aiw", False, model="q3"),
    ]  # fmt: skip
    found = [
        (c.model, c.condition, c.versus_model, c.versus_condition, c.difference)
        for c in compare(summarize(records))
    ]
    assert found == [
        ("q5", "reflect", "q5", "plain", 0.5),
        ("q3", "reflect", "q3", "plain", 0.5),
        ("q5", "reflect", "q3", "reflect", 0.5),
        ("q5", "plain", "q3", "plain", 0.5),
    ]
    one = compare(summarize(records))[0]
    assert one.ci95 == difference_ci(2, 2, 1, 2) and one.to_dict()["versus_condition"] == "plain"
