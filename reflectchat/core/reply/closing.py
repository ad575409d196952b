"""The sequence that ends a thinking early and starts the answer, in a reply's own format
(a budget reached, or the user's "answer now")."""

from __future__ import annotations

from collections.abc import Sequence

from reflectchat.core.reply.formats import Marker, ReasoningFormat

# Said in the thinking when a budget closes it, so the model knows to answer now.
WRAP_UP = "\n\nI have to stop thinking here and answer now."


def closing_sequence(fmt: ReasoningFormat, open_kinds: Sequence[str], *, wrap_up: bool) -> str:
    """What ends the thinking now and starts the answer, from where the reply is: a nested
    reflection or budget note is closed first with the format's own closer."""
    out = WRAP_UP if wrap_up else ""
    for kind in reversed(open_kinds[1:]):
        closer = _closer(fmt, kind)
        if closer:
            # a reflection closes on its own line and the thinking resumes for a line, as the
            # strict-format grammar wants: `</reflection>` "\n" thought `</thinking>`
            out += f"\n{closer}\n" if kind == "reflection" else closer
    return out + (fmt.close_thinking or "\n</think>\n\n")


def _closer(fmt: ReasoningFormat, kind: str) -> str:
    marker: Marker | None = next(
        (m for m in fmt.markers if m.action == "close" and m.kind == kind), None
    )
    return marker.text if marker else ""
