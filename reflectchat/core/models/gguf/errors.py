"""The one error a GGUF problem raises, and the helpers its messages share."""

from __future__ import annotations

import os
from pathlib import Path

from reflectchat.core.errors import ModelError


class GGUFError(ModelError):
    """A file that is not a usable GGUF model. ``str(e)`` is one line naming the file.

    ``kind`` says what went wrong, for code that reacts differently (offer a re-download on
    ``"truncated"``): missing, incomplete, directory, not_file, permission, unreadable, empty,
    not_gguf, version, damaged, unsupported, truncated, split.
    """

    def __init__(self, path: str | os.PathLike[str], message: str, kind: str = "damaged") -> None:
        super().__init__(one_line(message))
        self.path = Path(path)
        self.kind = kind


def quote(text: str, limit: int = 80) -> str:
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"'{text}'"


def one_line(message: str) -> str:
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in message)
