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
import re
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NoReturn

__all__ = [
    "FILE_TYPE_NAMES",
    "GGML_BLOCK_SIZES",
    "GGML_TYPE_NAMES",
    "ArrayInfo",
    "GGUFError",
    "GGUFHeader",
    "TensorInfo",
    "ValueType",
    "read_gguf_header",
    "read_gguf_parts",
    "read_metadata_array",
    "split_part_paths",
]

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
HEADER_SIZE = 24  # magic, version (u32), tensor count (u64), metadata count (u64)
MAX_DIMS = 4  # GGML_MAX_DIMS: llama.cpp rejects tensors with more dimensions
MAX_TENSOR_NAME_BYTES = 63  # GGML_MAX_NAME - 1
MAX_STRING_BYTES = 1 << 30  # GGUF_MAX_STRING_LENGTH in llama.cpp
MAX_ARRAY_ITEMS = 1 << 30  # GGUF_MAX_ARRAY_ELEMENTS in llama.cpp
# Far beyond any real model (vocabularies hold ~50k-260k entries, models ~300-3,000 tensors), and
# low enough that a hostile file cannot keep the reader busy for minutes.
MAX_STRING_ARRAY_ITEMS = 1 << 24
MAX_TENSORS = 1 << 20
MAX_KV = 1 << 20
_MAX_LAYERS = 512  # LLAMA_MAX_LAYERS in llama.cpp
# Plausible ranges for the architecture's shape keys ("llama.context_length", …): wide enough for
# every real model (Llama 4 Scout: 10M context; Llama 3.1 405B: 126 layers, 16,384 wide; Mamba
# stores 0 heads), narrow enough that nothing downstream overflows or allocates absurdly.
HPARAM_RANGES: dict[str, tuple[int, int]] = {
    "context_length": (1, 1 << 24),
    "block_count": (1, _MAX_LAYERS),
    "embedding_length": (1, 1 << 17),
    "feed_forward_length": (0, 1 << 20),
    "attention.head_count": (0, 1 << 12),
    "attention.head_count_kv": (0, 1 << 12),
    "attention.key_length": (0, 1 << 16),
    "attention.value_length": (0, 1 << 16),
    "vocab_size": (1, MAX_STRING_ARRAY_ITEMS),
    "expert_count": (0, 1 << 12),
    "expert_used_count": (0, 1 << 12),
}
INLINE_ARRAY_LIMIT = 64  # arrays of at most this many items are returned as lists
INT64_MAX = (1 << 63) - 1
_MIN_KV_BYTES = 8 + 1 + 4 + 1  # key length, a one-byte key, value type, a one-byte value
_MIN_TENSOR_BYTES = 8 + 4 + 4 + 8  # name length, n_dims, type, offset
_FALLBACK_READ = 16 << 20  # first read when the file cannot be memory-mapped


class ValueType:
    """GGUF metadata value types (``gguf_type``)."""

    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


_SCALAR_FORMATS = {
    ValueType.UINT8: "B",
    ValueType.INT8: "b",
    ValueType.UINT16: "H",
    ValueType.INT16: "h",
    ValueType.UINT32: "I",
    ValueType.INT32: "i",
    ValueType.FLOAT32: "f",
    ValueType.BOOL: "B",  # llama.cpp reads a byte and treats any non-zero value as true
    ValueType.UINT64: "Q",
    ValueType.INT64: "q",
    ValueType.FLOAT64: "d",
}
_SCALARS = {t: struct.Struct("<" + c) for t, c in _SCALAR_FORMATS.items()}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I32 = struct.Struct("<i")
_ARRAY_HEAD = struct.Struct("<IQ")
_COUNTS = struct.Struct("<IQQ")
_DIMS = [struct.Struct(f"<{n}q") for n in range(MAX_DIMS + 1)]

