"""Reading final answers as models write them: real replies (tests/data/eval/samples, copied
from ../shared/reference/samples: Reflection-70B's AIW answers with the tags stripped,
DeepSeek-R1 and its distill, Seed-OSS, Command A) and the phrasings around them."""

from __future__ import annotations

import pytest

from reflectchat.core.eval.checking import check, read_answer
from reflectchat.core.eval.suites import Item
from reflectchat.core.reply.sections import parse
from tests.support.paths import REPO

SAMPLES = REPO / "tests" / "data" / "eval" / "samples"

FRIENDS = Item("aiw", "f", "Alice has 3 male friends and 6 female friends…", "7", "number")
SISTERS_2_4 = Item("aiw", "s", "Alice has 2 sisters and 4 brothers…", "3", "number")
SISTERS_4_1 = Item("aiw", "s", "Alice has 4 sisters and 1 brother…", "5", "number")
STRAWBERRY = Item("letters", "l", 'How many "r" in "strawberry"?', "3", "number")
EGGS = Item("arith", "a", "Janet's ducks…", "18", "number")
WHICH = Item("decimals", "w", "Which number is bigger: 9.11 or 9.9?", "9.9", "choice",
             ("9.11", "9.9"))  # fmt: skip
IS_911 = Item("decimals", "y", "Is 9.11 bigger than 9.9?", "no", "yesno", ("9.11", "9.9"))
PARIS = Item("file", "p", "Capital of France?", "Paris", "exact")


def _sample(name: str) -> str:
    return next(SAMPLES.glob(f"{name}_*.txt")).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("sample", "item", "extracted", "correct"),
    [
        # Reflection-70B, tags stripped by the server: "### Answer: N" after blank lines
        ("03", FRIENDS, "6", False),
        ("04", FRIENDS, "6", False),  # "### Answer: 6" then a sentence repeating 6
        ("05", FRIENDS, "7", True),  # corrected itself 6 -> 7 in prose
        ("06", FRIENDS, "6", False),  # "1 + 2 + 6 = 9 friends" before the answer line
        ("07", SISTERS_2_4, "3", True),
        ("08", SISTERS_4_1, "4", False),
        # DeepSeek-R1-Distill: after </think>, in \[ \boxed{6} \]
        ("20", FRIENDS, "6", False),
        # <think> never closed (token limit): no answer at all
        ("21", FRIENDS, None, False),
        # DeepSeek-R1, <think> pre-filled by the template: "contains **3** instances"
        ("11", STRAWBERRY, "3", True),
        # Command A: "**Answer**: There are \boxed{3} r's"
        ("40", STRAWBERRY, "3", True),
        # Seed-OSS: "**Answer:** 18" after LaTeX "\(9 \times 2 = 18\)"
        ("33", EGGS, "18", True),
    ],
)
def test_real_replies(sample: str, item: Item, extracted: str | None, correct: bool) -> None:
    verdict = check(item, parse(_sample(sample)))
    assert (verdict.extracted, verdict.correct) == (extracted, correct)
    assert verdict.parsed == (extracted is not None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<thinking>s-t-r…</thinking><output>There are three r's in strawberry.</output>", "3"),
        ("<think>count</think>\n\nThe letter r appears **3** times.", "3"),
        ("Answer: 3", "3"),
        ("### Final Answer\n\n3", "3"),
        ("The answer is 3.", "3"),
        ("The answer should be three.", "3"),
        ("Answer: 3.0", "3"),
        ("\\boxed{3}", "3"),
        ("\\[\\boxed{\\text{3}}\\]", "3"),
        ("r appears twice in berry and once in straw, so 1 + 2 = 3", "3"),
        ("Answer: <number>\nI think it is 3 r's", "3"),  # the template echoed, then a value
        ("Answer: 3 r's (positions 3, 8 and 9)", "3"),
        ("Answer: 1,200", "1200"),
        ("It makes $18 a day.", "18"),
        ("Answer: -4", "-4"),
        ("Answer: <number>", None),
        ("", None),
        ("<thinking>It is 3", None),  # cut off while thinking: no answer was given
    ],
)
def test_numbers(text: str, expected: str | None) -> None:
    assert read_answer(STRAWBERRY, parse(text).answer) == expected


