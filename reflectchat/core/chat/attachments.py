"""Text that joins a message besides what was typed: files (`ask -a FILE`, `/attach PATH`) and
text piped into `ask` along with a prompt.

Each attachment goes to the model as a fenced block named after its file, all of them before
the prompt: the instruction comes last, right where the model starts answering, which is where
small and large models follow it best ("Summarize this" after the text, not before it).
The history stores the attachments apart from the typed words (store_schema v3), so they are
shown folded and the prompt is rebuilt byte for byte from what is stored.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reflectchat.core.errors import UsageError
from reflectchat.core.units import format_bytes

# Per file, as `view` reads: past this a text file is a log or a dump no context holds.
MAX_ATTACHMENT_BYTES = 16 * 1024 * 1024
STDIN_NAME = "stdin"  # what piped text is called in the prompt and the history


@dataclass(frozen=True)
class Attachment:
    name: str  # the path as given, or "stdin"
    text: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "text": self.text}

    @classmethod
    def from_dict(cls, data: Any) -> Attachment | None:
        """A stored attachment; None for a record that is not one (another tool's edit)."""
        if isinstance(data, dict):
            name, text = data.get("name"), data.get("text")
            if isinstance(name, str) and isinstance(text, str):
                return cls(name, text)
        return None


def read_attachment(path: str) -> Attachment:
    """A text file, read whole. UsageError (one line, with the numbers) for a file that is
    missing, unreadable, a folder, too big, binary or not UTF-8."""
    where = f"cannot attach {path}"
    try:
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise UsageError(f"{where}: it is a folder; attach the files in it one by one")
            if stat.S_ISREG(info.st_mode) and info.st_size > MAX_ATTACHMENT_BYTES:
                raise UsageError(_too_big(where, info.st_size))
            data = f.read(MAX_ATTACHMENT_BYTES + 1)  # a pipe or device has no size to check
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{where}: it is a folder; attach the files in it one by one") from None
    except OSError as exc:
        raise UsageError(f"{where}: {exc.strerror or exc}") from None
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise UsageError(_too_big(where, len(data), at_least=True))
    return Attachment(path, decode_text(data, where))


def _too_big(where: str, size: int, *, at_least: bool = False) -> str:
    more = "more than " if at_least else ""
    return (
        f"{where}: it is {more}{format_bytes(size, 'MiB')}; an attachment can be at most "
        f"{format_bytes(MAX_ATTACHMENT_BYTES, 'MiB', digits=0)}"
    )


def decode_text(data: bytes, where: str) -> str:
    """`data` as text, refusing binaries: a NUL byte (no text format has one) or bytes that
    are not UTF-8. Refused rather than repaired, so the model never reads garbage."""
    nul = data.find(b"\0")
    if nul >= 0:
        raise UsageError(
            f"{where}: it looks binary (a NUL byte at offset {nul:,}); only text files can be "
            "attached"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{where}: it is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start:,}); only text files can be attached — convert it first, e.g. with "
            "iconv -t UTF-8"
        ) from None


def read_attachments(paths: Iterable[str]) -> list[Attachment]:
    return [read_attachment(p) for p in paths]


def stdin_is_data(fd: int = 0) -> bool:
    """Whether file descriptor `fd` is piped or redirected data (a pipe, a socket, a file),
    not a terminal or a device such as /dev/null, so reading it cannot wait on a person."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:  # closed
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode) or stat.S_ISSOCK(mode)


def _fence(text: str) -> str:
    """A backtick fence longer than any run of backticks in `text`, so nothing in an
    attachment can close its block early."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def attachment_block(attachment: Attachment) -> str:
    fence = _fence(attachment.text)
    body = attachment.text if attachment.text.endswith("\n") else attachment.text + "\n"
    return f"{Path(attachment.name).name or attachment.name}:\n{fence}\n{body}{fence}"


def with_attachments(prompt: str, attachments: Sequence[Attachment]) -> str:
    """What the model reads: each attachment as a fenced block, then the prompt."""
    if not attachments:
        return prompt
    blocks = "\n\n".join(attachment_block(a) for a in attachments)
    return f"{blocks}\n\n{prompt}"


def describe(attachments: Sequence[Attachment]) -> str:
    """ "2 attachments (a.txt, stdin: 48,213 characters)", for messages about them."""
    n = len(attachments)
    names = ", ".join(a.name for a in attachments)
    chars = sum(len(a.text) for a in attachments)
    return f"{n} attachment{'s' if n != 1 else ''} ({names}: {chars:,} characters)"
