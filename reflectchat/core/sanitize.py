"""Make untrusted model text safe to write to a terminal.

Model output can carry escape sequences (OSC 52 clipboard writes, OSC 8 links, title changes,
cursor movement). Everything that could reach a terminal goes through `strip_controls` first:
ESC-introduced sequences (CSI, OSC, DCS/SOS/PM/APC strings, two-byte escapes), their 8-bit C1
forms, and every other C0/C1 control except newline and tab are removed.
"""

from __future__ import annotations

import re

# Order matters: whole sequences first, so their payload goes with them, then lone controls.
_SEQUENCES = re.compile(
    r"""
      (?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?          # CSI ... final byte
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])                     # OSC / DCS / SOS / PM / APC
      [^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?                       # ... up to BEL or ST
    | \x1b[\x20-\x2f]*[\x30-\x7e]?                                # other ESC sequences
    """,
    re.VERBOSE,
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_FAST_SAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def strip_controls(text: str) -> str:
    """Remove terminal control sequences and C0/C1 controls, keeping newline and tab."""
    if _FAST_SAFE.search(text) is None:  # the common case: nothing to do
        return text
    return _CONTROLS.sub("", _SEQUENCES.sub("", text))


_OPENERS = frozenset("\x1b\x90\x98\x9b\x9d\x9e\x9f")
_MAX_HELD = 4096  # a sequence longer than this is garbage: drop it rather than wait forever


class ControlStripper:
    """`strip_controls` for a stream: an escape sequence split across chunks is held back
    until it ends, so its payload (an OSC 52 clipboard write, a link target) never shows up as
    stray text either."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, chunk: str) -> str:
        text = self._held + chunk if self._held else chunk
        self._held = ""
        start = _last_opener(text)
        if start >= 0:
            tail = text[start:]
            if _is_unfinished(tail) and len(tail) < _MAX_HELD:
                self._held = tail
                text = text[:start]
        return strip_controls(text)

    def flush(self) -> str:
        """End of stream: an unfinished sequence is dropped."""
        self._held = ""
        return ""


def _last_opener(text: str) -> int:
    for i in range(len(text) - 1, max(-1, len(text) - _MAX_HELD - 1), -1):
        if text[i] in _OPENERS:
            return i
    return -1


def _is_unfinished(tail: str) -> bool:
    """True when `tail` (starting at ESC or a C1 opener) could still grow into a sequence."""
    match = _SEQUENCES.match(tail)
    if match is None or match.end() < len(tail):
        return False
    first = tail[0]
    if first == "\x1b":
        if len(tail) == 1:
            return True
        second = tail[1]
        if second == "[":
            return not (len(tail) > 2 and "\x40" <= tail[-1] <= "\x7e")
        if second in "]PX^_":
            return not (tail.endswith(("\x07", "\x1b\\", "\x9c")))
        return "\x20" <= tail[-1] <= "\x2f"  # intermediates: the final byte is still to come
    if first == "\x9b":
        return not (len(tail) > 1 and "\x40" <= tail[-1] <= "\x7e")
    return not tail.endswith(("\x07", "\x1b\\", "\x9c"))