# ggml tensor types: id -> (name, elements per block, bytes per block), as in ggml.c's type traits.
_GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 36),  # two halves + 32 quants (gguf-py's table says 40; ggml's is right)
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}
GGML_TYPE_NAMES: dict[int, str] = {t: v[0] for t, v in _GGML_TYPES.items()}
GGML_BLOCK_SIZES: dict[int, tuple[int, int]] = {t: (v[1], v[2]) for t, v in _GGML_TYPES.items()}
# Types that once existed in GGUF files and that current llama.cpp refuses to load.
_REMOVED_GGML_TYPES = {
    4: "Q4_2",
    5: "Q4_3",
    31: "Q4_0_4_4",
    32: "Q4_0_4_8",
    33: "Q4_0_8_8",
    36: "IQ4_NL_4_4",
    37: "IQ4_NL_4_8",
    38: "IQ4_NL_8_8",
}

# general.file_type (llama_ftype) -> the quantization name people use ("Q4_K_M").
FILE_TYPE_NAMES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    4: "Q4_1_SOME_F16",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    33: "Q4_0_4_4",
    34: "Q4_0_4_8",
    35: "Q4_0_8_8",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
    39: "NVFP4",
    40: "Q1_0",
}
_FILE_TYPE_GUESSED = 1024  # LLAMA_FTYPE_GUESSED: "not specified in the model file"

_PARTIAL_SUFFIXES = (".incomplete", ".part", ".partial", ".crdownload", ".download")
_SPLIT_NAME = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)


class GGUFError(Exception):
    """A file that is not a usable GGUF model. ``str(e)`` is one line naming the file.

    ``kind`` says what went wrong, for code that reacts differently (offer a re-download on
    ``"truncated"``): missing, incomplete, directory, not_file, permission, unreadable, empty,
    not_gguf, version, damaged, unsupported, truncated, split.
    """

    def __init__(self, path: str | os.PathLike[str], message: str, kind: str = "damaged") -> None:
        super().__init__(_one_line(message))
        self.path = Path(path)
        self.kind = kind


@dataclass(frozen=True)
class ArrayInfo:
    """A metadata array that was not decoded: its item type, length and place in the file."""

    item_type: int
    length: int
    offset: int = field(default=0, compare=False)  # file offset of the first item
    nbytes: int = field(default=0, compare=False)  # bytes the items take in the file


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's description. ``shape`` is in GGUF order (fastest-varying dimension first);
    ``offset`` counts from the start of the data section (``GGUFHeader.data_offset``)."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int
    nbytes: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def type_name(self) -> str:
        return GGML_TYPE_NAMES.get(self.ggml_type, str(self.ggml_type))


