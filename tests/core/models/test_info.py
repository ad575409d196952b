"""`models info` (header only), `models default`, `models list --endpoint`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from reflectchat.core.config import load_config
from tests.conftest import cli, run_env
from tests.support.fake_openai import fake_openai
from tests.support.gguf_fixtures import (
    REFLECTION_TAGS,
    embedded_model_path,
    write_reflection_token_gguf,
)


def run(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli(*args),
        capture_output=True,
        text=True,
        timeout=120,
        env=run_env(REFLECTCHAT_HOME=str(home)),
    )


def test_info_on_the_demo_model(isolated_home: Path) -> None:
    embedded_model_path()
    data = json.loads(run(isolated_home, "models", "info", "smollm2", "--json").stdout)
    assert data["architecture"] == "llama"
    assert data["quantization"] == "Q4_1"
    assert 134e6 < data["parameters"] < 135e6
    assert data["context_length"] == 8192 and data["chat_template"] is True
    assert data["memory"]["context"] == 2048
    assert data["memory"]["kv_cache_bytes"] == 30 * 2048 * 3 * 128 * 2
    assert data["fit"]["fits"] is True
    text = run(isolated_home, "models", "info", "smollm2").stdout
    assert "Q4_1" in text and "memory at 2048 tokens" in text


def test_info_on_a_70b_header_says_it_does_not_fit(isolated_home: Path, synth_70b: Path) -> None:
    data = json.loads(
        run(isolated_home, "models", "info", str(synth_70b), "--ctx", "8192", "--json").stdout
    )
    assert 70e9 < data["parameters"] < 71e9
    assert data["quantization"] == "Q4_K_M"
    assert data["catalog"] == "reflection-70b"  # picked up by its file name
    assert data["memory"]["kv_cache_bytes"] == 80 * 8192 * 8 * 256 * 2
    # this 24 GB machine cannot hold 42.5 GB of weights (a bigger one would pass this line)
    assert data["fit"]["fits"] is (data["fit"]["ram_available_bytes"] > 46e9)


def test_info_sees_special_token_tags(isolated_home: Path, tmp_path: Path) -> None:
    fixture = write_reflection_token_gguf(embedded_model_path(), tmp_path / "tags.gguf")
    data = json.loads(run(isolated_home, "models", "info", str(fixture), "--json").stdout)
    assert set(data["special_tags"]) == set(REFLECTION_TAGS)


def test_info_on_a_bad_file_is_one_line(isolated_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_text("not a model")
    proc = run(isolated_home, "models", "info", str(bad))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "bad.gguf" in proc.stderr


def test_default_writes_the_config(isolated_home: Path) -> None:
    proc = run(isolated_home, "models", "default", "reflection-70b:q4_k_m")
    assert proc.returncode == 0
    assert "not downloaded" in proc.stderr  # allowed, with a note
    assert load_config().get("model") == "reflection-70b:q4_k_m"
    assert run(isolated_home, "models", "default", "nope/x").returncode == 2


def test_list_endpoint_models(isolated_home: Path) -> None:
    with fake_openai() as fake:
        fake.models = ["m-two", "m-one"]
        proc = run(isolated_home, "models", "list", "--endpoint", fake.url)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["m-one", "m-two"]
