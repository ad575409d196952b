"""Test items with exact answers: the built-in suites, generated from a seed, and a user's
JSONL file.

Generated rather than downloaded, so they work offline and cannot have been memorised: the
same seed always gives the same items, and a new seed gives new ones. Each item knows its
answer and which checker reads a reply (see checking.py).
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from hashlib import sha256
from pathlib import Path
from typing import Any, Literal

from reflectchat.core.errors import UsageError

Checker = Literal["number", "yesno", "choice", "exact"]
CHECKERS: tuple[Checker, ...] = ("number", "yesno", "choice", "exact")

# What each checker asks for at the end of the prompt: the same words in every condition, so
# a condition is only ever compared on the system prompt / format it changes.
_ASK = {
    "number": 'End with the final answer on its own line as "Answer: <number>".',
    "yesno": 'End with the final answer on its own line as "Answer: yes" or "Answer: no".',
    "choice": 'End with the final answer on its own line as "Answer: <your choice>".',
}


@dataclass(frozen=True)
class Item:
    """One question. `answer` is the expected final answer as text ("6", "yes", "9.9")."""

    suite: str
    id: str  # stable across runs with the same seed (what --resume matches on)
    prompt: str
    answer: str
    checker: Checker
    # "choice": the options; "yesno" from `decimals`: (the number asked about, the other one),
    # so "9.9 is bigger" can be read as an answer to "Is 9.11 bigger than 9.9?"
    choices: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


# -- letters -------------------------------------------------------------------------------

# Words with doubled letters, where counting by tokens (not letters) goes wrong.
LETTER_WORDS = (
    "strawberry", "raspberry", "cranberry", "blueberry", "bookkeeper", "mississippi",
    "committee", "balloon", "coffee", "parallel", "successful", "banana", "tomorrow", "address",
    "embarrass", "possession", "occurrence", "accommodate", "necessary", "millennium",
    "assessment", "aggressive", "carriage", "llama", "apple", "letter", "grammar", "hippopotamus",
    "giraffe", "cheese", "cappuccino", "broccoli", "connoisseur", "referee", "toffee", "bubble",
)  # fmt: skip


def letters(n: int, seed: int) -> list[Item]:
    rng = random.Random(f"letters:{seed}")
    items = []
    for i in range(n):
        word = rng.choice(LETTER_WORDS)
        doubled = sorted({a for a, b in itertools.pairwise(word) if a == b})
        roll = rng.random()
        if roll < 0.6 and doubled:
            letter = rng.choice(doubled)  # the letter that is doubled: the classic trap
        elif roll < 0.85:
            letter = rng.choice(sorted(set(word)))
        else:
            letter = rng.choice(sorted(set("abcdefghijklmnopqrstuvwxyz") - set(word)))  # 0
        prompt = f'How many times does the letter "{letter}" appear in the word "{word}"?'
        items.append(
            _item("letters", seed, i, prompt, str(word.count(letter)), "number", word=word,
                  letter=letter)
        )  # fmt: skip
    return items


# -- decimals ------------------------------------------------------------------------------


def decimals(n: int, seed: int) -> list[Item]:
    """Pairs like 9.11 / 9.9: the same whole part, and the longer fraction has a smaller first
    digit, so reading the digits after the point as a whole number ("11 > 9") gets it wrong."""
    rng = random.Random(f"decimals:{seed}")
    items = []
    for i in range(n):
        whole = rng.randint(0, 20)
        tenth = rng.randint(2, 9)
        short = f"{whole}.{tenth}"
        long = f"{whole}.{rng.randint(1, tenth - 1)}{rng.randint(1, 9)}"
        kind = rng.choice(("which", "is-long", "is-short"))
        if kind == "which":
            a, b = (short, long) if rng.random() < 0.5 else (long, short)
            prompt = f"Which number is bigger: {a} or {b}?"
            items.append(_item("decimals", seed, i, prompt, short, "choice", choices=(a, b)))
        else:
            x, y = (long, short) if kind == "is-long" else (short, long)
            prompt = f"Is {x} bigger than {y}?"
            answer = "yes" if x == short else "no"
            items.append(_item("decimals", seed, i, prompt, answer, "yesno", choices=(x, y)))
    return items


# -- aiw: "Alice has N brothers and she also has M sisters" --------------------------------


def aiw(n: int, seed: int) -> list[Item]:
    """The "Alice in Wonderland" family (Nezhurina et al., 2024): the trap is forgetting that
    Alice herself is a sister (or a female friend)."""
    rng = random.Random(f"aiw:{seed}")
    items = []
    for i in range(n):
        brothers, sisters = rng.randint(1, 7), rng.randint(1, 7)
        kind = rng.choice(("sisters", "brothers", "friends"))
        if kind == "sisters":
            prompt = (
                f"Alice has {brothers} brother{'s' * (brothers != 1)} and she also has "
                f"{sisters} sister{'s' * (sisters != 1)}. How many sisters does Alice's brother "
                "have?"
            )
            answer = sisters + 1  # Alice is one of them
        elif kind == "brothers":
            prompt = (
                f"Alice has {sisters} sister{'s' * (sisters != 1)} and she also has "
                f"{brothers} brother{'s' * (brothers != 1)}. How many brothers does Alice's "
                "sister have?"
            )
            answer = brothers
        else:
            prompt = (
                f"Alice has {brothers} male friend{'s' * (brothers != 1)} and she also has "
                f"{sisters} female friend{'s' * (sisters != 1)}. They all are friends with each "
                "other and have no other friends aside. How many female friends does a male "
                "friend of Alice have?"
            )
            answer = sisters + 1  # Alice is a female friend of his too
        items.append(_item("aiw", seed, i, prompt, str(answer), "number", kind=kind))
    return items


# -- arith: short multi-step word problems -------------------------------------------------

_NAMES = ("Tom", "Maria", "Sam", "Priya", "Lena", "Omar", "Yuki", "Ben")


def _shop(rng: random.Random) -> tuple[str, int]:
    name, a, b, c, d = rng.choice(_NAMES), *(rng.randint(2, 12) for _ in range(3)), 0
    d = rng.randint(1, a + b * c - 1)
    prompt = (
        f"{name} has {a} apples. {name} buys {b} bags with {c} apples in each bag, then gives "
        f"away {d} apples. How many apples does {name} have now?"
    )
    return prompt, a + b * c - d


def _eggs(rng: random.Random) -> tuple[str, int]:
    laid, eaten, baked, price = rng.randint(12, 30), rng.randint(1, 4), rng.randint(1, 5), 0
    price = rng.randint(2, 5)
    prompt = (
        f"A farmer's hens lay {laid} eggs a day. The farmer eats {eaten} and bakes with "
        f"{baked}, and sells the rest for ${price} each. How many dollars does the farmer make "
        "a day?"
    )
    return prompt, (laid - eaten - baked) * price


def _pages(rng: random.Random) -> tuple[str, int]:
    per_day, days = rng.randint(5, 25), rng.randint(2, 6)
    total = per_day * days + rng.randint(1, 250)  # never read past the end
    prompt = (
        f"A book has {total} pages. Ben reads {per_day} pages a day for {days} days. How many "
        "pages are left to read?"
    )
    return prompt, total - per_day * days


def _boxes(rng: random.Random) -> tuple[str, int]:
    boxes, per_box, broken = rng.randint(3, 9), rng.randint(6, 24), rng.randint(1, 5)
    prompt = (
        f"A shop gets {boxes} boxes of {per_box} glasses each. {broken} glasses arrive broken, "
        "and the rest are put on shelves 4 at a time, with any left over kept in the back. How "
        "many glasses are kept in the back?"
    )
    return prompt, (boxes * per_box - broken) % 4


_ARITH: tuple[Callable[[random.Random], tuple[str, int]], ...] = (_shop, _eggs, _pages, _boxes)


def arith(n: int, seed: int) -> list[Item]:
    rng = random.Random(f"arith:{seed}")
    items = []
    for i in range(n):
        make = rng.choice(_ARITH)
        prompt, answer = make(rng)
        items.append(_item("arith", seed, i, prompt, str(answer), "number", kind=make.__name__[1:]))
    return items


SUITES: dict[str, Callable[[int, int], list[Item]]] = {
    "letters": letters,
    "decimals": decimals,
    "aiw": aiw,
    "arith": arith,
}


def generate(suite: str, n: int, seed: int) -> list[Item]:
    try:
        make = SUITES[suite]
    except KeyError:
        known = ", ".join(SUITES)
        raise UsageError(f"unknown suite '{suite}'; the suites are {known}") from None
    return make(n, seed)


def _item(
    suite: str,
    seed: int,
    index: int,
    question: str,
    answer: str,
    checker: Checker,
    choices: tuple[str, ...] = (),
    **meta: Any,
) -> Item:
    return Item(
        suite=suite,
        id=f"{suite}-{seed}-{index}",
        prompt=f"{question}\n{_ASK[checker]}",
        answer=answer,
        checker=checker,
        choices=choices,
        meta=meta,
    )


# -- a user's items ------------------------------------------------------------------------

MAX_FILE_BYTES = 64 << 20


def load_file(path: Path) -> list[Item]:
    """Items from JSONL: one object a line, {"prompt", "answer"} and optionally "checker"
    (exact, number, choice, yesno; default: number when the answer is a number, else exact)
    and "choices" (for choice). Blank lines are skipped; any bad line is an error naming it."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UsageError(f"{path} is {size >> 20} MiB; an items file can be at most 64 MiB")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such items file") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder; give a .jsonl file of items") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8 (byte {exc.start}); convert it first") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    suite = path.stem or "file"
    items: list[Item] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        item = _file_item(suite, line, f"{path} line {number}")
        if item.id in seen:  # ids must be unique for --resume; same prompt twice is a slip
            raise UsageError(f"{path} line {number}: the same prompt and answer as an earlier line")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise UsageError(f'{path} has no items; each line is {{"prompt": …, "answer": …}}')
    return items


