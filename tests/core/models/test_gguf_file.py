"""The GGUF header reader: real files parse, every kind of broken file gives one clear GGUFError."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reflectchat.core.models.gguf import (
    FILE_TYPE_NAMES,
    GGML_BLOCK_SIZES,
    GGML_TYPE_NAMES,
    ArrayInfo,
    GGUFError,
    ValueType,
    read_gguf_header,
    read_gguf_parts,
    read_metadata_array,
)
from reflectchat.core.models.gguf import reader as gguf_reader
from tests.conftest import cli, run_env
from tests.support.gguf_fixtures import (
    ARRAY,
    F32,
    HTML_ERROR_PAGE,
    I32,
    LFS_POINTER,
    REFLECTION_TAG_IDS,
    REFLECTION_TAGS,
    STRING,
    TOKEN_TYPE_CONTROL,
    U8,
    U32,
    U64,
    build_raw_gguf,
    embedded_model_path,
    gguf_string,
    kv,
    kv_array,
    kv_scalar,
    kv_string,
    minimal_raw_gguf,
    tensor_info,
    write_bytes,
    write_header_only,
    write_header_value,
    write_random_after_magic,
    write_reflection_token_gguf,
    write_small_gguf,
    write_split_gguf,
    write_truncated,
)
from tests.support.paths import SYNTH

SYNTH_TOOL = SYNTH


def expect_error(path: Path, kind: str | tuple[str, ...], *fragments: str) -> GGUFError:
    """read_gguf_header(path) raises one GGUFError: one line, names the file, of this kind."""
    with pytest.raises(GGUFError) as info:
        read_gguf_header(path)
    return check_error(info.value, path, kind, *fragments)


def check_error(
    e: GGUFError, path: Path, kind: str | tuple[str, ...], *fragments: str
) -> GGUFError:
    message = str(e)
    assert "\n" not in message and "\r" not in message, message
    assert path.name in message, message
    assert e.path == path
    kinds = (kind,) if isinstance(kind, str) else kind
    assert e.kind in kinds, f"{e.kind}: {message}"
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    return e


@pytest.fixture(scope="session")
def model() -> Path:
    return embedded_model_path()


@pytest.fixture(scope="session")
def reflection_model(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("reflection") / "smollm2-reflection-tags.gguf"
    return write_reflection_token_gguf(model, dst)


@pytest.fixture(scope="session")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_gguf(tmp_path_factory.mktemp("small") / "tiny.gguf")


# --- real files ---------------------------------------------------------------------------------


def test_real_model_parses(model: Path) -> None:
    h = read_gguf_header(model)
    assert h.path == model
    assert h.version == 3
    assert h.file_size == model.stat().st_size
    assert h.architecture == "llama"
    assert h.context_length == 8192
    assert h.block_count == 30
    assert h.embedding_length == 576
    assert (h.head_count, h.head_count_kv) == (9, 3)
    assert h.chat_template is not None and "im_start" in h.chat_template
    assert h.file_type == 3
    assert h.quantization == "Q4_1"
    assert 134_000_000 <= h.parameter_count <= 135_000_000
    assert (h.split_count, h.split_no) == (1, 0)
    assert h.alignment == 32 and h.data_offset % 32 == 0
    assert h.data_end == h.file_size
    assert len(h.tensors) == 272
    embd = next(t for t in h.tensors if t.name == "token_embd.weight")
    assert embd.shape == (576, 49152) and embd.type_name == "Q8_0"
    assert embd.nbytes == 576 * 49152 // 32 * 34
    assert h.metadata["general.languages"] == ["en"]  # short arrays come as lists
    tokens = h.metadata["tokenizer.ggml.tokens"]
    assert tokens == ArrayInfo(ValueType.STRING, 49152)
    assert h.metadata["tokenizer.ggml.token_type"] == ArrayInfo(ValueType.INT32, 49152)


def test_real_model_vocabulary_reads_on_demand(model: Path) -> None:
    h = read_gguf_header(model)
    tokens = read_metadata_array(h, "tokenizer.ggml.tokens")
    types = read_metadata_array(h, "tokenizer.ggml.token_type")
    assert len(tokens) == len(types) == 49152
    assert tokens[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert types[:17] == [TOKEN_TYPE_CONTROL] * 17
    assert read_metadata_array(h, "general.languages") == ["en"]
    with pytest.raises(KeyError):
        read_metadata_array(h, "no.such.key")


def test_real_model_header_is_fast(model: Path) -> None:
    read_gguf_header(model)  # warm the page cache
    times = []
    for _ in range(5):
        start = time.perf_counter()
        read_gguf_header(model)
        times.append(time.perf_counter() - start)
    # ~10 ms on a laptop-class CPU; the bound only catches an accidental slow path.
    assert statistics.median(times) < 0.5


def test_reflection_token_copy(model: Path, reflection_model: Path) -> None:
    original = read_gguf_header(model)
    copy = read_gguf_header(reflection_model)
    tokens = read_metadata_array(copy, "tokenizer.ggml.tokens")
    types = read_metadata_array(copy, "tokenizer.ggml.token_type")
    assert [tokens[i] for i in REFLECTION_TAG_IDS] == list(REFLECTION_TAGS)
    assert all(types[i] == TOKEN_TYPE_CONTROL for i in REFLECTION_TAG_IDS)
    old_tokens = read_metadata_array(original, "tokenizer.ggml.tokens")
    changed = {i for i, (a, b) in enumerate(zip(old_tokens, tokens, strict=True)) if a != b}
    assert changed == set(REFLECTION_TAG_IDS)
    assert types == read_metadata_array(original, "tokenizer.ggml.token_type")
    # Every other key, with its type (an int stays an int, a float a float), is unchanged.
    assert list(copy.metadata) == list(original.metadata)
    for key, value in original.metadata.items():
        assert copy.metadata[key] == value and type(copy.metadata[key]) is type(value), key
    assert copy.chat_template == original.chat_template
    assert copy.quantization == "Q4_1"
    assert [(t.name, t.shape, t.ggml_type, t.nbytes) for t in copy.tensors] == [
        (t.name, t.shape, t.ggml_type, t.nbytes) for t in original.tensors
    ]
    assert _digest(reflection_model, copy.data_offset) == _digest(model, original.data_offset)


def _digest(path: Path, start: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def test_synthetic_70b(synth_70b: Path) -> None:
    h = read_gguf_header(synth_70b)
    assert h.quantization == "Q4_K_M"
    assert h.parameter_count == pytest.approx(70.55e9, rel=0.005)
    assert (h.block_count, h.head_count, h.head_count_kv) == (80, 64, 8)
    assert len(h.tensors) == 723
    assert h.data_end == h.file_size > 40e9


def test_shared_synth_tool_writes_the_same_header(synth_70b: Path, tmp_path: Path) -> None:
    # The repo's builder is modelled on ../shared/tools/synth_gguf.py; where that tool is
    # present, the two must agree byte for byte up to the (sparse) tensor data.
    if not SYNTH_TOOL.is_file():
        pytest.skip(f"{SYNTH_TOOL} is not there")
    out = tmp_path / "synth-70b.gguf"
    subprocess.run(
        [sys.executable, str(SYNTH_TOOL), str(out), "--shape", "70b"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    ours, theirs = read_gguf_header(synth_70b), read_gguf_header(out)
    assert (ours.file_size, ours.data_offset) == (theirs.file_size, theirs.data_offset)
    with open(synth_70b, "rb") as a, open(out, "rb") as b:
        assert a.read(ours.data_offset) == b.read(theirs.data_offset)


def test_small_file_written_by_gguf(small: Path) -> None:
    h = read_gguf_header(small)
    assert h.name == "tiny test model"
    assert h.metadata["tokenizer.ggml.add_bos_token"] is True
    assert h.metadata["general.tags"] == ["test", "tiny"]
    assert isinstance(h.metadata["llama.attention.layer_norm_rms_epsilon"], float)
    assert read_metadata_array(h, "tokenizer.ggml.tokens") == [f"tok{i}" for i in range(100)]
    assert h.quantization == "Q8_0"
    assert [(t.name, t.shape, t.type_name, t.nbytes) for t in h.tensors] == [
        ("output_norm.weight", (32,), "F32", 128),
        ("token_embd.weight", (32, 2), "Q8_0", 68),
    ]
    assert h.parameter_count == 96


def test_quantization_falls_back_to_dominant_tensor_type(tmp_path: Path) -> None:
    data = minimal_raw_gguf(
        tensors=[tensor_info("a", [32, 4], 8, 0), tensor_info("b", [8], 0, 160)], data_size=192
    )
    h = read_gguf_header(write_bytes(tmp_path / "m.gguf", data))
    assert h.file_type is None
    assert h.quantization == "Q8_0"


def test_per_layer_head_counts_give_the_largest(tmp_path: Path) -> None:
    kvs = [
        kv_string("general.architecture", "llama"),
        kv_array("llama.attention.head_count", I32, [4, 8, 8, 2]),
    ]
    h = read_gguf_header(write_bytes(tmp_path / "m.gguf", minimal_raw_gguf(kvs=kvs)))
    assert h.head_count == 8
    assert h.head_count_kv is None and h.context_length is None


def test_no_mmap_fallback_reads_the_same(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = read_gguf_header(model)

    def no_mmap(*args: object, **kwargs: object) -> None:
        raise OSError("mmap not supported here")

    monkeypatch.setattr(gguf_reader.mmap, "mmap", no_mmap)
    monkeypatch.setattr(gguf_reader, "_FALLBACK_READ", 4096)  # force several growing reads
    assert read_gguf_header(model) == expected
    cut = write_truncated(model, tmp_path / "cut.gguf", 0.01)
    expect_error(cut, "truncated", "cut short")


def test_split_model_parts(tmp_path: Path) -> None:
    parts = write_split_gguf(tmp_path / "tiny.gguf", n_tensors=3)
    headers = read_gguf_parts(parts[1])
    assert [h.path for h in headers] == parts
    assert [(h.split_no, h.split_count) for h in headers] == [(0, 3), (1, 3), (2, 3)]
    assert headers[0].name == "tiny split model"
    assert sum(h.parameter_count for h in headers) == 48
    single = write_bytes(tmp_path / "single.gguf", minimal_raw_gguf())
    assert [h.path for h in read_gguf_parts(single)] == [single]

    shutil.copyfile(parts[1], tmp_path / "keep.gguf")
    write_truncated(tmp_path / "keep.gguf", parts[1], 0.97)
    with pytest.raises(GGUFError) as info:
        read_gguf_parts(parts[0])
    check_error(info.value, parts[1], "truncated", "part 2 of 3", "truncated")

    parts[1].unlink()
    with pytest.raises(GGUFError) as info:
        read_gguf_parts(parts[0])
    check_error(info.value, parts[1], "split", "part 2", "same folder")

    renamed = tmp_path / "renamed.gguf"
    parts[0].rename(renamed)
    with pytest.raises(GGUFError) as info:
        read_gguf_parts(renamed)
    check_error(info.value, renamed, "split", "split into 3 files")


def test_split_part_from_another_model(tmp_path: Path) -> None:
    parts = write_split_gguf(tmp_path / "a.gguf", n_tensors=2)
    other = write_split_gguf(tmp_path / "b.gguf", n_tensors=3)
    shutil.copyfile(other[0], parts[1])  # says "part 1 of 3"
    with pytest.raises(GGUFError) as info:
        read_gguf_parts(parts[0])
    check_error(info.value, parts[1], "split", "does not belong")


def test_type_tables_match_gguf_py() -> None:
    import gguf  # gguf-py is the reference for the type tables

    for qtype in gguf.GGMLQuantizationType:
        assert GGML_TYPE_NAMES[qtype.value] == qtype.name
        expected = gguf.GGML_QUANT_SIZES[qtype]
        if qtype.name == "Q8_1":
            expected = (32, 36)  # ggml: two halves + 32 int8; gguf-py still says 4 + 4 + 32
        assert GGML_BLOCK_SIZES[qtype.value] == expected, qtype.name
    assert set(GGML_TYPE_NAMES) == {q.value for q in gguf.GGMLQuantizationType}
    for file_type in gguf.LlamaFileType:
        if file_type.name == "GUESSED":
            continue
        expected_name = file_type.name.removeprefix("MOSTLY_").removeprefix("ALL_")
        assert FILE_TYPE_NAMES[file_type.value] == expected_name


# --- files that are not there, or not files -----------------------------------------------------


def test_missing(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.gguf", "missing", "does not exist")


def test_broken_link(tmp_path: Path) -> None:
    link = tmp_path / "model.gguf"
    try:
        link.symlink_to(tmp_path / "blobs" / "gone")
    except OSError:
        pytest.skip("no symlinks here")
    expect_error(link, "missing", "broken link")


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "a-Q4_K_M.gguf").write_bytes(b"")
    expect_error(folder, "directory", "folder", "a-Q4_K_M.gguf")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_named_pipe(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.gguf"
    os.mkfifo(fifo)
    expect_error(fifo, "not_file", "not a regular file")


def test_empty(tmp_path: Path) -> None:
    expect_error(write_bytes(tmp_path / "e.gguf", b""), "empty", "empty")


@pytest.mark.parametrize("data", [b"GGUF\x03\x00\x00\x00", b"GGUF\x03\x00\x00\x00" + bytes(15)])
def test_shorter_than_a_header(tmp_path: Path, data: bytes) -> None:
    expect_error(write_bytes(tmp_path / "s.gguf", data), "truncated", "too short")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_permission_denied(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    path = write_bytes(tmp_path / "locked.gguf", minimal_raw_gguf())
    path.chmod(0)
    try:
        expect_error(path, "permission", "permission denied")
    finally:
        path.chmod(0o600)


def test_permission_denied_on_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_bytes(tmp_path / "locked.gguf", minimal_raw_gguf())

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(gguf_reader, "open", denied, raising=False)
    expect_error(path, "permission", "permission denied", "chmod")


# --- unfinished downloads -----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".incomplete", ".part", ".crdownload"])
def test_partial_download_name(tmp_path: Path, suffix: str) -> None:
    path = write_bytes(tmp_path / f"model.gguf{suffix}", minimal_raw_gguf())
    expect_error(path, "incomplete", "download", "incomplete")


def test_partial_download_next_to_missing_file(tmp_path: Path) -> None:
    write_bytes(tmp_path / "model.gguf.part", b"GGUF")
    expect_error(tmp_path / "model.gguf", "incomplete", "incomplete", "model.gguf.part")


def test_aria2_download_in_progress(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "model.gguf", minimal_raw_gguf())
    write_bytes(tmp_path / "model.gguf.aria2", b"\x00\x01")
    expect_error(path, "incomplete", "incomplete")


def test_hugging_face_cache_incomplete_blob(tmp_path: Path) -> None:
    repo = tmp_path / "hub" / "models--bartowski--Reflection-Llama-3.1-70B-GGUF"
    (repo / "blobs").mkdir(parents=True)
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    write_bytes(repo / "blobs" / ("9f" * 32 + ".incomplete"), b"GGUF\x03")
    snapshot_file = repo / "snapshots" / "abc123" / "Reflection-Llama-3.1-70B-Q4_K_M.gguf"
    expect_error(snapshot_file, "incomplete", "download", "incomplete")
    # The unfinished blob itself, passed directly:
    expect_error(repo / "blobs" / ("9f" * 32 + ".incomplete"), "incomplete")


def test_local_dir_download_incomplete(tmp_path: Path) -> None:
    marker = tmp_path / "models" / ".cache" / "huggingface" / "download"
    marker.mkdir(parents=True)
    write_bytes(marker / "Zm9v.8a3b.incomplete", b"GGUF")
    expect_error(tmp_path / "models" / "model-Q4_K_M.gguf", "incomplete", "incomplete")


# --- not GGUF at all ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        (HTML_ERROR_PAGE, ("not a GGUF model file", "text/HTML", "error page")),
        (b'{"error":"Repository not found"}\n', ("not a GGUF model file", "text/HTML")),
        (b"Entry not found", ("text/HTML",)),
        (LFS_POINTER, ("Git LFS pointer", "git lfs pull")),
        (b"tjgg\x03\x00\x00\x00" + bytes(100), ("old GGML",)),
        (b"PK\x03\x04" + bytes(100), ("ZIP",)),
        (struct.pack("<Q", 20) + b'{"__metadata__":{}}  ', ("safetensors",)),
        (b"\x1f\x8b\x08\x00" + bytes(100), ("compressed",)),
        (bytes(range(256)) * 4, ("not a GGUF model file", "00 01 02 03")),
        (b"GG", ("not a GGUF model file",)),
    ],
    ids=["html", "json", "text", "lfs", "ggjt", "zip", "safetensors", "gzip", "binary", "tiny"],
)
def test_not_gguf(tmp_path: Path, data: bytes, fragments: tuple[str, ...]) -> None:
    expect_error(write_bytes(tmp_path / "model.gguf", data), "not_gguf", *fragments)


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_after_magic(tmp_path: Path, seed: int) -> None:
    path = write_random_after_magic(tmp_path / "noise.gguf", 1 << 20, seed=seed)
    expect_error(path, ("version", "damaged", "truncated", "unsupported"))


# --- broken headers, byte by byte ---------------------------------------------------------------

ARCH = kv_string("general.architecture", "llama")
T8 = tensor_info("a", [8], 0, 0)  # 8 F32 values, 32 bytes
BAD_STRING_ARRAY = kv(
    "tokenizer.ggml.tokens",
    ARRAY,
    struct.pack("<IQ", STRING, 100)
    + b"".join(gguf_string("a") for _ in range(99))
    + struct.pack("<Q", 10**6)
    + b"a",
)

BROKEN = {
    "version 1": (dict(version=1), "version", ("version 1", "obsolete")),
    "version 4": (dict(version=4), "version", ("version 4", "2 and 3")),
    "version 0": (dict(version=0), "version", ("version 0",)),
    "big-endian": (dict(version=0x03000000), "version", ("big-endian",)),
    "tensor count": (dict(n_tensors=2**40), "damaged", ("tensors",)),
    "metadata count": (dict(n_kv=2**62), "damaged", ("metadata entries",)),
    "metadata count past int64": (dict(n_kv=2**64 - 1), "damaged", ("metadata entries",)),
    "both counts": (dict(n_kv=2, n_tensors=6), "truncated", ("cut short", "6 tensors")),
    "huge key": (
        dict(kvs=[struct.pack("<Q", 2**62) + b"k"], n_kv=1),
        "damaged",
        ("claims to be",),
    ),
    "key past end": (
        dict(kvs=[struct.pack("<Q", 4000) + b"abc"], n_kv=1),
        "truncated",
        ("cut short", "4.0 kB"),
    ),
    "empty key": (dict(kvs=[ARCH, kv_scalar("", U32, 1)]), "damaged", ("empty",)),
    "duplicate key": (dict(kvs=[ARCH, ARCH]), "damaged", ("appears twice",)),
    "unknown value type": (
        dict(kvs=[ARCH, kv("x.y", 99, bytes(8))]),
        "unsupported",
        ("'x.y'", "unknown value type 99"),
    ),
    "nested array": (
        dict(kvs=[ARCH, kv("x.y", ARRAY, struct.pack("<IQ", ARRAY, 1) + bytes(12))]),
        "unsupported",
        ("holds arrays",),
    ),
    "unknown array item type": (
        dict(kvs=[ARCH, kv("x.y", ARRAY, struct.pack("<IQ", 77, 1) + bytes(8))]),
        "unsupported",
        ("unknown item type 77",),
    ),
    "array length": (
        dict(kvs=[ARCH, kv_array("x.y", U32, [1, 2], length=2**40)]),
        "damaged",
        ("claims",),
    ),
    "array length past the cap": (
        dict(kvs=[ARCH, kv_array("x.y", U8, [1, 2], length=2**31)]),
        "damaged",
        ("claims",),
    ),
    "string array length": (
        dict(kvs=[ARCH, kv_array("x.y", STRING, ["a"], length=2**40)]),
        "damaged",
        ("claims 1,099,511,627,776 items",),
    ),
    "array longer than the file": (
        dict(kvs=[ARCH, kv_array("x.y", U32, [1], length=10**6)]),
        "truncated",
        ("cut short", "1,000,000 items"),
    ),
    "string array longer than the file": (
        dict(kvs=[ARCH, kv_array("x.y", STRING, ["a"], length=10**6)]),
        "truncated",
        ("cut short", "1,000,000 strings"),
    ),
    "string in array past end": (dict(kvs=[ARCH, BAD_STRING_ARRAY]), "truncated", ("past",)),
    "string value past end": (
        dict(kvs=[ARCH, kv("x.y", STRING, struct.pack("<Q", 10**5) + b"abc")]),
        "truncated",
        ("cut short",),
    ),
    "five dimensions": (
        dict(tensors=[tensor_info("a", [1, 1, 1, 1, 8], 0, 0)]),
        "damaged",
        ("5 dimensions",),
    ),
    "many dimensions": (
        dict(tensors=[struct.pack("<Q", 1) + b"a" + struct.pack("<I", 2**31)]),
        "damaged",
        ("dimensions",),
    ),
    "dimension overflow": (
        dict(tensors=[tensor_info("a", [2**40, 2**40], 0, 0)]),
        "damaged",
        ("overflow",),
    ),
    "negative dimension": (dict(tensors=[tensor_info("a", [-8], 0, 0)]), "damaged", ("negative",)),
    "unknown tensor type": (
        dict(tensors=[tensor_info("a", [8], 99, 0)]),
        "unsupported",
        ("tensor type 99", "too old"),
    ),
    "negative tensor type": (
        dict(tensors=[tensor_info("a", [8], -1, 0)]),
        "unsupported",
        ("too old",),
    ),
    "removed tensor type": (
        dict(tensors=[tensor_info("a", [32], 31, 0)]),
        "unsupported",
        ("Q4_0_4_4", "no longer"),
    ),
    "row not whole blocks": (
        dict(tensors=[tensor_info("a", [8], 2, 0)]),
        "damaged",
        ("block size",),
    ),
    "alignment 48": (
        dict(kvs=[ARCH, kv_scalar("general.alignment", U32, 48)]),
        "damaged",
        ("power of two",),
    ),
    "alignment 0": (
        dict(kvs=[ARCH, kv_scalar("general.alignment", U32, 0)]),
        "damaged",
        ("power of two",),
    ),
    "alignment type": (
        dict(kvs=[ARCH, kv_scalar("general.alignment", U8, 32)]),
        "damaged",
        ("32-bit",),
    ),
    "misaligned offset": (
        dict(tensors=[T8, tensor_info("b", [8], 0, 40)], data_size=96),
        "damaged",
        ("'b'", "not aligned"),
    ),
    "overlap": (
        dict(tensors=[T8, tensor_info("b", [8], 0, 0)], data_size=64),
        "damaged",
        ("'b' overlaps tensor 'a'",),
    ),
    "gap": (
        dict(tensors=[T8, tensor_info("b", [8], 0, 64)], data_size=96),
        "damaged",
        ("not where",),
    ),
    "duplicate tensor": (
        dict(tensors=[T8, tensor_info("a", [8], 0, 32)], data_size=64),
        "damaged",
        ("'a' appears twice",),
    ),
    "long tensor name": (
        dict(tensors=[tensor_info("x" * 64, [8], 0, 0)]),
        "damaged",
        ("longer than 63",),
    ),
    "tensor count lies": (dict(n_tensors=2), ("damaged", "truncated"), ()),
    "tensor data cut": (
        dict(data_size=16),
        "truncated",
        ("truncated", "describes 32 bytes of tensor data but the file holds 16 bytes"),
    ),
    "huge tensor": (
        dict(tensors=[tensor_info("a", [2**20, 2**20], 0, 0)]),
        "truncated",
        ("4.4 TB of tensor data",),
    ),
    "name with a newline": (
        dict(tensors=[tensor_info("a\nb", [8], 99, 0)]),
        "unsupported",
        ("a\\nb",),
    ),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_broken_header(tmp_path: Path, case: str) -> None:
    overrides, kind, fragments = BROKEN[case]
    data = minimal_raw_gguf(**overrides)
    expect_error(write_bytes(tmp_path / "broken.gguf", data), kind, *fragments)


def test_minimal_raw_gguf_is_valid(tmp_path: Path) -> None:
    h = read_gguf_header(write_bytes(tmp_path / "ok.gguf", minimal_raw_gguf()))
    assert h.context_length == 64
    assert h.quantization == "F32"
    h = read_gguf_header(write_bytes(tmp_path / "v2.gguf", minimal_raw_gguf(version=2)))
    assert h.version == 2
    aligned = minimal_raw_gguf(
        kvs=[ARCH, kv_scalar("general.alignment", U32, 64)],
        tensors=[T8, tensor_info("b", [8], 0, 64)],
        alignment=64,
        data_size=96,
    )
    h = read_gguf_header(write_bytes(tmp_path / "a64.gguf", aligned))
    assert h.alignment == 64 and h.data_offset % 64 == 0 and h.data_end == h.file_size
    longest_name = minimal_raw_gguf(tensors=[tensor_info("x" * 63, [8], 0, 0)])
    h = read_gguf_header(write_bytes(tmp_path / "name.gguf", longest_name))
    assert h.tensors[0].name == "x" * 63
    empty = build_raw_gguf([ARCH], [])
    h = read_gguf_header(write_bytes(tmp_path / "no-tensors.gguf", empty))
    assert h.tensors == [] and h.parameter_count == 0 and h.quantization is None


def test_truncated_real_model(model: Path, tmp_path: Path) -> None:
    half = write_truncated(model, tmp_path / "half.gguf", 0.5)
    e = expect_error(half, "truncated", "is truncated", "MB of tensor data", "Download it again")
    assert "holds 47.4 MB" in str(e)
    in_header = write_truncated(model, tmp_path / "head.gguf", 0.01)
    expect_error(in_header, "truncated", "cut short")


def test_error_is_one_line_even_for_odd_paths(tmp_path: Path) -> None:
    path = tmp_path / "bad\nname.gguf"
    try:
        write_bytes(path, b"")
    except OSError:
        pytest.skip("file names cannot hold a newline here")
    with pytest.raises(GGUFError) as info:
        read_gguf_header(path)
    assert "\n" not in str(info.value) and "bad\\nname.gguf" in str(info.value)


# --- fuzzing ------------------------------------------------------------------------------------

INTERESTING = [0, 1, 2**31 - 1, 2**32 - 1, 2**63 - 1, 2**63, 2**64 - 1, 48, 99]


def _mutate(data: bytearray, rng: random.Random, lo: int = 0, hi: int | None = None) -> None:
    hi = len(data) if hi is None else hi
    choice = rng.random()
    if choice < 0.5:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(lo, hi)] = rng.randrange(256)
    elif choice < 0.85:
        at = rng.randrange(lo, max(lo + 1, hi - 8))
        data[at : at + 8] = struct.pack("<Q", rng.choice(INTERESTING))
    else:
        del data[rng.randrange(lo, hi) :]


def test_fuzz_small_file(small: Path, tmp_path: Path) -> None:
    original = small.read_bytes()
    target = tmp_path / "fuzz.gguf"
    rng = random.Random(1234)
    outcomes = {"parsed": 0, "rejected": 0}
    for i in range(300):
        data = bytearray(original)
        hi = min(len(data), 2 << 20) if i % 2 else 120  # half of them hit the counts and keys
        _mutate(data, rng, 0, hi)
        target.write_bytes(bytes(data))
        try:
            h = read_gguf_header(target)
        except GGUFError as e:
            assert "\n" not in str(e) and target.name in str(e)
            outcomes["rejected"] += 1
        else:  # anything accepted is self-consistent
            assert h.data_end <= h.file_size
            assert h.data_offset % h.alignment == 0 or not h.tensors
            outcomes["parsed"] += 1
    assert outcomes["rejected"] > 50


def test_fuzz_real_header(model: Path, tmp_path: Path) -> None:
    h = read_gguf_header(model)
    target = write_header_only(model, tmp_path / "fuzz-real.gguf", h.data_offset)
    assert read_gguf_header(target).tensors == h.tensors
    tokens_end = max(v.offset + v.nbytes for v in h.metadata.values() if isinstance(v, ArrayInfo))
    regions = [(0, 1200), (tokens_end, h.data_offset), (0, h.data_offset)]
    original = bytearray(target.read_bytes()[: h.data_offset])
    rng = random.Random(99)
    with open(target, "r+b") as f:
        for i in range(120):
            lo, hi = regions[i % 3]
            data = bytearray(original)
            at = rng.randrange(lo, hi - 8)
            data[at : at + 8] = (
                struct.pack("<Q", rng.choice(INTERESTING)) if i % 2 else rng.randbytes(8)
            )
            f.seek(at)
            f.write(data[at : at + 8])
            f.flush()
            try:
                read_gguf_header(target)
            except GGUFError as e:
                assert target.name in str(e)
            f.seek(at)
            f.write(original[at : at + 8])
            f.flush()


def test_value_types_all_decode(tmp_path: Path) -> None:
    kvs = [ARCH]
    samples = {
        ValueType.UINT8: 200,
        ValueType.INT8: -5,
        ValueType.UINT16: 60000,
        ValueType.INT16: -300,
        ValueType.UINT32: 4_000_000_000,
        ValueType.INT32: -7,
        ValueType.FLOAT32: 0.5,
        ValueType.UINT64: 2**63,
        ValueType.INT64: -(2**40),
        ValueType.FLOAT64: 0.25,
    }
    for vtype, value in samples.items():
        kvs.append(kv_scalar(f"t.{vtype}", vtype, value))
        kvs.append(kv_array(f"a.{vtype}", vtype, [value] * 3))
        kvs.append(kv_array(f"long.{vtype}", vtype, [value] * 65))
    kvs.append(kv_scalar("t.bool", ValueType.BOOL, 2))  # any non-zero byte is true
    kvs.append(kv_array("a.str", STRING, ["x", "é", ""]))
    kvs.append(kv_array("a.f32", F32, [1.0, 2.0]))
    kvs.append(kv_string("t.bad-utf8", b"\xff\xfeok"))
    h = read_gguf_header(write_bytes(tmp_path / "types.gguf", minimal_raw_gguf(kvs=kvs)))
    for vtype, value in samples.items():
        assert h.metadata[f"t.{vtype}"] == value
        assert h.metadata[f"a.{vtype}"] == [value] * 3
        long = h.metadata[f"long.{vtype}"]
        assert long == ArrayInfo(vtype, 65)
        assert read_metadata_array(h, f"long.{vtype}") == [value] * 65
    assert h.metadata["t.bool"] is True
    assert h.metadata["a.str"] == ["x", "é", ""]
    assert h.metadata["a.f32"] == [1.0, 2.0]
    assert h.metadata["t.bad-utf8"].endswith("ok")


# -- issue 13: shape numbers no real model has ----------------------------------------------------

IMPLAUSIBLE = [
    ("llama.context_length", U32, 0xFFFFFFFF, "4,294,967,295"),
    ("llama.context_length", I32, -1, "-1"),
    ("llama.context_length", U32, 0, "0"),
    ("llama.block_count", U32, 2**32 - 1, "4,294,967,295"),
    ("llama.block_count", U32, 513, "513"),
    ("llama.embedding_length", U64, 2**40, "1,099,511,627,776"),
    ("llama.attention.head_count", U32, 100_000, "100,000"),
    ("llama.attention.head_count_kv", I32, -8, "-8"),
    ("llama.feed_forward_length", U64, 2**63, "9,223,372,036,854,775,808"),
]


@pytest.mark.parametrize(("key", "vtype", "value", "shown"), IMPLAUSIBLE)
def test_implausible_shape_numbers_are_refused_by_name(
    tmp_path: Path, key: str, vtype: int, value: int, shown: str
) -> None:
    kvs = [kv_string("general.architecture", "llama"), kv_scalar(key, vtype, value)]
    path = write_bytes(tmp_path / "m.gguf", minimal_raw_gguf(kvs=kvs))
    expect_error(path, "damaged", f"'{key}' is {shown}", "not a plausible value")


def test_shape_numbers_of_the_wrong_type_or_in_per_layer_arrays(tmp_path: Path) -> None:
    wrong_type = [
        kv_string("general.architecture", "llama"),
        kv_string("llama.block_count", "thirty"),
    ]
    path = write_bytes(tmp_path / "a.gguf", minimal_raw_gguf(kvs=wrong_type))
    expect_error(path, "damaged", "'llama.block_count' holds 'thirty', not a whole number")
    long_array = [
        kv_string("general.architecture", "llama"),
        kv_array("llama.attention.head_count_kv", I32, [8] * 99 + [-1]),  # not inlined
    ]
    path = write_bytes(tmp_path / "b.gguf", minimal_raw_gguf(kvs=long_array))
    expect_error(path, "damaged", "'llama.attention.head_count_kv' is -1")


def test_plausible_extremes_still_load(tmp_path: Path) -> None:
    kvs = [
        kv_string("general.architecture", "mamba"),
        kv_scalar("mamba.context_length", U32, 10_485_760),  # Llama 4 Scout's
        kv_scalar("mamba.block_count", U32, 512),
        kv_scalar("mamba.attention.head_count", U32, 0),  # Mamba stores 0 heads
        kv_array("mamba.attention.head_count_kv", I32, [0, 8] * 60),  # hybrid, per layer
        kv_scalar("mamba.embedding_length", U32, 16384),
    ]
    h = read_gguf_header(write_bytes(tmp_path / "m.gguf", minimal_raw_gguf(kvs=kvs)))
    assert h.context_length == 10_485_760 and h.block_count == 512
    no_arch = [kv_scalar("llama.context_length", U32, 0xFFFFFFFF)]  # nothing to check it against
    assert read_gguf_header(write_bytes(tmp_path / "n.gguf", minimal_raw_gguf(kvs=no_arch)))


@pytest.mark.parametrize(
    ("key", "value", "force"),
    [("llama.context_length", 0xFFFFFFFF, False), ("llama.block_count", 2**32 - 1, True)],
)
def test_ask_names_the_file_and_the_key_even_with_force(
    model: Path, tmp_path: Path, key: str, value: int, force: bool
) -> None:
    """Before: 'Array length must be >= 0' naming nothing; with --force, a silent abort."""
    path = write_header_value(model, tmp_path / "bad-header.gguf", key, value)
    args = ["ask", "hi", "-m", str(path)] + (["--force"] if force else [])
    proc = subprocess.run(cli(*args), capture_output=True, text=True, env=run_env(), timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0] and f"'{key}' is {value:,}" in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
