"""GGUF model files, read defensively before llama.cpp sees them.

The public names all come from here; by concern, the modules are ``reader`` (the entry points),
``parser`` (the checks), ``header`` (what a header holds), ``types`` (the format's type tables),
``diagnose`` (why a path is not a usable file) and ``errors``.
"""

from reflectchat.core.models.gguf.errors import GGUFError
from reflectchat.core.models.gguf.header import ArrayInfo, GGUFHeader, TensorInfo
from reflectchat.core.models.gguf.reader import (
    read_gguf_header,
    read_gguf_parts,
    read_metadata_array,
    split_part_paths,
)
from reflectchat.core.models.gguf.types import (
    FILE_TYPE_NAMES,
    GGML_BLOCK_SIZES,
    GGML_TYPE_NAMES,
    ValueType,
)

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
