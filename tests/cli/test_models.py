"""`reflectchat models list|pull|rm`, run as a command against a fake Hub and fake folders of
other tools. main.py wires the command in; until then a tiny harness stands in for it, with the
same error handling (one line on stderr, the CliError's exit code)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reflectchat.core.units import format_bytes
from tests.conftest import REPO
from tests.core.models.test_discovery import GGUF, hf_repo, ollama_blob, ollama_manifest, put
from tests.support.fake_hub import FakeHub
from tests.support.gguf_fixtures import find_embedded_model, write_small_gguf, write_split_gguf

HARNESS = """
import argparse, sys
from reflectchat.cli.errors import CliError, report_error
from reflectchat.cli.models import add_models_parser, run_models

class Parser(argparse.ArgumentParser):
    def error(self, message):
        report_error(message)
        raise SystemExit(2)

parser = Parser(prog="reflectchat")
add_models_parser(parser.add_subparsers(dest="command", parser_class=Parser), Parser)
args = parser.parse_args(sys.argv[1:])
try:
    sys.exit(run_models(args))
except CliError as exc:
    report_error(str(exc))
    sys.exit(exc.exit_code)
"""
TINY = "org/tiny-GGUF"
TOKEN = "hf_cli_secret_token"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A home of its own: an empty Hugging Face cache, no other tools, no token, online."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGING", "OLLAMA_", "LLAMA_", "XDG_"))
    }
    env.update(
        HOME=str(home),
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_CACHE=str(tmp_path / "hf" / "hub"),
        PYTHONPATH=str(REPO),
        COLUMNS="100",
    )
    return env


@pytest.fixture
def fake(tmp_path: Path, env: dict[str, str]) -> FakeHub:
    d = tmp_path / "ggufs"
    d.mkdir()
    server = FakeHub()
    split = write_split_gguf(d / "tiny-Q4_0.gguf", n_tensors=2)
    server.add_repo(
        TINY,
        {
            "tiny-Q8_0.gguf": write_small_gguf(d / "tiny-Q8_0.gguf", n_tokens=2000),
            "tiny-Q4_0-00001-of-00002.gguf": split[0],
            "tiny-Q4_0-00002-of-00002.gguf": split[1],
        },
    )
    server.add_repo("gated/g-GGUF", {"g-Q8_0.gguf": d / "tiny-Q8_0.gguf"}, gated=True)
    server.token = TOKEN
    server.start()
    env["HF_ENDPOINT"] = server.endpoint
    yield server
    server.stop()


def models(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", HARNESS, "models", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def tsv(text: str) -> list[dict[str, str]]:
    header, *lines = text.rstrip("\n").split("\n")
    names = header.split("\t")
    assert names == ["model", "quant", "size", "on disk", "source", "path"]
    return [dict(zip(names, line.split("\t"), strict=True)) for line in lines]


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("reflectchat: error: ")
    return lines[0]


# --- list -----------------------------------------------------------------------------------------


def machine_with_models(tmp_path: Path, env: dict[str, str]) -> dict[str, Path]:
    """Catalog models in the HF cache, plus files from LM Studio, Ollama and another repo."""
    hub = Path(env["HF_HUB_CACHE"])
    home = Path(env["HOME"])
    one_b = hf_repo(hub, "Meshwa/llama3.2-1b-Reflection-v1", {"r1b-Q4_K_M.gguf": GGUF * 10})
    q5 = [
        "Reflection-Llama-3.1-70B-Q5_K_M/Reflection-Llama-3.1-70B-Q5_K_M-00001-of-00002.gguf",
        "Reflection-Llama-3.1-70B-Q5_K_M/Reflection-Llama-3.1-70B-Q5_K_M-00002-of-00002.gguf",
    ]
    big = hf_repo(hub, "bartowski/Reflection-Llama-3.1-70B-GGUF", {q5[0]: GGUF, q5[1]: GGUF * 2})
    hf_repo(hub, "someone/Other-GGUF", {"other-IQ2_XS.gguf": GGUF})
    lms = put(home / ".lmstudio" / "models" / "lmstudio-community" / "Q-GGUF" / "q-Q6_K.gguf")
    digest, blob = ollama_blob(home / ".ollama" / "models", GGUF * 3)
    ollama_manifest(
        home / ".ollama" / "models",
        "registry.ollama.ai/library/llama3.2/1b-instruct-q8_0",
        [{"mediaType": "application/vnd.ollama.image.model", "digest": digest}],
    )
    snapshot = "a" * 40
    return {
        "one_b": one_b / "snapshots" / snapshot / "r1b-Q4_K_M.gguf",
        "q5": big / "snapshots" / snapshot / q5[0],
        "lms": lms,
        "ollama": blob,
    }


def test_list_tsv(tmp_path: Path, env: dict[str, str]) -> None:
    paths = machine_with_models(tmp_path, env)
    result = models(env, "list")
    assert result.returncode == 0, result.stderr
    rows = tsv(result.stdout)
    by_key = {(r["model"], r["quant"]): r for r in rows}

    assert by_key[("reflection-1b", "Q4_K_M")] == {
        "model": "reflection-1b",
        "quant": "Q4_K_M",
        "size": "800.0 MB",  # what the Hub says
        "on disk": format_bytes(len(GGUF) * 10),
        "source": "catalog",
        "path": str(paths["one_b"]),
    }
    q5 = by_key[("reflection-70b", "Q5_K_M")]
    assert q5["on disk"] == format_bytes(len(GGUF) * 3)  # both parts
    assert q5["path"] == str(paths["q5"])
    q4 = by_key[("reflection-70b", "Q4_K_M")]
    assert (q4["size"], q4["on disk"], q4["path"]) == ("42.5 GB", "-", "")
    smol = by_key[("smollm2", "Q4_1")]
    assert smol["source"] == "embedded"
    assert (smol["on disk"] != "-") == (find_embedded_model() is not None)

    found = [r for r in rows if r["source"] not in ("catalog", "embedded")]
    assert [(r["source"], r["model"], r["quant"]) for r in found] == [
        ("hf-cache", "someone/Other-GGUF/other-IQ2_XS.gguf", "IQ2_XS"),
        ("lm-studio", "lmstudio-community/Q-GGUF/q-Q6_K.gguf", "Q6_K"),
        ("ollama", "llama3.2:1b-instruct-q8_0", "Q8_0"),
    ]
    assert found[2]["path"] == str(paths["ollama"])
    assert found[2]["on disk"] == format_bytes(len(GGUF) * 3) and found[2]["size"] == "-"


def test_list_json(tmp_path: Path, env: dict[str, str]) -> None:
    paths = machine_with_models(tmp_path, env)
    result = models(env, "list", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    catalog = {(r["alias"], r["quant"]): r for r in data["catalog"]}
    one_b = catalog[("reflection-1b", "Q4_K_M")]
    assert one_b["downloaded"] is True and one_b["default"] is True
    assert one_b["size_bytes"] == 800_000_000
    assert one_b["size_on_disk"] == len(GGUF) * 10
    assert one_b["path"] == str(paths["one_b"])
    assert one_b["repo"] == "Meshwa/llama3.2-1b-Reflection-v1"
    q5 = catalog[("reflection-70b", "Q5_K_M")]
    assert q5["downloaded"] and len(q5["parts"]) == 2 and q5["size_on_disk"] == len(GGUF) * 3
    q4 = catalog[("reflection-70b", "Q4_K_M")]
    assert q4 | {"name": None} == {
        "alias": "reflection-70b",
        "name": None,
        "quant": "Q4_K_M",
        "default": True,
        "size_bytes": 42_500_000_000,
        "downloaded": False,
        "embedded": False,
        "size_on_disk": None,
        "path": None,
        "repo": "bartowski/Reflection-Llama-3.1-70B-GGUF",
        "parts": [],
    }
    assert [(f["source"], f["name"], f["size_bytes"]) for f in data["found"]] == [
        ("hf-cache", "someone/Other-GGUF/other-IQ2_XS.gguf", len(GGUF)),
        ("lm-studio", "lmstudio-community/Q-GGUF/q-Q6_K.gguf", len(GGUF)),
        ("ollama", "llama3.2:1b-instruct-q8_0", len(GGUF) * 3),
    ]


def test_list_on_an_empty_machine(env: dict[str, str]) -> None:
    result = models(env, "list")
    assert result.returncode == 0
    rows = tsv(result.stdout)
    assert {r["source"] for r in rows} <= {"catalog", "embedded"}
    assert all(r["on disk"] == "-" for r in rows if r["source"] == "catalog")


def test_list_loads_neither_huggingface_hub_nor_the_network(env: dict[str, str]) -> None:
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['reflectchat', 'models', 'list']\n"
        f"try:\n    exec({HARNESS!r})\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('huggingface_hub', 'httpx2', 'llama_cpp', 'textual')"
        " if m in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.stderr.strip().splitlines()[-1] == "[]"


# --- pull and rm ----------------------------------------------------------------------------------


def test_pull_list_rm(fake: FakeHub, env: dict[str, str]) -> None:
    result = models(env, "pull", f"{TINY}:Q4_0")
    assert result.returncode == 0, result.stderr
    first = Path(result.stdout.strip())
    assert first.name == "tiny-Q4_0-00001-of-00002.gguf" and first.is_file()
    assert f"pulling {TINY}:Q4_0 from {TINY}: 2 files" in result.stderr
    assert "100%" in result.stderr and "checked against the Hub's sha256" in result.stderr

    again = models(env, "pull", f"{TINY}:Q4_0")
    assert again.returncode == 0
    assert "already downloaded" in again.stderr and again.stdout.strip() == str(first)
    assert len(fake.seen("cdn", "GET")) == 2

    rows = tsv(models(env, "list").stdout)
    assert [r["model"] for r in rows if r["source"] == "hf-cache"] == [
        f"{TINY}/tiny-Q4_0-00001-of-00002.gguf"
    ]

    removed = models(env, "rm", f"{TINY}:Q4_0")
    assert removed.returncode == 0, removed.stderr
    assert "removed org/tiny-GGUF:Q4_0 from the Hugging Face cache (2 files)" in removed.stderr
    assert not first.exists()

    gone = models(env, "rm", f"{TINY}:Q4_0")
    assert gone.returncode == 2
    assert "is not downloaded" in one_error_line(gone)


@pytest.mark.parametrize(
    ("spec", "extra_env", "code", "words"),
    [
        ("nobody/nothing-GGUF:Q4_K_M", {}, 2, "no repository nobody/nothing-GGUF"),
        (f"{TINY}:Q2_K", {}, 2, "no .gguf file for Q2_K"),
        ("./local.gguf", {}, 2, "local file"),
        ("gated/g-GGUF:Q8_0", {}, 1, "set HF_TOKEN"),
        ("gated/g-GGUF:Q8_0", {"HF_TOKEN": "hf_not_the_right_one"}, 1, "refused the token"),
        (f"{TINY}:Q8_0", {"HF_HUB_OFFLINE": "1"}, 1, "on a connected machine"),
    ],
)
def test_pull_errors(
    fake: FakeHub,
    env: dict[str, str],
    spec: str,
    extra_env: dict[str, str],
    code: int,
    words: str,
) -> None:
    start = time.monotonic()
    result = models({**env, **extra_env}, "pull", spec)
    assert time.monotonic() - start < 10
    assert result.returncode == code
    line = one_error_line(result)
    assert words in line
    assert "hf_not_the_right_one" not in result.stderr + result.stdout
    assert result.stdout == ""


def test_pull_checksum_mismatch_exits_1(fake: FakeHub, env: dict[str, str]) -> None:
    fake.corrupt.add("tiny-Q8_0.gguf")
    result = models(env, "pull", f"{TINY}:Q8_0")
    assert result.returncode == 1
    assert "checksum mismatch" in result.stderr and "deleted" in result.stderr
    assert "Traceback" not in result.stderr


def test_pull_with_token_on_a_terminal_shows_a_progress_bar(
    fake: FakeHub, env: dict[str, str]
) -> None:
    """stderr on a pseudo-terminal: the Rich bar, with size, speed and time left."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", HARNESS, "models", "pull", "gated/g-GGUF:Q8_0"],
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**env, "HF_TOKEN": TOKEN, "TERM": "xterm-256color"},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    stdout, _ = proc.communicate(timeout=60)
    screen = ANSI.sub("", b"".join(chunks).decode(errors="replace"))
    assert proc.returncode == 0, screen
    assert stdout.decode().strip().startswith(env["HF_HUB_CACHE"])
    total = format_bytes(len(fake.file("gated/g-GGUF", "g-Q8_0.gguf").data))
    bar = [line for line in screen.splitlines() if "━" in line][-1]  # the final refresh
    assert "gated/g-GGUF:Q8_0" in bar
    # DownloadColumn, TransferSpeedColumn ("?" when it is this fast), TimeRemainingColumn
    assert re.search(
        rf"{re.escape(total.split()[0])}/{re.escape(total)} \S+/?s? +\d:\d\d:\d\d", bar
    )
    assert "downloaded gated/g-GGUF:Q8_0" in screen
    assert TOKEN not in screen


