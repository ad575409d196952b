"""Make untrusted model text safe to write to a terminal.

Model output can carry escape sequences (OSC 52 clipboard writes, OSC 8 links, title changes,
cursor movement). Everything that could reach a terminal goes through `strip_controls` first:
ESC-introduced sequences (CSI, OSC, DCS/SOS/PM/APC strings, two-byte escapes), their 8-bit C1
forms, every other C0/C1 control except newline and tab, and the bidi embedding/override/isolate
controls (invisible, but they reorder what the terminal shows) are removed. Lone surrogates
(undecodable bytes smuggled through `surrogateescape`) become U+FFFD, so no raw byte such as
0x9b (8-bit CSI) can be written out.

Files meant to be read later (Markdown exports) use `escape_controls` instead: the same
characters are shown visibly (ESC as ␛, U+202E as <U+202E>), so the file stays faithful to what
was said and is still safe to `cat`.
"""

from __future__ import annotations

import re

# Caps keep a garbage or never-terminated sequence from hiding the text after it: a string
# (OSC/DCS/…) also ends at a newline, and one with no terminator swallows at most
# _MAX_UNTERMINATED characters of its body; the rest is shown.
_MAX_STRING = 4096
_MAX_UNTERMINATED = 256
_MAX_PARAMS = 64
_MAX_INTERMEDIATES = 16

_STRING_OPENERS = "\x90\x98\x9d\x9e\x9f"
_STRING_BODY_STOPS = "\x07\x1b\x9c\n"

# Order matters: whole sequences first, so their payload goes with them, then lone controls.
_SEQUENCES = re.compile(
    rf"""
      (?P<csi>(?:\x1b\[|\x9b)[\x30-\x3f]{{0,{_MAX_PARAMS}}}[\x20-\x2f]{{0,{_MAX_INTERMEDIATES}}}
        (?P<csi_final>[\x40-\x7e])?)                                  # CSI ... final byte
    | (?P<str>(?:\x1b[\]PX^_]|[{_STRING_OPENERS}])                     # OSC / DCS / SOS / PM / APC
        (?:[^\x07\x1b\x9c\n]{{0,{_MAX_STRING}}}(?:\x07|\x1b\\|\x9c)    # ... up to BEL or ST
         | [^\x07\x1b\x9c\n]{{0,{_MAX_UNTERMINATED}}}))                # ... or never terminated
    | (?P<esc>\x1b[\x20-\x2f]{{0,{_MAX_INTERMEDIATES}}}(?P<esc_final>[\x30-\x7e])?)  # other ESC
    """,
    re.VERBOSE,
)
_BIDI = "\u202a-\u202e\u2066-\u2069"
_CONTROLS = re.compile(rf"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
_SURROGATES = re.compile("[\ud800-\udfff]")
_FAST_SAFE = re.compile(rf"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]")


def strip_controls(text: str) -> str:
    """Remove terminal control sequences, C0/C1 controls (keeping newline and tab) and bidi
    controls; lone surrogates become U+FFFD."""
    if _FAST_SAFE.search(text) is None:  # the common case: nothing to do
        return text
    text = _SURROGATES.sub("\ufffd", text)
    return _CONTROLS.sub("", _SEQUENCES.sub("", text))


_ESCAPABLE = re.compile(rf"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]")


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # the Control Pictures block: ␛ for ESC, ␇ for BEL
    if code == 0x7F:
        return "\u2421"  # ␡
    if code <= 0x9F:
        return f"\\x{code:02x}"
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    return f"<U+{code:04X}>"


def escape_controls(text: str) -> str:
    """Show every control `strip_controls` would remove as visible text instead, keeping
    newline and tab (CRLF becomes a newline): faithful, and safe to `cat`."""
    if _FAST_SAFE.search(text) is None:
        return text
    return _ESCAPABLE.sub(_visible, text.replace("\r\n", "\n"))


_OPENERS = frozenset("\x1b\x9b" + _STRING_OPENERS)


class ControlStripper:
    """`strip_controls` for a stream: an escape sequence split across chunks is held back
    until it ends, so its payload (an OSC 52 clipboard write, a link target) never shows up as
    stray text either. Whatever the chunking, the output is `strip_controls` of the whole
    text, and the held part is bounded (about _MAX_STRING characters)."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, chunk: str) -> str:
        text = self._held + chunk if self._held else chunk
        self._held = ""
        cut = _unsettled_start(text)
        if cut is not None:
            self._held = text[cut:]
            text = text[:cut]
        return strip_controls(text)

    def flush(self) -> str:
        """End of stream: an unfinished sequence is removed the way `strip_controls` removes
        it, and whatever text it would not swallow is returned."""
        held, self._held = self._held, ""
        return strip_controls(held)


def _unsettled_start(text: str) -> int | None:
    """Where the first sequence starts whose extent more text could still change."""
    if not any(c in _OPENERS for c in text):
        return None
    size = len(text)
    for match in _SEQUENCES.finditer(text):
        start = match.start()
        if match.group("str") is not None:
            body = text[start + (2 if text[start] == "\x1b" else 1) :]
            # Terminated, or stopped by a newline/ESC/BEL/ST already here, or longer than any
            # terminated string may be: settled. Otherwise a terminator could still come.
            if len(body) <= _MAX_STRING and not any(c in _STRING_BODY_STOPS for c in body):
                return start
        elif match.end() == size:
            final = match.group("csi_final") if match.group("csi") else match.group("esc_final")
            if final is None:
                return start
    return None
