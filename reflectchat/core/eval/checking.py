"""Reading a reply's final answer and checking it against an item's.

The answer is read from the reply's answer part (the `<output>`, the text after `</think>`, or
an untagged reply whole), tolerant of how models actually write it: `\\boxed{3}`,
`### Answer: 6`, `**Answer:** 18`, "the answer is three", "9.9 is bigger than 9.11", "No, …".
Explicit statements win over loose text: the last `\\boxed{}`, then the last "answer …"
line that holds a value of the right kind, then the text as a whole.

The same reading, applied to the reasoning before the last reflection, gives the conclusion
the model held before it reflected, so a reflection that changed the answer can be counted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from reflectchat.core.eval.suites import Item
from reflectchat.core.reply.sections import ParsedReply


@dataclass(frozen=True)
class Verdict:
    extracted: str | None  # the final answer as read, normalised; None: no answer found
    correct: bool
    before_reflection: str | None = None  # the conclusion stated before the last reflection
    changed_by_reflection: bool = False  # that conclusion differs from the final answer

    @property
    def parsed(self) -> bool:
        return self.extracted is not None


def check(item: Item, reply: ParsedReply) -> Verdict:
    extracted = read_answer(item, reply.answer)
    correct = extracted is not None and extracted == expected(item)
    before = None
    last = max((i for i, s in enumerate(reply.sections) if s.kind == "reflection"), default=None)
    if last is not None:
        before = read_answer(item, "\n".join(s.text for s in reply.sections[:last]))
    changed = before is not None and extracted is not None and before != extracted
    return Verdict(extracted, correct, before, changed)


def expected(item: Item) -> str:
    """The item's answer in the form read_answer gives."""
    if item.checker == "number":
        return _canonical_number(item.answer) or item.answer
    if item.checker == "choice":
        return next((c for c in item.choices if c.casefold() == item.answer.casefold()),
                    item.answer)  # fmt: skip
    if item.checker == "exact":
        return _normal(item.answer)
    return item.answer.lower()


def read_answer(item: Item, text: str) -> str | None:
    """The final answer `text` states for `item`, normalised (a number as "6", "yes"/"no",
    one of the choices as written, or exact text casefolded); None when it states none."""
    text = _plain(text)
    if not text.strip():
        return None
    reader = _READERS[item.checker]
    for snippet in _explicit(text):
        value = reader(item, snippet, True)
        if value is not None:
            return value
    return reader(item, text, False)


# -- where an answer is stated -----------------------------------------------------------------

_MARKER = re.compile(
    r"\b(?:final\s+)?answer\b(?:\s+(?:is|should\s+be|would\s+be|will\s+be|=))?\s*[:=\-]?\s*"
    r"(?P<rest>[^\n]*\S[^\n]*)",
    re.IGNORECASE,
)


def _explicit(text: str) -> list[str]:
    """The explicit statements of an answer, most authoritative first: each \\boxed{} (last
    first), then each "answer: …" (last first)."""
    return [*reversed(_boxed(text)), *(m["rest"] for m in reversed([*_MARKER.finditer(text)]))]


def _boxed(text: str) -> list[str]:
    found = []
    for match in re.finditer(r"\\boxed\s*\{", text):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                found.append(text[start:i])
                break
    return found


def _plain(text: str) -> str:
    """Markdown emphasis and LaTeX wrappers off, so "**6**" and "\\(18\\)" read as 6 and 18."""
    text = re.sub(r"\\text\s*\{([^{}]*)\}", r"\1", text)
    text = re.sub(r"\\[()\[\]]|[*_`$]", " ", text)
    return text.replace("\u00a0", " ")


# -- reading a value of each kind ----------------------------------------------------------------

_NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
_WORDS = {w: i for i, w in enumerate(_NUMBER_WORDS.split(" "))}
_WORDS.update({"thirty": 30, "forty": 40, "fifty": 50, "once": 1, "twice": 2, "thrice": 3})
_NUMBER = re.compile(
    r"(?<![\w.])(?P<num>-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)(?![\d])"
    rf"|\b(?P<word>{'|'.join(_WORDS)})\b",
    re.IGNORECASE,
)


