"""A fast, defensive reader for GGUF model headers (standard library only).

Every model file is untrusted input: llama.cpp's own GGUF parser has had heap-overflow bugs, so
reflectchat reads and checks the header itself before llama.cpp ever sees the file. The checks
follow llama.cpp's loader (``ggml/src/gguf.cpp``): a file this module accepts has a well-formed
header, known value and tensor types, sane counts and sizes, and tensor data laid out exactly where
llama.cpp expects it, all of it present on disk.

``gguf.GGUFReader`` turns every metadata array into numpy (seconds on a 100 MB model); this reader
maps the file once, skips the big vocabulary arrays without decoding them, and keeps arrays of
more than 64 items as :class:`ArrayInfo` (type, length, where they are). It reads the header of a
98 MB SmolLM2 file in about 10 ms.

Every problem raises :class:`GGUFError`, whose message is one line that names the file and says
what to do.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import BinaryIO

from reflectchat.core.models.gguf.diagnose import check_file_state, read_error
from reflectchat.core.models.gguf.errors import GGUFError
from reflectchat.core.models.gguf.header import ArrayInfo, GGUFHeader
from reflectchat.core.models.gguf.parser import NeedMore, Parser
from reflectchat.core.models.gguf.types import SCALAR_FORMATS, U64, ValueType
from reflectchat.core.models.naming import parse_split_name, split_part_name

_FALLBACK_READ = 16 << 20  # first read when the file cannot be memory-mapped


def read_gguf_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """Read and check the header of the GGUF file at ``path``; raise :class:`GGUFError`."""
    p = Path(path)
    check_file_state(p)
    try:
        with open(p, "rb") as f:
            return _read_open_file(p, f)
    except OSError as e:
        raise read_error(p, e) from None


def split_part_paths(path: str | os.PathLike[str], count: int) -> list[Path]:
    """The paths of all ``count`` parts of a split model, given any one part's path
    (llama.cpp's naming: ``NAME-00001-of-00003.gguf``)."""
    p = Path(path)
    split = parse_split_name(p.name)
    if split is None:
        raise GGUFError(
            p,
            f"{p} is one part of a model split into {count} files, but its name does not end in "
            f"-0000N-of-{count:05d}.gguf, so the other parts cannot be found. Keep the original "
            "file names.",
            "split",
        )
    return [p.with_name(split_part_name(split.stem, i, count)) for i in range(1, count + 1)]


def read_gguf_parts(path: str | os.PathLike[str]) -> list[GGUFHeader]:
    """Read and check every file of a model, following ``split.count`` to the other parts.

    Returns one header per part, first part first; a model in one file gives a list of one.
    """
    first = read_gguf_header(path)
    count = first.split_count
    if count <= 1:
        return [first]
    headers: list[GGUFHeader] = []
    for i, part in enumerate(split_part_paths(first.path, count)):
        if part.name == first.path.name:
            header = first
        else:
            if not part.exists():
                raise GGUFError(
                    part,
                    f"{part} is missing: the model is split into {count} files and part {i + 1} "
                    "was not found. Download all parts into the same folder.",
                    "split",
                )
            header = read_gguf_header(part)
        if header.split_count != count or header.split_no != i:
            raise GGUFError(
                part,
                f"{part} does not belong with {first.path.name}: it says it is part "
                f"{header.split_no + 1} of {header.split_count}, not part {i + 1} of {count}. "
                "Download all parts of the same model again.",
                "split",
            )
        headers.append(header)
    return headers


def read_metadata_array(header: GGUFHeader, key: str) -> list[object]:
    """All items of the metadata array ``key`` (for example ``tokenizer.ggml.tokens``)."""
    value = header.metadata.get(key)
    if isinstance(value, list):
        return list(value)
    if not isinstance(value, ArrayInfo):
        raise KeyError(key)
    p = header.path
    try:
        with open(p, "rb") as f:
            if os.fstat(f.fileno()).st_size != header.file_size:
                raise GGUFError(p, f"{p} changed since it was read. Open it again.", "damaged")
            f.seek(value.offset)
            data = f.read(value.nbytes)
    except OSError as e:
        raise GGUFError(p, f"{p} cannot be read: {e.strerror or e}.", "unreadable") from None
    if len(data) != value.nbytes:
        raise GGUFError(p, f"{p} changed since it was read. Open it again.", "damaged")
    if value.item_type != ValueType.STRING:
        items = list(struct.unpack_from(f"<{value.length}{SCALAR_FORMATS[value.item_type]}", data))
        return [bool(x) for x in items] if value.item_type == ValueType.BOOL else items
    out: list[object] = []
    pos = 0
    unpack = U64.unpack_from
    try:
        for _ in range(value.length):
            (n,) = unpack(data, pos)
            pos += 8
            if pos + n > len(data):
                raise struct.error("string past the array")
            out.append(data[pos : pos + n].decode("utf-8", "replace"))
            pos += n
    except struct.error:
        raise GGUFError(p, f"{p} changed since it was read. Open it again.", "damaged") from None
    return out


def _read_open_file(path: Path, f: BinaryIO) -> GGUFHeader:
    fileno = f.fileno()
    size = os.fstat(fileno).st_size
    if size == 0:
        raise GGUFError(path, f"{path} is empty (0 bytes). Download the model again.", "empty")
    try:
        mm = mmap.mmap(fileno, 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        mm = None
    if mm is not None:
        try:
            return Parser(path, mm, len(mm)).parse()
        finally:
            mm.close()
    # No memory map (some network or FUSE file systems): read a prefix, more if it is too short.
    want = min(size, _FALLBACK_READ)
    while True:
        f.seek(0)
        buf = f.read(want)
        try:
            return Parser(path, buf, size).parse()
        except NeedMore:
            if len(buf) < want or want >= size:  # the file shrank while we read it
                raise GGUFError(
                    path, f"{path} changed while it was read. Try again.", "unreadable"
                ) from None
            want = min(size, want * 4)
