"""The built-in suites: seeded and deterministic, and every answer checked here by other
means than the generator's own (str.count, Decimal, the puzzle's logic re-read from the
prompt text)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from reflectchat.core.errors import UsageError
from reflectchat.core.eval.suites import SUITES, generate, load_file

N = 200


@pytest.mark.parametrize("suite", list(SUITES))
def test_same_seed_same_items_other_seed_other_items(suite: str) -> None:
    assert generate(suite, 30, seed=7) == generate(suite, 30, seed=7)
    assert [i.prompt for i in generate(suite, 30, seed=7)] != [
        i.prompt for i in generate(suite, 30, seed=8)
    ]
    # a longer run starts with the shorter one's items, so -n 50 extends -n 20
    assert generate(suite, 50, seed=3)[:20] == generate(suite, 20, seed=3)
    items = generate(suite, N, seed=1)
    assert len({i.id for i in items}) == N
    assert all(i.suite == suite and i.prompt.strip() for i in items)


def test_letters_answers_are_str_count() -> None:
    items = generate("letters", N, seed=0)
    doubled = 0
    for item in items:
        letter, word = re.match(r'.*letter "(\w)" appear in the word "(\w+)"', item.prompt).groups()
        assert item.answer == str(word.count(letter))
        assert item.checker == "number"
        doubled += letter * 2 in word
    assert doubled > N // 3  # mostly the trap: a doubled letter, as in straw-be-rr-y
    assert any(i.answer == "0" for i in items)  # and some letters that aren't there at all
    assert any("strawberry" in i.prompt for i in items)


def test_decimals_trick_digit_by_digit_readers() -> None:
    for item in generate("decimals", N, seed=0):
        a, b = re.findall(r"\d+\.\d+", item.prompt)[:2]
        x, y = Decimal(a), Decimal(b)
        assert int(x) == int(y) and x != y
        # the digits after the point, read as whole numbers, order them the wrong way round
        assert (int(a.split(".")[1]) > int(b.split(".")[1])) == (x < y)
        if item.checker == "choice":
            assert item.prompt.startswith("Which number is bigger")
            assert set(item.choices) == {a, b}
            assert item.answer == str(max(x, y))
        else:
            assert item.checker == "yesno" and item.choices == (a, b)
            assert item.answer == ("yes" if x > y else "no")
    kinds = {i.checker for i in generate("decimals", N, seed=0)}
    assert kinds == {"choice", "yesno"}


def test_aiw_answers_count_alice_herself() -> None:
    for item in generate("aiw", N, seed=0):
        q = item.prompt
        brothers = int(re.search(r"(\d+) (?:brothers?|male friends?)", q)[1])
        sisters = int(re.search(r"(\d+) (?:sisters?|female friends?)", q)[1])
        if "How many sisters does Alice's brother have" in q:
            assert item.answer == str(sisters + 1)
        elif "How many brothers does Alice's sister have" in q:
            assert item.answer == str(brothers)
        else:
            assert "How many female friends does a male friend of Alice have" in q
            assert item.answer == str(sisters + 1)
        # plurals agree with the numbers
        assert not re.search(r"\b1 (brothers|sisters|male friends|female friends)\b", q)


def test_arith_answers_recomputed_from_the_text() -> None:
    seen = set()
    for item in generate("arith", N, seed=0):
        q = item.prompt
        nums = [int(x) for x in re.findall(r"\d+", q.split("\n")[0])]
        if "apples" in q:
            a, b, c, d = nums
            expected = a + b * c - d
        elif "eggs" in q:
            laid, eaten, baked, price = nums
            expected = (laid - eaten - baked) * price
        elif "pages" in q:
            total, per_day, days = nums
            expected = total - per_day * days
        else:
            boxes, per_box, broken, at_a_time = nums
            expected = (boxes * per_box - broken) % at_a_time
        seen.add(q.split()[1])
        assert item.answer == str(expected)
        assert int(item.answer) >= 0
    assert len(seen) >= 4


def test_unknown_suite_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown suite 'trivia'; the suites are letters"):
        generate("trivia", 3, 0)


# -- a user's items -------------------------------------------------------------------------


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_file_items_and_default_checkers(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        json.dumps({"prompt": "2+2?", "answer": 4}),
        "",
        json.dumps({"prompt": "Capital of France?", "answer": "Paris"}),
        json.dumps({"prompt": "Pick", "answer": "B", "checker": "choice", "choices": ["A", "B"]}),
        json.dumps({"prompt": "Is ice cold?", "answer": True}),
        json.dumps({"prompt": "Is fire cold?", "answer": "No", "checker": "yesno", "id": 7}),
    )
    items = load_file(path)
    assert [(i.checker, i.answer) for i in items] == [
        ("number", "4"),
        ("exact", "Paris"),
        ("choice", "B"),
        ("exact", "yes"),
        ("yesno", "no"),
    ]
    assert items[2].choices == ("A", "B")
    assert {i.suite for i in items} == {"mine"}
    assert items[4].id == "mine-7"
    assert load_file(path) == items  # ids are stable: --resume can match them


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ("[1, 2]", 'line 2: expected an object like {"prompt"'),
        ('{"prompt": "x"}', "line 2: 'answer' is missing"),
        ('{"answer": 1}', "line 2: 'prompt' must be a non-empty string"),
        ('{"prompt": "x", "answer": ""}', "line 2: 'answer' must be a non-empty string"),
        ('{"prompt": "x", "answer": 1, "checker": "fuzzy"}', "checker 'fuzzy' is not one of"),
        ('{"prompt": "x", "answer": "many", "checker": "number"}', "needs a numeric answer"),
        ('{"prompt": "x", "answer": "NaN", "checker": "number"}', "needs a numeric answer"),
        ('{"prompt": "x", "answer": "maybe", "checker": "yesno"}', "needs the answer yes or no"),
        ('{"prompt": "x", "answer": "A", "checker": "choice"}', "needs 'choices'"),
        ('{"prompt": "x", "answer": "C", "checker": "choice", "choices": ["A", "B"]}',
         "the answer 'C' is not one of the choices"),
        ('{"prompt": "x", "answer": "A", "choices": ["A", "B"]}', "'choices' is only for"),
        ('{"prompt": "x", "answer": 1, "extra": 1}', "unknown key 'extra'"),
        ('{"prompt": "2+2?", "answer": 4}', "the same prompt and answer as an earlier line"),
    ],
)  # fmt: skip
def test_bad_lines_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = _write(tmp_path, '{"prompt": "2+2?", "answer": 4}', line)
    with pytest.raises(UsageError) as err:
        load_file(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such items file"):
        load_file(tmp_path / "missing.jsonl")
    with pytest.raises(UsageError, match="is a folder"):
        load_file(tmp_path)
    empty = _write(tmp_path, "", "  ")
    with pytest.raises(UsageError, match="has no items"):
        load_file(empty)
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes('{"prompt": "caf\xe9", "answer": 1}\n'.encode("latin-1"))
    with pytest.raises(UsageError, match="is not UTF-8"):
        load_file(latin1)
