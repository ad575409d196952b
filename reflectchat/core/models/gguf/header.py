"""What a GGUF header holds, once read and checked: metadata, tensor descriptions, layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reflectchat.core.models.gguf.types import FILE_TYPE_GUESSED, FILE_TYPE_NAMES, GGML_TYPE_NAMES


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
        return as_int(self.metadata.get(f"{arch}.{suffix}")) if arch else None

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
        return as_int(self._get("general.file_type"))

    @property
    def quantization(self) -> str | None:
        """``"Q4_K_M"``-style name from ``general.file_type``, else the type holding the most
        weights; None for a file without tensors or file type."""
        file_type = self.file_type
        if file_type is not None:
            name = FILE_TYPE_NAMES.get(file_type & ~FILE_TYPE_GUESSED)
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
        count = as_int(self._get("split.count"))
        return count if count and count > 0 else 1

    @property
    def split_no(self) -> int:
        """This file's 0-based place among the split files (0 when not split)."""
        return as_int(self._get("split.no")) or 0

    @property
    def data_end(self) -> int:
        """File offset just past the last tensor's bytes (``data_offset`` when no tensors)."""
        return self.data_offset + max((t.offset + t.nbytes for t in self.tensors), default=0)


def as_int(value: object) -> int | None:
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