@dataclass
class GGUFHeader:
    """Everything in a GGUF file except the tensor data.

    ``metadata`` maps keys to ints, floats, bools and strings; arrays of at most 64 items are
    lists, longer ones :class:`ArrayInfo` (read them with :func:`read_metadata_array`).
    """

    path: Path
    version: int
    file_size: int
    alignment: int
    data_offset: int
    metadata: dict[str, object]
    tensors: list[TensorInfo]

    def _get(self, key: str) -> object:
        return self.metadata.get(key)

    def arch_int(self, suffix: str) -> int | None:
        """An integer under this architecture's prefix, e.g. "attention.key_length"."""
        arch = self.architecture
        return _as_int(self.metadata.get(f"{arch}.{suffix}")) if arch else None

    @property
    def architecture(self) -> str | None:
        value = self._get("general.architecture")
        return value if isinstance(value, str) else None

    @property
    def name(self) -> str | None:
        value = self._get("general.name")
        return value if isinstance(value, str) else None

    @property
    def context_length(self) -> int | None:
        return self.arch_int("context_length")

    @property
    def block_count(self) -> int | None:
        return self.arch_int("block_count")

    @property
    def embedding_length(self) -> int | None:
        return self.arch_int("embedding_length")

    @property
    def head_count(self) -> int | None:
        """Attention heads (the largest value when the model stores one per layer)."""
        return self.arch_int("attention.head_count")

    @property
    def head_count_kv(self) -> int | None:
        """Key/value heads (the largest value when the model stores one per layer)."""
        return self.arch_int("attention.head_count_kv")

    @property
    def chat_template(self) -> str | None:
        value = self._get("tokenizer.chat_template")
        return value if isinstance(value, str) else None

    @property
    def file_type(self) -> int | None:
        return _as_int(self._get("general.file_type"))

    @property
    def quantization(self) -> str | None:
        """``"Q4_K_M"``-style name from ``general.file_type``, else the type holding the most
        weights; None for a file without tensors or file type."""
        file_type = self.file_type
        if file_type is not None:
            name = FILE_TYPE_NAMES.get(file_type & ~_FILE_TYPE_GUESSED)
            if name:
                return name
        counts: dict[int, int] = {}
        for t in self.tensors:
            counts[t.ggml_type] = counts.get(t.ggml_type, 0) + t.n_elements
        if not counts:
            return None
        dominant = max(counts, key=lambda k: counts[k])
        return GGML_TYPE_NAMES.get(dominant, str(dominant))

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def split_count(self) -> int:
        """How many files the model is split into (1 when it is not split)."""
        count = _as_int(self._get("split.count"))
        return count if count and count > 0 else 1

    @property
    def split_no(self) -> int:
        """This file's 0-based place among the split files (0 when not split)."""
        return _as_int(self._get("split.no")) or 0

    @property
    def data_end(self) -> int:
        """File offset just past the last tensor's bytes (``data_offset`` when no tensors)."""
        return self.data_offset + max((t.offset + t.nbytes for t in self.tensors), default=0)


