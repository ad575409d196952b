"""`models pull`/`rm` internals: the real huggingface-hub HTTP code against a fake Hub on
127.0.0.1 (tests/fake_hub.py), downloading into a temporary Hugging Face cache."""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import time
from collections import namedtuple
from pathlib import Path

import pytest

from reflectchat.core.models import hub
from reflectchat.core.models.hub import HubError, plan_pull, pull, remove, transfer
from reflectchat.core.models.naming import guess_quant
from reflectchat.core.models.resolve import ModelNotFoundError, resolve_model
from tests.support.fake_hub import COMMIT, FakeHub, closed_port, silent_server
from tests.support.gguf_fixtures import write_small_gguf, write_split_gguf

# huggingface_hub reads HF_HUB_OFFLINE, HF_ENDPOINT and the like once, when imported: import
# it now, before any test sets them (reflectchat passes them explicitly at call time).
hf = hub.import_huggingface_hub()
from huggingface_hub import constants as hf_constants  # noqa: E402

TINY = "org/tiny-GGUF"
GATED = "gated/tiny-GGUF"
REFLECTION = "bartowski/Reflection-Llama-3.1-70B-GGUF"
Q5_PARTS = [
    "Reflection-Llama-3.1-70B-Q5_K_M/Reflection-Llama-3.1-70B-Q5_K_M-00001-of-00002.gguf",
    "Reflection-Llama-3.1-70B-Q5_K_M/Reflection-Llama-3.1-70B-Q5_K_M-00002-of-00002.gguf",
]
TOKEN = "hf_fake_secret_token_value"


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ggufs")
    q5 = write_split_gguf(d / "Reflection-Llama-3.1-70B-Q5_K_M.gguf", n_tensors=2)
    return {
        "big": write_small_gguf(d / "tiny-Q8_0.gguf", n_tokens=5000),  # ~95 kB
        "small": write_small_gguf(d / "tiny-Q4_K_M.gguf"),
        **{f"split{i}": p for i, p in enumerate(write_split_gguf(d / "tiny-Q4_0.gguf"), 1)},
        "q5_1": q5[0],
        "q5_2": q5[1],
    }


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ggufs: dict[str, Path]) -> FakeHub:
    server = FakeHub()
    server.add_repo(
        TINY,
        {
            "README.md": b"# tiny\n",
            "tiny-Q8_0.gguf": ggufs["big"],
            "tiny-Q4_K_M.gguf": ggufs["small"],
            "parts/tiny-Q4_0-00001-of-00003.gguf": ggufs["split1"],
            "parts/tiny-Q4_0-00002-of-00003.gguf": ggufs["split2"],
            "parts/tiny-Q4_0-00003-of-00003.gguf": ggufs["split3"],
            "broken-Q2_K.gguf": b"not a gguf file at all, just text " * 10,
        },
    )
    server.add_repo(
        REFLECTION,
        {Q5_PARTS[0]: ggufs["q5_1"], Q5_PARTS[1]: ggufs["q5_2"]},
    )
    server.add_repo(GATED, {"gated-Q4_K_M.gguf": ggufs["small"]}, gated=True)
    server.token = TOKEN
    server.start()
    set_hub_env(monkeypatch, tmp_path, server.endpoint)
    yield server
    server.stop()


