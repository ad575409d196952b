"""What a GGUF file name says: the parts of a split model, and the quantization.

llama.cpp names the parts of a split model ``NAME-00001-of-00003.gguf``; this is the one place
that pattern is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath

_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_QUANT_TOKEN = re.compile(r"(?i)^(?:I?Q\d[A-Z0-9_]*|BF16|F16|F32|MXFP4[A-Z0-9_]*)$")


@dataclass(frozen=True)
class SplitName:
    """A split model's part name taken apart: ``stem``-``number``-of-``count``.gguf."""

    stem: str
    number: int  # 1-based, as in the name
    count: int

    def part(self, number: int) -> str:
        """The file name of another part of the same model."""
        return split_part_name(self.stem, number, self.count)

    def parts(self) -> list[str]:
        """Every part's file name, first part first."""
        return [self.part(i) for i in range(1, self.count + 1)]


def parse_split_name(name: str) -> SplitName | None:
    """The split-part fields of a file name (not a path), or None for a name not of a part."""
    m = _SPLIT.match(name)
    if m is None:
        return None
    return SplitName(m["stem"], int(m["no"]), int(m["count"]))


def split_part_name(stem: str, number: int, count: int) -> str:
    return f"{stem}-{number:05d}-of-{count:05d}.gguf"


def split_part_names(name: str) -> list[str]:
    """All part names of the split model ``name`` is a part of (a path's folder is kept), or
    ``[name]`` when it is not a part."""
    path = PurePosixPath(name)
    split = parse_split_name(path.name)
    if split is None:
        return [name]
    return [str(path.with_name(part)) for part in split.parts()]


def split_family(name: str) -> list[str]:
    """``name``, or every part of the split model whose first part it is."""
    parts = split_part_names(name)
    return parts if parts[0] == name else [name]


def quant_matches(filename: str, quant: str) -> bool:
    """Whether a GGUF file name carries this quantization (Q4_K_M, not Q4_K_S or IQ4_K_M)."""
    pattern = rf"(?<![A-Za-z0-9]){re.escape(quant)}(?![A-Za-z0-9_])"
    return re.search(pattern, PurePath(filename).name, re.IGNORECASE) is not None


def guess_quant(filename: str) -> str | None:
    """The quantization a GGUF file name carries (``…-Q4_K_M.gguf`` → ``Q4_K_M``), if any."""
    name = PurePosixPath(filename).name
    if not name.lower().endswith(".gguf"):
        return None
    split = parse_split_name(name)
    stem = split.stem if split else name[:-5]
    for token in reversed(re.split(r"[-.]", stem)):
        if _QUANT_TOKEN.match(token):
            return token.upper()
    return None