def _file_item(suite: str, line: str, where: str) -> Item:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise UsageError(f'{where}: expected an object like {{"prompt": …, "answer": …}}')
    unknown = sorted(set(data) - {"prompt", "answer", "checker", "choices", "id"})
    if unknown:
        raise UsageError(f"{where}: unknown key '{unknown[0]}' (keys: prompt, answer, checker, "
                         "choices, id)")  # fmt: skip
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise UsageError(f"{where}: 'prompt' must be a non-empty string")
    if "answer" not in data:
        raise UsageError(f"{where}: 'answer' is missing")
    raw = data["answer"]
    if isinstance(raw, bool):
        raw = "yes" if raw else "no"
    if isinstance(raw, int | float):
        raw = str(raw)
    if not isinstance(raw, str) or not raw.strip():
        raise UsageError(f"{where}: 'answer' must be a non-empty string or a number")
    answer = raw.strip()
    checker = data.get("checker")
    if checker is None:
        checker = "number" if _is_number(answer) else "exact"
    if checker not in CHECKERS:
        raise UsageError(f"{where}: checker '{checker}' is not one of {', '.join(CHECKERS)}")
    if checker == "number" and not _is_number(answer):
        raise UsageError(f"{where}: checker 'number' needs a numeric answer, got '{answer}'")
    if checker == "yesno" and answer.lower() not in ("yes", "no"):
        raise UsageError(f"{where}: checker 'yesno' needs the answer yes or no, got '{answer}'")
    choices: tuple[str, ...] = ()
    if checker == "choice":
        options = data.get("choices")
        if not isinstance(options, list) or len(options) < 2:
            raise UsageError(f"{where}: checker 'choice' needs 'choices', a list of 2 or more")
        choices = tuple(str(c).strip() for c in options)
        if answer.casefold() not in [c.casefold() for c in choices]:
            raise UsageError(f"{where}: the answer '{answer}' is not one of the choices")
    elif "choices" in data:
        raise UsageError(f"{where}: 'choices' is only for checker 'choice'")
    given_id = data.get("id")
    if given_id is not None and not isinstance(given_id, str | int):
        raise UsageError(f"{where}: 'id' must be a string or a number")
    digest = sha256(json.dumps([prompt, answer]).encode()).hexdigest()[:12]
    item_id = f"{suite}-{given_id}" if given_id is not None else f"{suite}-{digest}"
    return Item(suite, item_id, prompt, answer.lower() if checker == "yesno" else answer,
                checker, choices)  # fmt: skip


def _is_number(text: str) -> bool:
    try:
        return Decimal(text.replace(",", "")).is_finite()  # not NaN / Infinity
    except InvalidOperation:
        return False
