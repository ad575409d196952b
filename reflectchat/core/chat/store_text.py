"""One-line text from stored messages: titles, search matching and snippets. Control
characters, escape sequences and bidi controls are removed, so nothing stored can disturb the
terminal that shows a list of conversations."""

from __future__ import annotations

import re

from reflectchat.core.reply.sanitize import strip_controls

UNTITLED = "(untitled)"
TITLE_MAX = 60
SNIPPET_WIDTH = 80


def title_from(text: str) -> str:
    """A title from the first user message: its first non-empty line, control characters
    and escape sequences removed, whitespace collapsed, cut at a word boundary so that it
    is at most TITLE_MAX characters (ending in "…" when cut)."""
    for line in clean_lines(text):
        flat = " ".join(line.split())
        if flat:
            return shorten(flat, TITLE_MAX)
    return UNTITLED


def fold(text: str) -> str:
    return " ".join(text.casefold().split())


def icontains(haystack: str | None, needle: str) -> bool:
    """`needle` (already `fold`ed) occurs in `fold(haystack)`."""
    if haystack is None:
        return False
    folded = haystack.casefold()
    # A plain hit is a hit after collapsing whitespace too; only a needle with spaces can need
    # the (slower) collapsed form, to match across wrapped lines.
    return needle in folded or (" " in needle and needle in " ".join(folded.split()))


# Bidi embeddings/overrides/isolates: invisible, but they reorder what a terminal shows.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def clean_lines(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # before \r is stripped as a control
    return _BIDI_CONTROLS.sub("", strip_controls(text)).splitlines()


def one_line(text: str) -> str:
    return " ".join(" ".join(clean_lines(text)).split())


def clean_title(title: str) -> str:
    return one_line(title) or UNTITLED


def shorten(text: str, width: int) -> str:
    """`text` cut to at most `width` characters, at a word boundary when there is a sensible
    one, ending in "…" when cut."""
    if len(text) <= width:
        return text
    cut = text.rfind(" ", 0, width)  # a space at index width-1 keeps width-1 chars + "…"
    end = cut if cut >= width // 2 else width - 1
    return text[:end].rstrip() + "…"


def find_casefolded(text: str, needle: str) -> tuple[int, int]:
    """(start, end) in `text` of the first case-insensitive match of `needle`, or (-1, -1).

    Case folding can change lengths ("ß" -> "ss"), so positions are mapped back per character.
    """
    folded: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        low = ch.casefold()
        folded.append(low)
        origin.extend([i] * len(low))
    target = needle.casefold()
    pos = "".join(folded).find(target) if target else -1
    if pos < 0:
        return -1, -1
    return origin[pos], origin[pos + len(target) - 1] + 1


def snippet(text: str, query: str, width: int = SNIPPET_WIDTH) -> str:
    """One line of about `width` characters of `text` around the first match of `query`."""
    flat = one_line(text)
    start, end = find_casefolded(flat, one_line(query))
    if start < 0 or len(flat) <= width:
        return shorten(flat, width)
    # A little context before the match, more after; `inner` leaves room for two "…".
    inner = width - 2
    lo = max(0, start - width // 4)
    hi = min(len(flat), lo + inner)
    lo = max(0, hi - inner)
    if lo > 0:
        space = flat.find(" ", lo, start)  # start on a word when that keeps the match
        if 0 <= space < lo + 15:
            lo = space + 1
    if hi < len(flat):
        space = flat.rfind(" ", end, hi)
        if space > hi - 15:
            hi = space
    return ("…" if lo > 0 else "") + flat[lo:hi].strip() + ("…" if hi < len(flat) else "")