def test_a_number_is_compared_by_value() -> None:
    item = Item("file", "x", "?", "1200", "number")
    assert check(item, parse("Answer: 1,200.00")).correct
    assert not check(item, parse("Answer: 120")).correct


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9.9 is bigger than 9.11.", "9.9"),
        ("<output>9.11 is larger.</output>", "9.11"),
        ("Answer: 9.9", "9.9"),
        ("Answer: 9.90", "9.9"),
        ("The bigger number is 9.9.", "9.9"),
        ("9.11 < 9.9", "9.9"),
        ("9.9 > 9.11, since 0.90 > 0.11", "9.9"),
        ("9.11 is smaller than 9.9", "9.9"),
        ("9.11 is not bigger than 9.9", "9.9"),
        ("Comparing the tenths, 9 > 1, so 9.9 is greater than 9.11.", "9.9"),
        ("\\boxed{9.11}", "9.11"),
        ("It is 9.9", "9.9"),  # only one of the two is named
        ("Between 9.11 and 9.9, hard to say.", None),
        ("19.9 is bigger", None),  # not one of the numbers
    ],
)
def test_which_is_bigger(text: str, expected: str | None) -> None:
    assert read_answer(WHICH, parse(text).answer) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("No, 9.11 is smaller than 9.9.", "no"),
        ("Yes! 9.11 is bigger.", "yes"),
        ("Answer: no", "no"),
        ("**Answer:** Yes", "yes"),
        ("\\boxed{No}", "no"),
        ("9.9 is bigger than 9.11.", "no"),  # no yes/no, but the comparison answers it
        ("9.11 is greater than 9.9", "yes"),
        ("There is no doubt: 9.9 is bigger than 9.11.", "no"),
        ("There is no doubt: 9.11 is bigger than 9.9.", "yes"),  # "no" isn't the answer here
        ("I am not sure.", None),
        ("I don't know.", None),
    ],
)
def test_yes_no(text: str, expected: str | None) -> None:
    assert read_answer(IS_911, parse(text).answer) == expected


def test_choice_among_words() -> None:
    item = Item("file", "c", "?", "Blue", "choice", ("red", "blue", "green"))
    assert check(item, parse("Answer: BLUE")).extracted == "blue"
    assert check(item, parse("Answer: BLUE")).correct
    assert check(item, parse("I'd say blue.")).correct
    assert check(item, parse("red or blue?")).extracted is None


@pytest.mark.parametrize(
    ("text", "correct"),
    [
        ("<output>Paris.</output>", True),
        ("Answer: **Paris**", True),
        ("  paris  ", True),
        ('"Paris"', True),
        ("The capital of France is Paris.", False),  # exact means exact
        ("Lyon", False),
    ],
)
def test_exact(text: str, correct: bool) -> None:
    assert check(PARIS, parse(text)).correct is correct


def test_a_reflection_that_changed_the_answer() -> None:
    reply = parse(
        "<thinking>Alice has 2 sisters, so her brother has 2 sisters."
        "<reflection>Wait, I forgot Alice herself: she is his sister too.</reflection>"
        "So he has 3 sisters.</thinking><output>Answer: 3</output>"
    )
    verdict = check(SISTERS_2_4, reply)
    assert (verdict.before_reflection, verdict.extracted) == ("2", "3")
    assert verdict.changed_by_reflection and verdict.correct


def test_a_reflection_that_confirmed_the_answer() -> None:
    reply = parse(
        "<thinking>The answer is 3.<reflection>Check: Alice and her 2 sisters make 3. Right."
        "</reflection></thinking><output>3</output>"
    )
    verdict = check(SISTERS_2_4, reply)
    assert verdict.before_reflection == "3" and not verdict.changed_by_reflection


def test_the_last_of_two_reflections_counts() -> None:
    reply = parse(
        "<thinking>2<reflection>no, 4</reflection>so 4<reflection>no: 3</reflection>"
        "</thinking><output>Answer: 3</output>"
    )
    verdict = check(SISTERS_2_4, reply)
    assert verdict.before_reflection == "4" and verdict.changed_by_reflection


def test_no_reflection_no_change() -> None:
    verdict = check(SISTERS_2_4, parse("<thinking>2</thinking><output>Answer: 3</output>"))
    assert verdict.before_reflection is None and not verdict.changed_by_reflection