# --- hostile or broken Hubs and caches (issue 13) -------------------------------------------------


def test_rm_never_deletes_a_file_outside_the_cache(tmp_path: Path, env: dict[str, str]) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    precious = elsewhere / "precious-Q4_K_M.gguf"
    precious.write_bytes(b"GGUF precious")
    folder = Path(env["HF_HUB_CACHE"]) / "models--o--r"
    (folder / "snapshots").mkdir(parents=True)
    (folder / "snapshots" / "abc").symlink_to(elsewhere, target_is_directory=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("abc")
    result = models(env, "rm", "o/r:Q4_K_M")
    assert result.returncode == 2
    assert "is not downloaded" in one_error_line(result)
    assert precious.read_bytes() == b"GGUF precious"


@pytest.fixture
def listed_small(fake: FakeHub) -> str:
    fake.add_repo("o/r", {"r-Q4_K_M.gguf": b"GGUF" + bytes(2780)})  # the Hub lists 2,784 bytes
    return "o/r:Q4_K_M"


def test_pull_from_an_endless_server_stops_at_the_listed_size(
    fake: FakeHub, env: dict[str, str], listed_small: str
) -> None:
    fake.endless.add("r-Q4_K_M.gguf")
    start = time.monotonic()
    result = models(env, "pull", listed_small)
    assert time.monotonic() - start < 20
    assert result.returncode == 1
    assert "sent more than the 2.8 kB the Hub lists" in pull_error_line(result)
    blobs = Path(env["HF_HUB_CACHE"]) / "models--o--r" / "blobs"
    assert list(blobs.iterdir()) == []


def test_a_stalled_pull_says_so_in_one_line(
    fake: FakeHub, env: dict[str, str], listed_small: str
) -> None:
    fake.stall_after["r-Q4_K_M.gguf"] = 0
    start = time.monotonic()
    result = models({**env, "HF_HUB_DOWNLOAD_TIMEOUT": "1"}, "pull", listed_small)
    assert time.monotonic() - start < 15
    assert result.returncode == 1
    # huggingface-hub's own "Trying to resume download..." lines stay out of it
    line = pull_error_line(result)
    assert "stalled: nothing came from 127.0.0.1:" in line and "for 1 s" in line
    assert "Traceback" not in result.stderr


def test_a_redirect_loop_is_named_as_one(
    fake: FakeHub, env: dict[str, str], listed_small: str
) -> None:
    fake.redirect_loop = "hub"
    result = models(env, "pull", listed_small)
    assert result.returncode == 1
    line = one_error_line(result)
    host = fake.endpoint.removeprefix("http://")
    assert f"{host} redirects in a loop (too many redirects)" in line
    assert "cannot reach" not in line and "connect" not in line


def pull_error_line(result: subprocess.CompletedProcess) -> str:
    """The one error line of a pull that started: stderr is that line, after what the pull
    printed before it failed (what it pulls, then percentages)."""
    lines = [
        line
        for line in result.stderr.strip().splitlines()
        if not line.startswith("pulling ") and not re.match(r"\s*\d+%  ", line)
    ]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("reflectchat: error: ")
    return lines[0]