def _numbers(text: str) -> list[str]:
    values = []
    for m in _NUMBER.finditer(text):
        value = _canonical_number(m["num"]) if m["num"] else str(_WORDS[m["word"].lower()])
        if value is not None:
            values.append(value)
    return values


def _canonical_number(text: str) -> str | None:
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    return format(value.normalize(), "f") if value else "0"


def _read_number(item: Item, text: str, explicit: bool) -> str | None:
    numbers = _numbers(text)
    if not numbers:
        return None
    # "Answer: 6 female friends": the first number; loose text: its conclusion, the last one.
    return numbers[0] if explicit else numbers[-1]


_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def _read_yes_no(item: Item, text: str, explicit: bool) -> str | None:
    found = _YES_NO.search(text)
    if found and (explicit or not text[: found.start()].strip()):
        return found[1].lower()  # "Answer: no", or a reply that leads with it: "No, 9.11 is …"
    if len(item.choices) == 2:  # "Is X bigger than Y?" answered "Y is bigger"
        bigger = _bigger(text, item.choices)
        if bigger is not None:
            return "yes" if bigger == item.choices[0] else "no"
    return found[1].lower() if found else None


def _read_choice(item: Item, text: str, explicit: bool) -> str | None:
    numeric = all(_canonical_number(c) is not None for c in item.choices)
    if numeric:
        if not explicit:
            bigger = _bigger(text, item.choices)  # "9.9 is bigger than 9.11"
            if bigger is not None:
                return bigger
        by_value = {_canonical_number(c): c for c in item.choices}
        mentioned = [by_value[n] for n in _numbers(text) if n in by_value]
        if explicit:
            return mentioned[0] if mentioned else None
        return mentioned[0] if len(set(mentioned)) == 1 else None
    hits = sorted(
        (m.start(), c)
        for c in item.choices
        for m in re.finditer(rf"(?<!\w){re.escape(c)}(?!\w)", text, re.IGNORECASE)
    )
    if explicit:
        return hits[0][1] if hits else None
    return hits[0][1] if len({c for _, c in hits}) == 1 else None


def _read_exact(item: Item, text: str, explicit: bool) -> str | None:
    if not explicit and "\n" in text.strip():
        # loose text of several lines: the answer is its expected text alone on a line
        lines = [_normal(line) for line in text.splitlines() if line.strip()]
        return _normal(item.answer) if _normal(item.answer) in lines else lines[-1]
    return _normal(text) or None


def _normal(text: str) -> str:
    return " ".join(text.strip().strip(".!?;:,\"'“”‘’()").split()).casefold()


_READERS: dict[str, Callable[[Item, str, bool], str | None]] = {
    "number": _read_number,
    "yesno": _read_yes_no,
    "choice": _read_choice,
    "exact": _read_exact,
}

# -- "which is bigger" stated in words or symbols ------------------------------------------------

_MORE = r"(?:bigger|larger|greater|higher)"
_LESS = r"(?:smaller|less|lower)"


def _bigger(text: str, options: tuple[str, ...]) -> str | None:
    """Which of two numbers `text` says is the bigger, from its last comparison of them."""
    if len(options) != 2:
        return None
    a, b = options
    claims: list[tuple[int, str]] = []
    for x, y in ((a, b), (b, a)):
        nx, ny = _num_pattern(x), _num_pattern(y)
        patterns = (
            (rf"{nx}\s*(?:is|'s)?\s*(?:the\s+)?{_MORE}\b", x),
            (rf"{_MORE}\s+(?:number\s+|one\s+|value\s+)?(?:is|:)\s*{nx}", x),
            (rf"{nx}\s*(?:is\s+)?(?:not|isn't|is\s+not)\s+{_MORE}\s+than\s+{ny}", y),
            (rf"{nx}\s*(?:is\s+)?{_LESS}\s+than\s+{ny}", y),
            (rf"{nx}\s*>\s*{ny}", x),
            (rf"{nx}\s*<\s*{ny}", y),
        )
        for pattern, winner in patterns:
            claims += [(m.end(), winner) for m in re.finditer(pattern, text, re.IGNORECASE)]
    return max(claims)[1] if claims else None


def _num_pattern(option: str) -> str:
    # the number as written, not part of a longer one (9.9 is not in 9.95 or 19.9)
    return rf"(?<![\d.]){re.escape(option)}(?!\d)"
