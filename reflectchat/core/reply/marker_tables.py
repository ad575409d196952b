"""The markers that are structure in each parser context, compiled for scanning once per
format (sections.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from reflectchat.core.reply.formats import REASONING_KINDS, VERBATIM_KINDS, Marker, ReasoningFormat


@dataclass(frozen=True, slots=True)
class Table:
    """The markers that are structure in one context, ready for scanning."""

    regex: re.Pattern[str] | None
    prefixes: frozenset[str]  # proper prefixes of the markers, folded
    maxlen: int
    first: frozenset[str]  # characters a marker can start with (both cases when folded)


def _table(fmt: ReasoningFormat, markers: list[Marker]) -> Table:
    texts = sorted({m.text for m in markers}, key=len, reverse=True)  # longest first
    if not texts:
        return Table(None, frozenset(), 0, frozenset())
    flags = re.IGNORECASE | re.ASCII if fmt.case_insensitive else 0
    regex = re.compile("|".join(map(re.escape, texts)), flags)
    prefixes = frozenset(fmt.fold(t[:n]) for t in texts for n in range(1, len(t)))
    first = {t[0] for t in texts}
    if fmt.case_insensitive:
        first |= {c.upper() for c in first if c.isascii()} | {
            c.lower() for c in first if c.isascii()
        }
    return Table(regex, prefixes, max(map(len, texts)), frozenset(first))


# Keyed by id(): formats are unhashable (they hold their lookup dict); the format is kept in the
# value so its id cannot be reused while cached.
_TABLES: dict[int, tuple[ReasoningFormat, dict[str, Table]]] = {}


def tables_for(fmt: ReasoningFormat) -> dict[str, Table]:
    """Per-context tables: `start` (nothing written yet), `top` (nothing or untagged text
    open), `section` (a reasoning section open), `header`, and `verbatim:KIND`."""
    cached = _TABLES.get(id(fmt))
    if cached is not None:
        return cached[1]
    ms = list(fmt.markers)
    plain = [m for m in ms if not m.at_start]
    special = [m for m in ms if m.action in ("end", "turn", "header")]
    out = {
        "start": _table(fmt, ms),
        "top": _table(fmt, plain),
        "section": _table(fmt, [m for m in plain if m.action != "switch"]),
        "header": _table(
            fmt,
            [m for m in ms if m.action in ("end", "turn", "header")]
            + ([Marker(fmt.header_end, "header")] if fmt.header_end else []),
        ),
    }
    # Untagged answer text after a finished thinking: a quoted `<think>` or `</think>` is text
    # (a second thinking closer is a pre-fill clue only where markers are special tokens,
    # which a model cannot write by quoting).
    out["answer"] = _table(
        fmt,
        [
            m
            for m in plain
            if m.action != "switch"
            and not (m.action == "open" and m.kind in REASONING_KINDS | {"note"})
            and not (m.action == "close" and m.kind == "thinking" and not fmt.special_tokens)
        ],
    )
    for kind in VERBATIM_KINDS:
        closers = [m for m in plain if m.action == "close" and m.kind == kind]
        out[f"verbatim:{kind}"] = _table(fmt, closers + special)
    _TABLES[id(fmt)] = (fmt, out)
    return out