def set_hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str) -> None:
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("HF_HUB_ETAG_TIMEOUT", raising=False)
    monkeypatch.delenv("HF_HUB_DOWNLOAD_TIMEOUT", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)  # in case it was set at import
    # no token saved by `hf auth login` on this machine may leak in
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    monkeypatch.setattr(hf_constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf" / "tokens"))


def cache(tmp_path: Path) -> Path:
    return tmp_path / "hf" / "hub"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- normal pulls ---------------------------------------------------------------------------------


def test_pull_then_resolve_online_and_offline(
    fake: FakeHub, tmp_path: Path, ggufs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = plan_pull(f"{TINY}:q8_0")
    assert plan.repo == TINY and plan.revision == COMMIT
    assert [(f.path, f.size, f.sha256) for f in plan.files] == [
        ("tiny-Q8_0.gguf", ggufs["big"].stat().st_size, sha(ggufs["big"]))
    ]
    assert plan.total_bytes == ggufs["big"].stat().st_size

    seen: list[tuple[int, int]] = []
    paths = pull(plan, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (plan.total_bytes, plan.total_bytes)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    # the standard Hugging Face cache layout: a relative link into blobs/<sha256>
    folder = cache(tmp_path) / "models--org--tiny-GGUF"
    assert paths == [folder / "snapshots" / COMMIT / "tiny-Q8_0.gguf"]
    assert paths[0].is_symlink() and not os.path.isabs(os.readlink(paths[0]))
    assert Path(os.path.realpath(paths[0])) == folder / "blobs" / sha(ggufs["big"])
    assert (folder / "refs" / "main").read_text() == COMMIT
    assert paths[0].read_bytes() == ggufs["big"].read_bytes()
    # ...which huggingface-hub itself reads back
    again = hf.hf_hub_download(
        TINY, "tiny-Q8_0.gguf", cache_dir=cache(tmp_path), local_files_only=True
    )
    assert Path(again) == paths[0]
    assert resolve_model(f"{TINY}:Q8_0").path == paths[0]

    # the token never travels to the CDN
    assert fake.seen("cdn", "GET") and all(
        "authorization" not in r.headers for r in fake.seen("cdn")
    )

    # offline: the cached model still resolves, and pulling it again needs no network
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = len(fake.requests)
    assert resolve_model(f"{TINY}:Q8_0").path == paths[0]
    offline_plan = plan_pull(f"{TINY}:Q8_0")
    assert pull(offline_plan) == paths
    assert hub.cached_paths(offline_plan) == paths
    assert len(fake.requests) == before


def test_pull_twice_downloads_once(fake: FakeHub) -> None:
    pull(plan_pull(f"{TINY}:Q8_0"))
    pull(plan_pull(f"{TINY}:Q8_0"))
    assert len(fake.seen("cdn", "GET")) == 1


def test_xet_backed_files_download_over_plain_http(
    fake: FakeHub, ggufs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.xet = True
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    path = pull(plan_pull(f"{GATED}:Q4_K_M"))[0]
    assert path.read_bytes() == ggufs["small"].read_bytes()
    get_resolve = [r for r in fake.seen("hub", "GET") if "/resolve/" in r.path]
    assert get_resolve[-1].headers["authorization"] == f"Bearer {TOKEN}"
    cdn = fake.seen("cdn", "GET")
    assert len(cdn) == 1 and "authorization" not in cdn[0].headers  # httpx drops it


def test_catalog_alias_with_split_files(
    fake: FakeHub, ggufs: dict[str, Path], tmp_path: Path
) -> None:
    plan = plan_pull("reflection-70b:q5_k_m")
    assert plan.repo == REFLECTION and plan.display == "reflection-70b:Q5_K_M"
    assert [f.path for f in plan.files] == Q5_PARTS
    paths = pull(plan)
    assert [p.name for p in paths] == [Path(p).name for p in Q5_PARTS]
    assert all(p.is_file() for p in paths)
    resolved = resolve_model("reflection-70b:q5_k_m")
    assert resolved.path == paths[0]  # the first part; llama.cpp loads the rest
    assert resolved.entry is not None and resolved.entry.alias == "reflection-70b"


def test_split_model_found_by_listing(fake: FakeHub) -> None:
    plan = plan_pull(f"{TINY}:Q4_0")
    assert [f.path for f in plan.files] == [
        f"parts/tiny-Q4_0-0000{i}-of-00003.gguf" for i in (1, 2, 3)
    ]
    paths = pull(plan)
    assert resolve_model(f"{TINY}:Q4_0").path == paths[0]
    assert len(fake.seen("cdn", "GET")) == 3


def test_hf_spec_of_a_first_part_brings_every_part(fake: FakeHub) -> None:
    plan = plan_pull(f"hf:{TINY}/parts/tiny-Q4_0-00001-of-00003.gguf")
    assert len(plan.files) == 3
    one = plan_pull(f"hf:{TINY}/tiny-Q4_K_M.gguf")
    assert [f.path for f in one.files] == ["tiny-Q4_K_M.gguf"]
    path = pull(one)[0]
    assert resolve_model(f"hf:{TINY}/tiny-Q4_K_M.gguf").path == path


# --- interrupted transfers ------------------------------------------------------------------------


def test_dropped_connection_resumes_with_a_range_request(
    fake: FakeHub, ggufs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # small chunks, so the bytes before the drop reach the file (the default is 1 MiB)
    monkeypatch.setattr(transfer, "_CHUNK_SIZE", 4096)
    fake.drop_after["tiny-Q8_0.gguf"] = 16384
    path = pull(plan_pull(f"{TINY}:Q8_0"))[0]
    assert path.read_bytes() == ggufs["big"].read_bytes()
    gets = fake.seen("cdn", "GET")
    assert len(gets) == 2
    assert "range" not in gets[0].headers
    assert gets[1].headers["range"] == "bytes=16384-"


def test_a_failed_download_keeps_its_bytes_for_the_next_pull(
    fake: FakeHub, tmp_path: Path, ggufs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "_CHUNK_SIZE", 4096)
    fake.drop_after["tiny-Q8_0.gguf"] = 16384
    fake.range_status = 503  # the connection drops, and the retry is refused
    with pytest.raises(HubError) as info:
        pull(plan_pull(f"{TINY}:Q8_0"))
    message = str(info.value)
    assert info.value.kind == "network"
    assert "the download of tiny-Q8_0.gguf stopped (the Hugging Face Hub answered HTTP 503" in (
        message
    )
    assert f"16.4 kB are kept: run reflectchat models pull {TINY}:Q8_0 again" in message
    fake.range_status = None
    path = pull(plan_pull(f"{TINY}:Q8_0"))[0]
    assert fake.seen("cdn", "GET")[-1].headers["range"] == "bytes=16384-"
    assert path.read_bytes() == ggufs["big"].read_bytes()


def test_interrupted_pull_continues_where_it_stopped(
    fake: FakeHub, tmp_path: Path, ggufs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "_CHUNK_SIZE", 4096)
    plan = plan_pull(f"{TINY}:Q8_0")

    def ctrl_c_after_32k(done: int, total: int) -> None:
        if done >= 32768:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pull(plan, progress=ctrl_c_after_32k)
    blobs = cache(tmp_path) / "models--org--tiny-GGUF" / "blobs"
    partial = blobs / f"{plan.files[0].sha256}.incomplete"
    assert partial.stat().st_size == 32768
    with pytest.raises(ModelNotFoundError):
        resolve_model(f"{TINY}:Q8_0")

    seen: list[int] = []
    path = pull(plan_pull(f"{TINY}:Q8_0"), progress=lambda done, total: seen.append(done))[0]
    assert fake.seen("cdn", "GET")[-1].headers["range"] == "bytes=32768-"
    assert seen[0] == 32768  # the kept bytes count as done from the start
    assert path.read_bytes() == ggufs["big"].read_bytes()
    assert not partial.exists()


def test_a_server_that_ignores_range_restarts_cleanly(
    fake: FakeHub, ggufs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer, "_CHUNK_SIZE", 4096)

    def ctrl_c(done: int, total: int) -> None:
        if done >= 8192:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pull(plan_pull(f"{TINY}:Q8_0"), progress=ctrl_c)
    fake.ignore_range = True  # asked for bytes=8192-, it sends everything from byte 0
    seen: list[tuple[int, int]] = []
    path = pull(plan_pull(f"{TINY}:Q8_0"), progress=lambda d, t: seen.append((d, t)))[0]
    assert fake.seen("cdn", "GET")[-1].headers["range"] == "bytes=8192-"
    assert path.read_bytes() == ggufs["big"].read_bytes()  # and the sha256 check passed
    assert seen[-1] == (len(path.read_bytes()),) * 2
    assert any(b < a for (a, _), (b, _) in itertools.pairwise(seen))  # the count went back to 0


# --- verification ---------------------------------------------------------------------------------


def test_checksum_mismatch_deletes_the_file(fake: FakeHub, tmp_path: Path) -> None:
    fake.corrupt.add("tiny-Q8_0.gguf")
    with pytest.raises(HubError) as info:
        pull(plan_pull(f"{TINY}:Q8_0"))
    err = info.value
    assert err.kind == "checksum"
    assert "checksum mismatch for tiny-Q8_0.gguf" in str(err)
    assert "deleted" in str(err)
    folder = cache(tmp_path) / "models--org--tiny-GGUF"
    assert list((folder / "blobs").iterdir()) == []
    assert not (folder / "snapshots" / COMMIT / "tiny-Q8_0.gguf").exists()
    with pytest.raises(ModelNotFoundError):
        resolve_model(f"{TINY}:Q8_0")

    fake.corrupt.clear()  # the next pull starts over and succeeds
    assert pull(plan_pull(f"{TINY}:Q8_0"))[0].is_file()


def test_a_file_that_is_not_gguf_is_refused_and_deleted(fake: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(HubError) as info:
        pull(plan_pull(f"{TINY}:Q2_K"))
    assert info.value.kind == "invalid"
    assert "not a usable GGUF" in str(info.value) and "deleted" in str(info.value)
    folder = cache(tmp_path) / "models--org--tiny-GGUF"
    assert list((folder / "blobs").iterdir()) == []
    assert not (folder / "snapshots" / COMMIT / "broken-Q2_K.gguf").exists()


def test_not_enough_disk_space_is_refused_before_downloading(
    fake: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(HubError) as info:
        pull(plan_pull(f"{TINY}:Q8_0"))
    message = str(info.value)
    assert info.value.kind == "disk"
    assert "not enough free disk space" in message
    assert "95.0 kB" in message and "1.0 kB free" in message
    assert fake.seen("cdn") == []


# --- errors ---------------------------------------------------------------------------------------


def test_gated_repo_needs_a_token(
    fake: FakeHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(HubError) as info:
        plan_pull(f"{GATED}:Q4_K_M")
    assert info.value.kind == "auth"
    assert "gated" in str(info.value) and "HF_TOKEN" in str(info.value)

    monkeypatch.setenv("HF_TOKEN", "hf_wrong_token_value")
    with pytest.raises(HubError) as info:
        plan_pull(f"{GATED}:Q4_K_M")
    assert info.value.kind == "auth" and "refused the token in HF_TOKEN" in str(info.value)
    assert "hf_wrong_token_value" not in str(info.value)

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    plan = plan_pull(f"{GATED}:Q4_K_M")
    assert pull(plan)[0].is_file()
    resolves = [r for r in fake.seen("hub", "HEAD") if "/resolve/" in r.path]
    assert resolves[-1].headers["authorization"] == f"Bearer {TOKEN}"


def test_401_from_a_download_says_to_set_hf_token(
    fake: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    plan = plan_pull(f"{GATED}:Q4_K_M")
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubError) as info:
        pull(plan)  # the Hub answers the file's HEAD with 401 GatedRepo
    assert info.value.kind == "auth"
    assert "set HF_TOKEN" in str(info.value)


def test_unknown_repo_is_a_404(fake: FakeHub) -> None:
    with pytest.raises(HubError) as info:
        plan_pull("nobody/nothing-GGUF:Q4_K_M")
    assert info.value.kind == "not_found"
    assert "no repository nobody/nothing-GGUF" in str(info.value)
    assert "check the spec" in str(info.value)


def test_unknown_file_and_quantization(fake: FakeHub) -> None:
    with pytest.raises(HubError) as info:
        plan_pull(f"hf:{TINY}/missing.gguf")
    assert info.value.kind == "not_found" and "no file missing.gguf" in str(info.value)
    with pytest.raises(HubError) as info:
        plan_pull(f"{TINY}:Q6_K")
    assert info.value.kind == "not_found"
    assert "no .gguf file for Q6_K" in str(info.value)
    assert "Q4_0, Q4_K_M, Q8_0" in str(info.value)


def test_a_file_gone_from_the_hub_is_a_404(fake: FakeHub) -> None:
    plan = plan_pull(f"{TINY}:Q4_K_M")
    del fake.repos[TINY].files["tiny-Q4_K_M.gguf"]
    with pytest.raises(HubError) as info:
        pull(plan)  # HEAD …/resolve/… → 404 EntryNotFound
    assert info.value.kind == "not_found"
    assert "no file tiny-Q4_K_M.gguf" in str(info.value)


def test_a_listed_name_that_leaves_the_cache_is_refused(fake: FakeHub, tmp_path: Path) -> None:
    fake.add_repo("evil/repo", {"../../../evil-Q3_K_M.gguf": b"GGUF"})
    with pytest.raises(HubError, match="unusable name"):
        plan_pull("evil/repo:Q3_K_M")
    assert not (tmp_path / "evil-Q3_K_M.gguf").exists()


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("./model.gguf", "local file"),
        ("smollm2", "embedded demo model"),
        ("reflection-70b:q9_9", "no quantization"),
        ("not-an-alias", "unknown model"),
        ("a/b/c:Q4", "not a model spec"),
    ],
)
def test_specs_that_cannot_be_pulled(spec: str, words: str) -> None:
    with pytest.raises(HubError) as info:
        plan_pull(spec)
    assert info.value.kind == "spec" and words in str(info.value)


# --- offline --------------------------------------------------------------------------------------


def test_offline_uncached_model_fails_at_once(
    fake: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(HubError) as info:
        plan_pull(f"{TINY}:Q8_0")
    assert time.monotonic() - start < 5
    assert info.value.kind == "offline"
    assert "cannot reach the Hugging Face Hub" in str(info.value)
    assert f"run reflectchat models pull {TINY}:Q8_0 on a connected machine" in str(info.value)
    assert fake.requests == []
    with pytest.raises(ModelNotFoundError, match="on a connected machine"):
        resolve_model(f"{TINY}:Q8_0")


@pytest.mark.parametrize("server", ["refused", "silent"])
def test_no_network_fails_within_seconds(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = None
    if server == "refused":
        endpoint = closed_port()
    else:
        sock, endpoint = silent_server()
    set_hub_env(monkeypatch, tmp_path, endpoint)
    if server == "silent":
        monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "1")
    try:
        start = time.monotonic()
        with pytest.raises(HubError) as info:
            plan_pull("reflection-70b:q4_k_m")
        assert time.monotonic() - start < 5
    finally:
        if sock is not None:
            sock.close()
    assert info.value.kind == "offline"
    assert "cannot reach the Hugging Face Hub" in str(info.value)
    assert "reflectchat models pull reflection-70b:q4_k_m on a connected machine" in str(info.value)


def test_no_network_but_cached_plans_from_the_cache(
    fake: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = pull(plan_pull(f"{TINY}:Q4_0"))
    monkeypatch.setenv("HF_ENDPOINT", closed_port())
    plan = plan_pull(f"{TINY}:Q4_0")
    assert plan.revision is None
    assert pull(plan) == paths


# --- rm -------------------------------------------------------------------------------------------


def test_rm_deletes_only_that_model(fake: FakeHub, tmp_path: Path) -> None:
    q8 = pull(plan_pull(f"{TINY}:Q8_0"))[0]
    split = pull(plan_pull(f"{TINY}:Q4_0"))
    folder = cache(tmp_path) / "models--org--tiny-GGUF"
    # another snapshot whose other file shares the Q8_0 blob
    other = folder / "snapshots" / ("f" * 40)
    other.mkdir()
    (other / "backup.gguf").symlink_to(os.readlink(q8))

    removed = remove(f"{TINY}:Q4_0")
    assert sorted(p.name for p in removed if "snapshots" in p.parts) == sorted(
        p.name for p in split
    )
    assert sum(1 for p in removed if p.parent.name == "blobs") == 3
    assert not any(p.exists() for p in split)
    assert not (folder / "snapshots" / COMMIT / "parts").exists()
    assert resolve_model(f"{TINY}:Q8_0").path == q8

    remove(f"{TINY}:Q8_0")
    assert not q8.exists()
    assert (other / "backup.gguf").is_file()  # its blob is still used, so it stays

    with pytest.raises(HubError) as info:
        remove(f"{TINY}:Q8_0")
    assert info.value.kind == "not_found" and "not downloaded" in str(info.value)


def test_rm_last_model_removes_the_repo_folder(fake: FakeHub, tmp_path: Path) -> None:
    pull(plan_pull("reflection-70b:q5_k_m"))
    removed = remove("reflection-70b:q5_k_m")
    assert len(removed) == 4  # two snapshot links and two blobs
    assert not (cache(tmp_path) / "models--bartowski--Reflection-Llama-3.1-70B-GGUF").exists()
    with pytest.raises(ModelNotFoundError):
        resolve_model("reflection-70b:q5_k_m")


def test_guess_quant() -> None:
    assert guess_quant("Reflection-Llama-3.1-70B-Q4_K_M.gguf") == "Q4_K_M"
    assert guess_quant("x/Reflection-Llama-3.1-8B.Q4_K_S.gguf") == "Q4_K_S"
    assert guess_quant("m-Q5_K_M-00001-of-00002.gguf") == "Q5_K_M"
    assert guess_quant("qwq-32b-q4_k_m.gguf") == "Q4_K_M"
    assert guess_quant("model-IQ2_XXS.gguf") == "IQ2_XXS"
    assert guess_quant("model-f16.gguf") == "F16"
    assert guess_quant("README.md") is None
    assert guess_quant("model.gguf") is None


# --- hostile or broken servers (issue 13) ---------------------------------------------------------

LISTED = 2784  # bytes: what the Hub lists for the file an endless server then streams


@pytest.fixture
def small_repo(fake: FakeHub) -> str:
    fake.add_repo("o/r", {"r-Q4_K_M.gguf": b"GGUF" + bytes(LISTED - 4)})
    return "o/r"


def test_an_endless_stream_is_cut_at_the_listed_size(
    fake: FakeHub, small_repo: str, tmp_path: Path
) -> None:
    fake.endless.add("r-Q4_K_M.gguf")
    start = time.monotonic()
    with pytest.raises(HubError) as info:
        pull(plan_pull(f"{small_repo}:Q4_K_M"))
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert info.value.kind == "checksum"
    assert "sent more than the 2.8 kB the Hub lists for it" in message
    assert "the partial file was deleted" in message and "\n" not in message
    blobs = cache(tmp_path) / "models--o--r" / "blobs"
    assert list(blobs.iterdir()) == []  # nothing of it is kept
    # reading stopped at once: what went out is at most what the socket buffers took
    assert fake.sent["r-Q4_K_M.gguf"] < 64 * 2**20


def test_a_stalled_download_times_out_and_continues_later(
    fake: FakeHub, ggufs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(transfer, "_CHUNK_SIZE", 4096)
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "1")
    fake.stall_after["tiny-Q8_0.gguf"] = 16384
    start = time.monotonic()
    with pytest.raises(HubError) as info:
        pull(plan_pull(f"{TINY}:Q8_0"))
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert info.value.kind == "network"
    assert "the download of tiny-Q8_0.gguf stalled: nothing came from 127.0.0.1:" in message
    assert "for 1 s; 16.4 kB are kept" in message and "HF_HUB_DOWNLOAD_TIMEOUT" in message
    assert len(fake.seen("cdn", "GET")) == 1  # a stall is not waited out again and again

    path = pull(plan_pull(f"{TINY}:Q8_0"))[0]  # the next pull continues where it stalled
    assert fake.seen("cdn", "GET")[-1].headers["range"] == "bytes=16384-"
    assert path.read_bytes() == ggufs["big"].read_bytes()


def test_the_stall_timeout_is_a_parameter_too(fake: FakeHub, small_repo: str) -> None:
    fake.stall_after["r-Q4_K_M.gguf"] = 0
    start = time.monotonic()
    with pytest.raises(HubError, match=r"stalled: .* for 0\.5 s"):
        pull(plan_pull(f"{small_repo}:Q4_K_M"), stall_timeout=0.5)
    assert time.monotonic() - start < 4


def test_the_default_stall_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_DOWNLOAD_TIMEOUT", raising=False)
    assert hub.download_timeout() == 60
    for value in ("nonsense", "0", "-3"):
        monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", value)
        assert hub.download_timeout() == 60
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "2.5")
    assert hub.download_timeout() == 2.5


@pytest.mark.parametrize("where", ["hub", "cdn"])
def test_a_redirect_loop_is_called_one(fake: FakeHub, small_repo: str, where: str) -> None:
    plan = plan_pull(f"{small_repo}:Q4_K_M")
    fake.redirect_loop = where
    with pytest.raises(HubError) as info:
        pull(plan) if where == "cdn" else plan_pull(f"{small_repo}:Q4_K_M")
    message = str(info.value)
    host = (fake.cdn if where == "cdn" else fake.endpoint).removeprefix("http://")
    assert f"{host} redirects in a loop (too many redirects)" in message
    assert "cannot reach" not in message and "connection" not in message


def test_huggingface_hub_logs_and_warns_nothing(fake: FakeHub) -> None:
    import logging

    hub.import_huggingface_hub()
    assert not logging.getLogger("huggingface_hub").isEnabledFor(logging.CRITICAL)


# --- rm never leaves the cache --------------------------------------------------------------------


def outside_folder(tmp_path: Path) -> tuple[Path, Path]:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    precious = elsewhere / "precious-Q4_K_M.gguf"
    precious.write_bytes(b"GGUF precious bytes")
    return elsewhere, precious


def test_rm_does_not_follow_a_snapshot_that_links_elsewhere(fake: FakeHub, tmp_path: Path) -> None:
    elsewhere, precious = outside_folder(tmp_path)
    folder = cache(tmp_path) / "models--o--r"
    (folder / "snapshots").mkdir(parents=True)
    (folder / "snapshots" / "abc").symlink_to(elsewhere, target_is_directory=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("abc")
    with pytest.raises(HubError) as info:
        remove("o/r:Q4_K_M")
    assert info.value.kind == "not_found"
    assert precious.read_bytes() == b"GGUF precious bytes"
    assert (folder / "snapshots" / "abc").is_symlink()
    with pytest.raises(ModelNotFoundError):  # nor does it count as downloaded
        resolve_model("o/r:Q4_K_M")


def test_rm_unlinks_links_never_their_targets(fake: FakeHub, tmp_path: Path) -> None:
    elsewhere, precious = outside_folder(tmp_path)
    other = elsewhere / "sub"
    other.mkdir()
    (other / "inner-Q4_K_M.gguf").write_bytes(b"GGUF inner")
    blob_elsewhere = elsewhere / "blob"
    blob_elsewhere.write_bytes(b"GGUF blob elsewhere")
    folder = cache(tmp_path) / "models--o--r"
    snapshot = folder / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (folder / "blobs").mkdir()
    (folder / "blobs" / ("b" * 64)).symlink_to(blob_elsewhere)
    (snapshot / "link-Q4_K_M.gguf").symlink_to(precious)  # a file link out of the cache
    (snapshot / "sub").symlink_to(other, target_is_directory=True)  # a folder link
    (snapshot / "blob-Q4_K_M.gguf").symlink_to(Path("..", "..", "blobs", "b" * 64))

    removed = remove("o/r:Q4_K_M")
    assert sorted(p.name for p in removed) == ["blob-Q4_K_M.gguf", "link-Q4_K_M.gguf"]
    assert not (snapshot / "link-Q4_K_M.gguf").is_symlink()
    assert precious.read_bytes() == b"GGUF precious bytes"
    assert (other / "inner-Q4_K_M.gguf").read_bytes() == b"GGUF inner"
    assert blob_elsewhere.read_bytes() == b"GGUF blob elsewhere"
    assert (snapshot / "sub").is_symlink()  # not this model's, so it stays


def test_rm_still_removes_blobs_when_the_cache_itself_is_behind_a_link(
    fake: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "disk" / "hub"
    real.mkdir(parents=True)
    (tmp_path / "linked-hub").symlink_to(real, target_is_directory=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "linked-hub"))
    pull(plan_pull(f"{TINY}:Q4_K_M"))
    removed = remove(f"{TINY}:Q4_K_M")
    assert sum(1 for p in removed if p.parent.name == "blobs") == 1
    assert not (real / "models--org--tiny-GGUF").exists()


def test_pull_never_writes_through_a_planted_snapshot_link(fake: FakeHub, tmp_path: Path) -> None:
    elsewhere, _ = outside_folder(tmp_path)
    victim = elsewhere / "tiny-Q4_K_M.gguf"
    victim.write_bytes(b"someone's file")
    folder = cache(tmp_path) / "models--org--tiny-GGUF"
    (folder / "snapshots").mkdir(parents=True)
    (folder / "snapshots" / COMMIT).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(HubError) as info:
        pull(plan_pull(f"{TINY}:Q4_K_M"))
    assert "is a link out of the Hugging Face cache folder" in str(info.value)
    assert victim.read_bytes() == b"someone's file"
    assert sorted(p.name for p in elsewhere.iterdir()) == [
        "precious-Q4_K_M.gguf",
        "tiny-Q4_K_M.gguf",
    ]
