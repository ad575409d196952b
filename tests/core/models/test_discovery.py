"""Finding GGUF files other tools downloaded: Hugging Face cache, LM Studio, Ollama, llama.cpp
layouts built in temporary folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reflectchat.core.models.discovery import (
    OLLAMA_MODEL_MEDIA_TYPE,
    FoundModel,
    discover,
    find_hf_cache,
    find_llama_cpp,
    find_lmstudio,
    find_ollama,
)

GGUF = b"GGUF" + bytes(60)  # discovery goes by names and layouts; it never parses


def put(path: Path, data: bytes = GGUF) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def hf_repo(root: Path, repo: str, files: dict[str, bytes], commit: str = "a" * 40) -> Path:
    """A Hugging Face cache entry as huggingface-hub writes it: blobs, and snapshot links."""
    folder = root / ("models--" + repo.replace("/", "--"))
    for name, data in files.items():
        blob = put(folder / "blobs" / f"{abs(hash(name)):x}{len(data)}", data)
        link = folder / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    put(folder / "refs" / "main", commit.encode())
    return folder


def ollama_manifest(root: Path, name: str, layers: list[dict] | object) -> Path:
    registry, namespace, model, tag = name.split("/")
    body = {"schemaVersion": 2, "layers": layers} if isinstance(layers, list) else layers
    return put(root / "manifests" / registry / namespace / model / tag, json.dumps(body).encode())


def ollama_blob(root: Path, data: bytes) -> tuple[str, Path]:
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    return f"sha256:{digest}", put(root / "blobs" / f"sha256-{digest}", data)


def names(found: list[FoundModel]) -> list[str]:
    return [m.name for m in found]


def test_hf_cache(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    hf_repo(
        root,
        "bartowski/Foo-GGUF",
        {
            "Foo-Q4_K_M.gguf": GGUF * 2,
            "Foo-Q8_0/Foo-Q8_0-00001-of-00002.gguf": GGUF,
            "Foo-Q8_0/Foo-Q8_0-00002-of-00002.gguf": GGUF * 3,
            "README.md": b"# readme",
        },
    )
    folder = hf_repo(root, "someone/other", {"x.gguf": GGUF})
    (folder / "snapshots" / ("a" * 40) / "broken.gguf").symlink_to("../../blobs/missing")
    put(root / "datasets--a--b" / "snapshots" / "c" / "d.gguf")  # not a model repo
    put(root / "models--x--y" / "blobs" / "abc.incomplete")  # a download in progress

    found = find_hf_cache(root)
    assert names(found) == [
        "bartowski/Foo-GGUF/Foo-Q4_K_M.gguf",
        "bartowski/Foo-GGUF/Foo-Q8_0/Foo-Q8_0-00001-of-00002.gguf",
        "someone/other/x.gguf",
    ]
    split = found[1]
    assert split.parts == 2 and split.size_bytes == len(GGUF) * 4
    assert split.path.name == "Foo-Q8_0-00001-of-00002.gguf"
    assert all(m.source == "hf-cache" for m in found)
    assert found[0].size_bytes == len(GGUF) * 2


def test_hf_cache_lists_a_file_once_across_snapshots(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    hf_repo(root, "o/r", {"m-Q4_0.gguf": GGUF}, commit="b" * 40)
    hf_repo(root, "o/r", {"m-Q4_0.gguf": GGUF * 2}, commit="c" * 40)  # refs/main -> c…
    found = find_hf_cache(root)
    assert len(found) == 1 and found[0].path.parent.name == "c" * 40


def test_lmstudio(tmp_path: Path) -> None:
    root = tmp_path / ".lmstudio" / "models"
    put(root / "lmstudio-community" / "Qwen3-1.7B-GGUF" / "Qwen3-1.7B-Q8_0.gguf", GGUF * 5)
    put(root / "lmstudio-community" / "Qwen3-1.7B-GGUF" / "notes.txt", b"hello")
    put(root / "bartowski" / "Big-GGUF" / "Big-Q4_K_M-00001-of-00002.gguf")
    put(root / "bartowski" / "Big-GGUF" / "Big-Q4_K_M-00002-of-00002.gguf")
    put(root / "a" / "b" / "c" / "d" / "e" / "too-deep.gguf")
    put(root / "publisher" / "repo" / "empty.gguf", b"")
    outside = put(tmp_path / "elsewhere" / "linked" / "x.gguf")
    (root / "linked").symlink_to(outside.parent.parent, target_is_directory=True)

    found = find_lmstudio(root)
    assert names(found) == [
        "bartowski/Big-GGUF/Big-Q4_K_M-00001-of-00002.gguf",
        "lmstudio-community/Qwen3-1.7B-GGUF/Qwen3-1.7B-Q8_0.gguf",
    ]
    assert found[0].parts == 2
    assert found[1].size_bytes == len(GGUF) * 5 and found[1].source == "lm-studio"


def test_ollama(tmp_path: Path) -> None:
    root = tmp_path / ".ollama" / "models"
    weights, blob = ollama_blob(root, GGUF * 7)
    template, _ = ollama_blob(root, b"{{ .Prompt }}")
    layers = [
        {"mediaType": OLLAMA_MODEL_MEDIA_TYPE, "digest": weights, "size": len(GGUF) * 7},
        {"mediaType": "application/vnd.ollama.image.template", "digest": template, "size": 13},
    ]
    ollama_manifest(root, "registry.ollama.ai/library/llama3.2/1b", layers)
    ollama_manifest(root, "registry.ollama.ai/library/llama3.2/latest", layers)  # same blob
    other, other_blob = ollama_blob(root, GGUF * 2)
    ollama_manifest(
        root,
        "hf.co/bartowski/Foo-GGUF/Q4_K_M",
        [{"mediaType": OLLAMA_MODEL_MEDIA_TYPE, "digest": other}],
    )
    mine, _ = ollama_blob(root, GGUF * 3)
    ollama_manifest(
        root,
        "registry.ollama.ai/me/mine/v1",
        [{"mediaType": OLLAMA_MODEL_MEDIA_TYPE, "digest": mine}],
    )

    found = find_ollama(root)
    assert [(m.name, m.path) for m in found] == [
        ("hf.co/bartowski/Foo-GGUF:Q4_K_M", other_blob),
        ("llama3.2:1b", blob),
        ("me/mine:v1", root / "blobs" / f"sha256-{mine.split(':')[1]}"),
    ]
    assert found[1].size_bytes == len(GGUF) * 7 and found[1].source == "ollama"


@pytest.mark.parametrize(
    "manifest",
    [
        b"{ not json",
        b"[1, 2, 3]",
        b"\xff\xfe garbage",
        b"[" * 100_000,  # deep nesting
        json.dumps({"layers": "nope"}).encode(),
        json.dumps({"layers": [None, 3, {"mediaType": OLLAMA_MODEL_MEDIA_TYPE}]}).encode(),
        json.dumps(
            {"layers": [{"mediaType": OLLAMA_MODEL_MEDIA_TYPE, "digest": "sha256:../../x"}]}
        ).encode(),
        json.dumps(
            {"layers": [{"mediaType": OLLAMA_MODEL_MEDIA_TYPE, "digest": "sha256:" + "0" * 64}]}
        ).encode(),  # the blob is not there
    ],
)
def test_ollama_never_crashes_on_bad_manifests(tmp_path: Path, manifest: bytes) -> None:
    root = tmp_path / "ollama"
    put(root / "manifests" / "registry.ollama.ai" / "library" / "bad" / "latest", manifest)
    good, _ = ollama_blob(root, GGUF)
    ollama_manifest(
        root,
        "registry.ollama.ai/library/good/latest",
        [{"mediaType": OLLAMA_MODEL_MEDIA_TYPE, "digest": good}],
    )
    assert names(find_ollama(root)) == ["good:latest"]


def test_unreadable_folders_are_skipped(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    root = tmp_path / "models"
    put(root / "pub" / "repo" / "ok.gguf")
    locked = put(root / "pub" / "locked" / "x.gguf").parent
    locked.chmod(0)
    try:
        assert names(find_lmstudio(root)) == ["pub/repo/ok.gguf"]
    finally:
        locked.chmod(0o755)


def test_missing_folders_find_nothing(tmp_path: Path) -> None:
    assert find_hf_cache(tmp_path / "no") == []
    assert find_lmstudio(tmp_path / "no") == []
    assert find_ollama(tmp_path / "no") == []
    assert find_llama_cpp(tmp_path / "no") == []
    assert put(tmp_path / "file") and find_ollama(tmp_path / "file") == []


def test_llama_cpp_cache(tmp_path: Path) -> None:
    root = tmp_path / "llama.cpp"
    put(root / "bartowski_Foo-GGUF_Foo-Q4_K_M.gguf")
    put(root / "bartowski_Foo-GGUF_Foo-Q4_K_M.gguf.json", b"{}")
    put(root / "manifest=bartowski=Foo-GGUF=latest.json", b"{}")
    hf_repo(root, "ggml-org/gemma-GGUF", {"gemma-Q8_0.gguf": GGUF})  # newer releases
    found = find_llama_cpp(root)
    assert names(found) == [
        "bartowski_Foo-GGUF_Foo-Q4_K_M.gguf",
        "ggml-org/gemma-GGUF/gemma-Q8_0.gguf",
    ]
    assert {m.source for m in found} == {"llama.cpp"}


def test_discover_everything_from_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    monkeypatch.delenv("LLAMA_CACHE", raising=False)
    hf = hf_repo(home / ".cache" / "huggingface" / "hub", "o/r", {"m-Q4_0.gguf": GGUF})
    put(home / ".cache" / "lm-studio" / "models" / "p" / "r" / "old-Q8_0.gguf")
    lms = home / ".lmstudio" / "models" / "p" / "r2"
    lms.mkdir(parents=True)
    # LM Studio can link to a file in the HF cache: listed once, by the first tool
    (lms / "linked.gguf").symlink_to(hf / "snapshots" / ("a" * 40) / "m-Q4_0.gguf")
    digest, _ = ollama_blob(home / ".ollama" / "models", GGUF)
    ollama_manifest(
        home / ".ollama" / "models",
        "registry.ollama.ai/library/tiny/latest",
        [{"mediaType": OLLAMA_MODEL_MEDIA_TYPE, "digest": digest}],
    )
    put(home / ".cache" / "llama.cpp" / "a_b_c.gguf")

    found = discover(home=home)
    assert [(m.source, m.name) for m in found] == [
        ("hf-cache", "o/r/m-Q4_0.gguf"),
        ("lm-studio", "p/r/old-Q8_0.gguf"),
        ("ollama", "tiny:latest"),
        ("llama.cpp", "a_b_c.gguf"),
    ]


def test_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama"))
    monkeypatch.setenv("LLAMA_CACHE", str(tmp_path / "llama"))
    hf_repo(tmp_path / "hf", "o/r", {"a.gguf": GGUF})
    digest, _ = ollama_blob(tmp_path / "ollama", GGUF * 2)
    ollama_manifest(
        tmp_path / "ollama",
        "registry.ollama.ai/library/x/1",
        [{"mediaType": OLLAMA_MODEL_MEDIA_TYPE, "digest": digest}],
    )
    put(tmp_path / "llama" / "b.gguf", GGUF * 3)
    found = discover(home=tmp_path / "empty-home")
    assert [(m.source, m.name) for m in found] == [
        ("hf-cache", "o/r/a.gguf"),
        ("ollama", "x:1"),
        ("llama.cpp", "b.gguf"),
    ]


def test_explicit_folders(tmp_path: Path) -> None:
    put(tmp_path / "lms" / "p" / "r" / "f.gguf")
    found = discover(
        home=tmp_path / "nothing",
        hf_cache_dir=tmp_path / "none",
        lmstudio_dirs=[tmp_path / "lms"],
        ollama_dir=tmp_path / "none",
        llama_cache=tmp_path / "none",
    )
    assert names(found) == ["p/r/f.gguf"]
