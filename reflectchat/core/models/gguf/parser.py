"""The checking GGUF header parser: every count, size, type and offset held to llama.cpp's
loader's rules (``ggml/src/gguf.cpp``) before anything trusts it."""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import NoReturn

from reflectchat.core.models.gguf.diagnose import check_version, foreign_file_message
from reflectchat.core.models.gguf.errors import GGUFError, quote
from reflectchat.core.models.gguf.header import ArrayInfo, GGUFHeader, TensorInfo
from reflectchat.core.models.gguf.types import (
    ARRAY_HEAD,
    COUNTS,
    DEFAULT_ALIGNMENT,
    DIMS,
    GGML_TYPES,
    GGUF_MAGIC,
    HEADER_SIZE,
    I32,
    MAX_DIMS,
    REMOVED_GGML_TYPES,
    SCALAR_FORMATS,
    SCALARS,
    U32,
    U64,
    ValueType,
)
from reflectchat.core.units import format_bytes

MAX_TENSOR_NAME_BYTES = 63  # GGML_MAX_NAME - 1
MAX_STRING_BYTES = 1 << 30  # GGUF_MAX_STRING_LENGTH in llama.cpp
MAX_ARRAY_ITEMS = 1 << 30  # GGUF_MAX_ARRAY_ELEMENTS in llama.cpp
# Far beyond any real model (vocabularies hold ~50k-260k entries, models ~300-3,000 tensors), and
# low enough that a hostile file cannot keep the reader busy for minutes.
MAX_STRING_ARRAY_ITEMS = 1 << 24
MAX_TENSORS = 1 << 20
MAX_KV = 1 << 20
MAX_LAYERS = 512  # LLAMA_MAX_LAYERS in llama.cpp
# Plausible ranges for the architecture's shape keys ("llama.context_length", …): wide enough for
# every real model (Llama 4 Scout: 10M context; Llama 3.1 405B: 126 layers, 16,384 wide; Mamba
# stores 0 heads), narrow enough that nothing downstream overflows or allocates absurdly.
HPARAM_RANGES: dict[str, tuple[int, int]] = {
    "context_length": (1, 1 << 24),
    "block_count": (1, MAX_LAYERS),
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


def pad(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


def _size(n: int) -> str:
    return format_bytes(n, small="bytes")


class NeedMore(Exception):
    """The header goes on past the bytes read so far (only without a memory map)."""


class Parser:
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
            raise NeedMore
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
        return U32.unpack_from(self.buf, pos)[0]

    def u64(self, pos: int, what: str) -> int:
        self.need(pos, 8, what)
        return U64.unpack_from(self.buf, pos)[0]

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
            raise GGUFError(path, foreign_file_message(path, head), "not_gguf")
        if self.file_size < HEADER_SIZE:
            raise GGUFError(
                path,
                f"{path} is too short to be a GGUF model ({_size(self.file_size)}). "
                "Download it again.",
                "truncated",
            )
        version, n_tensors, n_kv = COUNTS.unpack_from(buf, 4)
        check_version(path, version)
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
                self.fail(f"metadata key {quote(key)} appears twice")
            vtype = self.u32(pos, f"the type of {quote(key)}")
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
        data_offset = pad(pos, alignment) if n_tensors else pos
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
        scalar = SCALARS.get(vtype)
        if scalar is not None:
            self.need(pos, scalar.size, f"the value of {quote(key)}")
            v = scalar.unpack_from(self.buf, pos)[0]
            return (bool(v) if vtype == ValueType.BOOL else v), pos + scalar.size
        if vtype == ValueType.STRING:
            return self.string(pos, f"the value of {quote(key)}")
        if vtype == ValueType.ARRAY:
            return self.array(pos, key)
        self.unsupported(f"metadata key {quote(key)} has unknown value type {vtype}")

    def array(self, pos: int, key: str) -> tuple[object, int]:
        what = f"the array {quote(key)}"
        self.need(pos, ARRAY_HEAD.size, what)
        item_type, n = ARRAY_HEAD.unpack_from(self.buf, pos)
        pos += ARRAY_HEAD.size
        if item_type == ValueType.ARRAY:
            self.unsupported(f"{what} holds arrays, which llama.cpp does not support")
        if n > MAX_ARRAY_ITEMS:
            self.fail(f"{what} claims {n:,} items")
        start = pos
        remaining = self.file_size - pos
        scalar = SCALARS.get(item_type)
        if scalar is not None:
            nbytes = n * scalar.size
            if nbytes > remaining:
                self.cut_short(f"{what} claims {n:,} items")
            self.need(pos, nbytes, what)
            end = pos + nbytes
            if n <= INLINE_ARRAY_LIMIT:
                items = list(struct.unpack_from(f"<{n}{SCALAR_FORMATS[item_type]}", self.buf, pos))
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
        unpack = U64.unpack_from
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
                    self.fail(f"{quote(key)} holds {quote(str(item), 40)}, not a whole number")
                if not low <= item <= high:
                    self.fail(
                        f"{quote(key)} is {item:,}, not a plausible value "
                        f"(real models have {low:,} to {high:,})"
                    )

    def small_int_array(self, value: ArrayInfo) -> list[object]:
        """The items of a long per-layer integer array (one per layer, so at most 512)."""
        fmt = SCALAR_FORMATS.get(value.item_type)
        if fmt is None or value.item_type in (ValueType.FLOAT32, ValueType.FLOAT64):
            return [f"an array of type {value.item_type}"]
        if value.length > 4 * MAX_LAYERS:
            return [f"an array of {value.length:,} items"]
        return list(struct.unpack_from(f"<{value.length}{fmt}", self.buf, value.offset))

    def tensor_info(self, pos: int, i: int, names: set[str]) -> tuple[TensorInfo, int]:
        start = pos
        name, pos = self.string(pos, f"the name of tensor #{i + 1}")
        if pos - start - 8 > MAX_TENSOR_NAME_BYTES:
            self.fail(f"tensor #{i + 1} has a name longer than {MAX_TENSOR_NAME_BYTES} bytes")
        if name in names:
            self.fail(f"tensor {quote(name)} appears twice")
        names.add(name)
        what = f"the description of tensor {quote(name)}"
        n_dims = self.u32(pos, what)
        pos += 4
        if n_dims > MAX_DIMS:
            self.fail(
                f"tensor {quote(name)} has {n_dims:,} dimensions (llama.cpp allows {MAX_DIMS})"
            )
        self.need(pos, 8 * n_dims + 4 + 8, what)
        dims = DIMS[n_dims].unpack_from(self.buf, pos)
        pos += 8 * n_dims
        ggml_type = I32.unpack_from(self.buf, pos)[0]
        offset = U64.unpack_from(self.buf, pos + 4)[0]
        pos += 12
        if any(d < 0 for d in dims):
            self.fail(f"tensor {quote(name)} has a negative dimension")
        n_elements = 1
        for d in dims:
            n_elements *= d
        if n_elements >= INT64_MAX:
            self.fail(f"the dimensions of tensor {quote(name)} overflow")
        block = GGML_TYPES.get(ggml_type)
        if block is None:
            self.unknown_tensor_type(name, ggml_type)
        type_name, block_elems, block_bytes = block
        row = dims[0] if dims else 1
        if row % block_elems:
            self.fail(
                f"tensor {quote(name)} has rows of {row} values, not a multiple of its {type_name} "
                f"block size ({block_elems})"
            )
        nbytes = n_elements // block_elems * block_bytes
        return TensorInfo(name, dims, ggml_type, offset, nbytes), pos

    def unknown_tensor_type(self, name: str, ggml_type: int) -> NoReturn:
        removed = REMOVED_GGML_TYPES.get(ggml_type)
        if removed:
            raise GGUFError(
                self.path,
                f"{self.path} stores tensor {quote(name)} as {removed}, a format llama.cpp no "
                "longer loads. Download a current conversion (for example Q4_K_M or Q4_0).",
                "unsupported",
            )
        raise GGUFError(
            self.path,
            f"{self.path} stores tensor {quote(name)} with tensor type {ggml_type}, unknown here: "
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
                self.fail(f"tensor {quote(t.name)} starts at an offset not aligned to {alignment}")
            if t.offset < expected:
                self.fail(f"tensor {quote(t.name)} overlaps tensor {quote(previous or '')}")
            if t.offset > expected:
                self.fail(f"tensor {quote(t.name)} is not where the previous tensors end")
            expected += pad(t.nbytes, alignment)
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