def read_gguf_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """Read and check the header of the GGUF file at ``path``; raise :class:`GGUFError`."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise _missing_error(p) from None
    except PermissionError:
        raise GGUFError(
            p, f"{p} cannot be read: permission denied. {_PERM_HINT}", "permission"
        ) from None
    except OSError as e:
        raise GGUFError(p, f"{p} cannot be read: {e.strerror or e}.", "unreadable") from None
    if stat.S_ISDIR(st.st_mode):
        raise _directory_error(p)
    if not stat.S_ISREG(st.st_mode):
        raise GGUFError(
            p,
            f"{p} is not a regular file (a device, pipe or socket). Point to a .gguf model file.",
            "not_file",
        )
    _check_partial_name(p)
    aria = p.with_name(p.name + ".aria2")
    if aria.exists():
        raise GGUFError(
            p,
            f"The download of {p} is incomplete: {aria.name} shows it is still in progress or was "
            "interrupted. Let it finish, or download it again.",
            "incomplete",
        )
    if st.st_size == 0:
        raise GGUFError(p, f"{p} is empty (0 bytes). Download the model again.", "empty")
    try:
        with open(p, "rb") as f:
            return _read_open_file(p, f)
    except PermissionError:
        raise GGUFError(
            p, f"{p} cannot be read: permission denied. {_PERM_HINT}", "permission"
        ) from None
    except OSError as e:
        raise GGUFError(p, f"{p} cannot be read: {e.strerror or e}.", "unreadable") from None


def split_part_paths(path: str | os.PathLike[str], count: int) -> list[Path]:
    """The paths of all ``count`` parts of a split model, given any one part's path
    (llama.cpp's naming: ``NAME-00001-of-00003.gguf``)."""
    p = Path(path)
    m = _SPLIT_NAME.match(p.name)
    if not m:
        raise GGUFError(
            p,
            f"{p} is one part of a model split into {count} files, but its name does not end in "
            f"-0000N-of-{count:05d}.gguf, so the other parts cannot be found. Keep the original "
            "file names.",
            "split",
        )
    return [p.with_name(f"{m['prefix']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]


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
        items = list(struct.unpack_from(f"<{value.length}{_SCALAR_FORMATS[value.item_type]}", data))
        return [bool(x) for x in items] if value.item_type == ValueType.BOOL else items
    out: list[object] = []
    pos = 0
    unpack = _U64.unpack_from
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


# --- internals --------------------------------------------------------------------------------

_PERM_HINT = "Check the file's permissions (for example chmod a+r), or copy it somewhere readable."


class _NeedMore(Exception):
    """The header goes on past the bytes read so far (only without a memory map)."""


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
            return _Parser(path, mm, len(mm)).parse()
        finally:
            mm.close()
    # No memory map (some network or FUSE file systems): read a prefix, more if it is too short.
    want = min(size, _FALLBACK_READ)
    while True:
        f.seek(0)
        buf = f.read(want)
        try:
            return _Parser(path, buf, size).parse()
        except _NeedMore:
            if len(buf) < want or want >= size:  # the file shrank while we read it
                raise GGUFError(
                    path, f"{path} changed while it was read. Try again.", "unreadable"
                ) from None
            want = min(size, want * 4)


class _Parser:
    def __init__(self, path: Path, buf: bytes | mmap.mmap, file_size: int) -> None:
        self.path = path
        self.buf = buf
        self.limit = len(buf)
        self.file_size = file_size
        self.strings_left = MAX_STRING_ARRAY_ITEMS * 2  # over all string arrays together

    # errors ------------------------------------------------------------------------------------
    def fail(
        self, what: str, kind: str = "damaged", action: str = "Download it again."
    ) -> NoReturn:
        raise GGUFError(self.path, f"{self.path} is damaged: {what}. {action}", kind)

    def unsupported(self, what: str) -> NoReturn:
        raise GGUFError(
            self.path,
            f"{self.path} cannot be used: {what}. The file is damaged or made for newer "
            "software; download it again, or update reflectchat and llama-cpp-python.",
            "unsupported",
        )

    def past_end(self, what: str) -> NoReturn:
        if self.limit < self.file_size:
            raise _NeedMore
        raise GGUFError(
            self.path,
            f"{self.path} is damaged or cut short: {what} runs past the end of the file "
            f"({_size(self.file_size)}). Download it again.",
            "truncated",
        )

    def cut_short(self, what: str) -> NoReturn:
        raise GGUFError(
            self.path,
            f"{self.path} is damaged or cut short: {what}, more than the file "
            f"({_size(self.file_size)}) can hold. Download it again.",
            "truncated",
        )

    def need(self, pos: int, n: int, what: str) -> None:
        if pos + n > self.limit:
            self.past_end(what)

    # reading -----------------------------------------------------------------------------------
    def u32(self, pos: int, what: str) -> int:
        self.need(pos, 4, what)
        return _U32.unpack_from(self.buf, pos)[0]

    def u64(self, pos: int, what: str) -> int:
        self.need(pos, 8, what)
        return _U64.unpack_from(self.buf, pos)[0]

    def string(self, pos: int, what: str) -> tuple[str, int]:
        n = self.u64(pos, what)
        pos += 8
        if n > MAX_STRING_BYTES:
            self.fail(f"{what} claims to be {_size(n)} long")
        if n > self.file_size - pos:
            self.cut_short(f"{what} claims to be {_size(n)} long")
        self.need(pos, n, what)
        return self.buf[pos : pos + n].decode("utf-8", "replace"), pos + n

    def parse(self) -> GGUFHeader:
        path, buf = self.path, self.buf
        head = buf[: min(self.limit, 512)]
        if head[:4] != GGUF_MAGIC:
            raise GGUFError(path, _foreign_file_message(path, head), "not_gguf")
        if self.file_size < HEADER_SIZE:
            raise GGUFError(
                path,
                f"{path} is too short to be a GGUF model ({_size(self.file_size)}). "
                "Download it again.",
                "truncated",
            )
        version, n_tensors, n_kv = _COUNTS.unpack_from(buf, 4)
        _check_version(path, version)
        if n_tensors > MAX_TENSORS:
            self.fail(f"the header claims {n_tensors:,} tensors, far more than any model has")
        if n_kv > MAX_KV:
            self.fail(f"the header claims {n_kv:,} metadata entries, far more than any model has")
        if n_tensors * _MIN_TENSOR_BYTES + n_kv * _MIN_KV_BYTES > self.file_size - HEADER_SIZE:
            self.cut_short(f"the header claims {n_tensors:,} tensors and {n_kv:,} metadata entries")

        pos = HEADER_SIZE
        metadata: dict[str, object] = {}
        alignment_type: int | None = None
        for i in range(n_kv):
            key, pos = self.string(pos, f"metadata key #{i + 1}")
            if not key:
                self.fail(f"metadata key #{i + 1} is empty")
            if key in metadata:
                self.fail(f"metadata key {_q(key)} appears twice")
            vtype = self.u32(pos, f"the type of {_q(key)}")
            pos += 4
            if key == "general.alignment":
                alignment_type = vtype
            metadata[key], pos = self.value(pos, vtype, key)
        self.check_hparams(metadata)

        alignment = DEFAULT_ALIGNMENT
        if alignment_type is not None:
            if alignment_type != ValueType.UINT32:
                self.fail("general.alignment is not stored as a 32-bit unsigned integer")
            alignment = metadata["general.alignment"]  # type: ignore[assignment]
            if alignment == 0 or alignment & (alignment - 1):
                self.fail(f"general.alignment is {alignment}, not a power of two")

        tensors: list[TensorInfo] = []
        names: set[str] = set()
        for i in range(n_tensors):
            tensor, pos = self.tensor_info(pos, i, names)
            tensors.append(tensor)

        header_end = pos
        data_offset = _pad(pos, alignment) if n_tensors else pos
        header = GGUFHeader(
            path=path,
            version=version,
            file_size=self.file_size,
            alignment=alignment,
            data_offset=data_offset,
            metadata=metadata,
            tensors=tensors,
        )
        self.check_layout(header, header_end)
        return header

    def value(self, pos: int, vtype: int, key: str) -> tuple[object, int]:
        scalar = _SCALARS.get(vtype)
        if scalar is not None:
            self.need(pos, scalar.size, f"the value of {_q(key)}")
            v = scalar.unpack_from(self.buf, pos)[0]
            return (bool(v) if vtype == ValueType.BOOL else v), pos + scalar.size
        if vtype == ValueType.STRING:
            return self.string(pos, f"the value of {_q(key)}")
        if vtype == ValueType.ARRAY:
            return self.array(pos, key)
        self.unsupported(f"metadata key {_q(key)} has unknown value type {vtype}")

    def array(self, pos: int, key: str) -> tuple[object, int]:
        what = f"the array {_q(key)}"
        self.need(pos, _ARRAY_HEAD.size, what)
        item_type, n = _ARRAY_HEAD.unpack_from(self.buf, pos)
        pos += _ARRAY_HEAD.size
        if item_type == ValueType.ARRAY:
            self.unsupported(f"{what} holds arrays, which llama.cpp does not support")
        if n > MAX_ARRAY_ITEMS:
            self.fail(f"{what} claims {n:,} items")
        start = pos
        remaining = self.file_size - pos
        scalar = _SCALARS.get(item_type)
        if scalar is not None:
            nbytes = n * scalar.size
            if nbytes > remaining:
                self.cut_short(f"{what} claims {n:,} items")
            self.need(pos, nbytes, what)
            end = pos + nbytes
            if n <= INLINE_ARRAY_LIMIT:
                items = list(struct.unpack_from(f"<{n}{_SCALAR_FORMATS[item_type]}", self.buf, pos))
                if item_type == ValueType.BOOL:
                    items = [bool(x) for x in items]
                return items, end
            return ArrayInfo(item_type, n, start, nbytes), end
        if item_type != ValueType.STRING:
            self.unsupported(f"{what} has unknown item type {item_type}")
        self.strings_left -= n
        if n > MAX_STRING_ARRAY_ITEMS or self.strings_left < 0:
            self.fail(f"{what} claims {n:,} strings, far more than any vocabulary has")
        if n * 8 > remaining:
            self.cut_short(f"{what} claims {n:,} strings")
        if n <= INLINE_ARRAY_LIMIT:
            strings = []
            for j in range(n):
                s, pos = self.string(pos, f"item {j} of {what}")
                strings.append(s)
            return strings, pos
        # The hot loop: skip e.g. 49,152 vocabulary strings without decoding them. unpack_from
        # raises struct.error past the end of the buffer, which doubles as the bounds check.
        unpack = _U64.unpack_from
        buf = self.buf
        try:
            for _ in range(n):
                pos += 8 + unpack(buf, pos)[0]
        except (struct.error, OverflowError):
            self.past_end(what)
        if pos > self.limit:
            self.past_end(what)
        return ArrayInfo(item_type, n, start, pos - start), pos

    def check_hparams(self, metadata: dict[str, object]) -> None:
        """The model's shape numbers within what any real model has: llama.cpp trusts them to
        size arrays and buffers (context_length 0xFFFFFFFF reaches llama-cpp-python as -1, an
        impossible block_count aborts the process), so a file claiming otherwise is refused
        here, with the key named, even under --force."""
        arch = metadata.get("general.architecture")
        if not isinstance(arch, str):
            return
        for suffix, (low, high) in HPARAM_RANGES.items():
            key = f"{arch}.{suffix}"
            if key not in metadata:
                continue
            value = metadata[key]
            if isinstance(value, ArrayInfo):
                value = self.small_int_array(value)
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, bool) or not isinstance(item, int):
                    self.fail(f"{_q(key)} holds {_q(str(item), 40)}, not a whole number")
                if not low <= item <= high:
                    self.fail(
                        f"{_q(key)} is {item:,}, not a plausible value "
                        f"(real models have {low:,} to {high:,})"
                    )

    def small_int_array(self, value: ArrayInfo) -> list[object]:
        """The items of a long per-layer integer array (one per layer, so at most 512)."""
        fmt = _SCALAR_FORMATS.get(value.item_type)
        if fmt is None or value.item_type in (ValueType.FLOAT32, ValueType.FLOAT64):
            return [f"an array of type {value.item_type}"]
        if value.length > 4 * _MAX_LAYERS:
            return [f"an array of {value.length:,} items"]
        return list(struct.unpack_from(f"<{value.length}{fmt}", self.buf, value.offset))

    def tensor_info(self, pos: int, i: int, names: set[str]) -> tuple[TensorInfo, int]:
        start = pos
        name, pos = self.string(pos, f"the name of tensor #{i + 1}")
        if pos - start - 8 > MAX_TENSOR_NAME_BYTES:
            self.fail(f"tensor #{i + 1} has a name longer than {MAX_TENSOR_NAME_BYTES} bytes")
        if name in names:
            self.fail(f"tensor {_q(name)} appears twice")
        names.add(name)
        what = f"the description of tensor {_q(name)}"
        n_dims = self.u32(pos, what)
        pos += 4
        if n_dims > MAX_DIMS:
            self.fail(f"tensor {_q(name)} has {n_dims:,} dimensions (llama.cpp allows {MAX_DIMS})")
        self.need(pos, 8 * n_dims + 4 + 8, what)
        dims = _DIMS[n_dims].unpack_from(self.buf, pos)
        pos += 8 * n_dims
        ggml_type = _I32.unpack_from(self.buf, pos)[0]
        offset = _U64.unpack_from(self.buf, pos + 4)[0]
        pos += 12
        if any(d < 0 for d in dims):
            self.fail(f"tensor {_q(name)} has a negative dimension")
        n_elements = 1
        for d in dims:
            n_elements *= d
        if n_elements >= INT64_MAX:
            self.fail(f"the dimensions of tensor {_q(name)} overflow")
        block = _GGML_TYPES.get(ggml_type)
        if block is None:
            self.unknown_tensor_type(name, ggml_type)
        type_name, block_elems, block_bytes = block
        row = dims[0] if dims else 1
        if row % block_elems:
            self.fail(
                f"tensor {_q(name)} has rows of {row} values, not a multiple of its {type_name} "
                f"block size ({block_elems})"
            )
        nbytes = n_elements // block_elems * block_bytes
        return TensorInfo(name, dims, ggml_type, offset, nbytes), pos

    def unknown_tensor_type(self, name: str, ggml_type: int) -> NoReturn:
        removed = _REMOVED_GGML_TYPES.get(ggml_type)
        if removed:
            raise GGUFError(
                self.path,
                f"{self.path} stores tensor {_q(name)} as {removed}, a format llama.cpp no longer "
                "loads. Download a current conversion (for example Q4_K_M or Q4_0).",
                "unsupported",
            )
        raise GGUFError(
            self.path,
            f"{self.path} stores tensor {_q(name)} with tensor type {ggml_type}, unknown here: "
            "this llama.cpp build may be too old for the file, or the file is unsupported or "
            "damaged. Update reflectchat and llama-cpp-python, or choose another quantization.",
            "unsupported",
        )

    def check_layout(self, header: GGUFHeader, header_end: int) -> None:
        """Tensor data must follow the header back to back, each tensor aligned, all of it on
        disk: exactly what llama.cpp's loader requires."""
        alignment = header.alignment
        expected = 0
        previous = None
        for t in header.tensors:
            if t.offset % alignment:
                self.fail(f"tensor {_q(t.name)} starts at an offset not aligned to {alignment}")
            if t.offset < expected:
                self.fail(f"tensor {_q(t.name)} overlaps tensor {_q(previous or '')}")
            if t.offset > expected:
                self.fail(f"tensor {_q(t.name)} is not where the previous tensors end")
            expected += _pad(t.nbytes, alignment)
            previous = t.name
        size = header.file_size
        end = header.data_end if header.tensors else header_end
        if end > size:
            part = ""
            if header.split_count > 1:
                part = f" (part {header.split_no + 1} of {header.split_count})"
            described = end - header.data_offset
            held = max(0, size - header.data_offset)
            raise GGUFError(
                self.path,
                f"{self.path}{part} is truncated: the header describes {_size(described)} of "
                f"tensor data but the file holds {_size(held)}. Download it again.",
                "truncated",
            )


def _check_version(path: Path, version: int) -> None:
    if version in SUPPORTED_VERSIONS:
        return
    if version == 1:
        raise GGUFError(
            path,
            f"{path} uses GGUF version 1, an obsolete format llama.cpp no longer loads. "
            "Download a newer conversion of the model.",
            "version",
        )
    swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
    if version & 0xFFFF == 0 and swapped in (1, 2, 3):
        raise GGUFError(
            path,
            f"{path} is a big-endian GGUF file, which this computer cannot use. "
            "Download the ordinary (little-endian) version of the model.",
            "version",
        )
    raise GGUFError(
        path,
        f"{path} says it is GGUF version {version}; only versions 2 and 3 are supported. "
        "Update reflectchat, or download another conversion of the model.",
        "version",
    )


def _foreign_file_message(path: Path, head: bytes) -> str:
    """Why a file without the GGUF magic is not a model, as helpfully as the first bytes allow."""
    lower = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"version https://git-lfs"):
        return (
            f"{path} is a Git LFS pointer, not the model itself: the real file was never "
            "downloaded. Fetch it with `git lfs pull`, or download the .gguf file directly."
        )
    if lower.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in lower:
        return (
            f"{path} is not a GGUF model file: it looks like a text/HTML file — perhaps an error "
            "page saved instead of the model. Download it again."
        )
    if head[:4] in (b"lmgg", b"fmgg", b"tjgg"):
        return (
            f"{path} uses the old GGML/GGJT format that llama.cpp dropped in 2023. "
            "Download a GGUF version of the model."
        )
    if head[:4] == b"PK\x03\x04":
        return (
            f"{path} is a ZIP archive or PyTorch checkpoint, not a GGUF model file. "
            "Use a .gguf file (or extract it from the archive first)."
        )
    if len(head) >= 10 and head[8:10] == b'{"':
        return (
            f"{path} is a safetensors file, not a GGUF model file. "
            "Download a GGUF conversion of the model."
        )
    if head.startswith((b"\x1f\x8b", b"\xfd7zXZ", b"7z\xbc\xaf\x27\x1c", b"\x28\xb5\x2f\xfd")):
        return (
            f"{path} is a compressed archive, not a GGUF model file. "
            "Extract the .gguf file from it first."
        )
    if head and _looks_like_text(head):
        return (
            f"{path} is not a GGUF model file: it looks like a text/HTML file — perhaps an error "
            "page saved instead of the model. Download it again."
        )
    return (
        f"{path} is not a GGUF model file (it starts with bytes {head[:4].hex(' ')}). "
        "Choose a .gguf model file."
    )


def _looks_like_text(head: bytes) -> bool:
    text = head.decode("utf-8", "ignore")
    if len(text) < len(head) * 0.9:
        return False
    printable = sum(1 for c in text if c.isprintable() or c in "\r\n\t")
    return printable >= 0.95 * len(text)


def _check_partial_name(p: Path) -> None:
    name = p.name.lower()
    for suffix in _PARTIAL_SUFFIXES:
        if name.endswith(suffix):
            raise GGUFError(
                p,
                f"The download of {p} is incomplete (the '{suffix}' name marks an unfinished "
                "download). Let it finish, or download the model again.",
                "incomplete",
            )


def _missing_error(p: Path) -> GGUFError:
    if os.path.islink(p):
        target = os.readlink(p)
        return GGUFError(
            p,
            f"{p} is a broken link: it points to {target}, which does not exist. "
            "Download the model again.",
            "missing",
        )
    unfinished = _unfinished_download(p)
    if unfinished is not None:
        return GGUFError(
            p,
            f"The download of {p} is incomplete ({unfinished} is still there). "
            "Let it finish, or download the model again.",
            "incomplete",
        )
    return GGUFError(
        p, f"{p} does not exist. Check the path, or download the model first.", "missing"
    )


def _unfinished_download(p: Path) -> str | None:
    """A leftover of an unfinished download of ``p``, if there is one (cheap checks only)."""
    try:
        for suffix in (*_PARTIAL_SUFFIXES, ".aria2"):
            sibling = p.with_name(p.name + suffix)
            if sibling.exists():
                return sibling.name
        parts = p.parts
        # Hugging Face cache: models--ORG--NAME/snapshots/REV/FILE, blobs/SHA.incomplete
        for i in range(len(parts) - 1, 0, -1):
            if parts[i] == "snapshots" and parts[i - 1].startswith("models--"):
                blobs = Path(*parts[:i]) / "blobs"
                if blobs.is_dir():
                    for blob in blobs.glob("*.incomplete"):
                        return f"{blobs.name}/{blob.name}"
                break
        # huggingface-cli download --local-dir DIR: DIR/.cache/huggingface/download/*.incomplete
        for folder in list(p.parents)[:4]:
            marker = folder / ".cache" / "huggingface" / "download"
            if marker.is_dir():
                for leftover in marker.rglob("*.incomplete"):
                    return leftover.name
    except OSError:
        return None
    return None


def _directory_error(p: Path) -> GGUFError:
    try:
        inside = sorted(c.name for c in p.iterdir() if c.name.lower().endswith(".gguf"))
    except OSError:
        inside = []
    hint = ""
    if inside:
        shown = ", ".join(inside[:3]) + (", …" if len(inside) > 3 else "")
        hint = f" (it holds {shown})"
    return GGUFError(
        p,
        f"{p} is a folder, not a model file{hint}. Point to the .gguf file itself.",
        "directory",
    )


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return max(value)  # per-layer values: the largest
    return None


def _pad(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} bytes"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:,.1f} PB"


def _q(text: str, limit: int = 80) -> str:
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"'{text}'"


def _one_line(message: str) -> str:
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in message)
