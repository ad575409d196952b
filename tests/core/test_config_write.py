"""`set_value`, the config file's one writer (`models default`, `config set`): TOML escaping,
validation of the new text before it replaces the old file, atomic replacement (issue 13)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reflectchat.core.config import ConfigError, config_path, load_config, set_value
from tests.conftest import REPO

ODD_VALUES = [
    r"C:\models\tiny.gguf",
    r"C:\new\table\u0041.gguf",  # looks like escapes to re.sub and to TOML alike
    'quote"d \\"model\\".gguf',
    "back\\\\slashes\\",
    "ünïcödé-模型.gguf",
    "\\1 \\g<0> &",  # re.sub group references
]


def write(text: str) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("value", ODD_VALUES)
def test_values_round_trip_exactly(value: str) -> None:
    set_value("model", value)  # a new key
    assert load_config().get("model") == value
    set_value("model", "x")
    set_value("model", value)  # replacing an existing line
    assert load_config().get("model") == value
    assert config_path().read_text().count("model =") == 1


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "tab\there", "esc\x1b[31m", "nul\0", "del\x7f"])
def test_control_characters_are_refused_and_the_file_kept(value: str) -> None:
    path = write('# mine\nmodel = "old"\n')
    before = path.read_bytes()
    with pytest.raises(ConfigError) as info:
        set_value("model", value)
    message = str(info.value)
    assert "control character" in message and "is unchanged" in message
    assert "\n" not in message and "\x1b" not in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.toml"]  # no temp left


def test_a_file_that_would_not_validate_is_not_replaced() -> None:
    path = write('model = "old"\nnot_a_setting = 1\n')
    before = path.read_bytes()
    with pytest.raises(ConfigError) as info:
        set_value("model", "new")
    assert "'not_a_setting' is not a setting" in str(info.value)
    assert str(path) in str(info.value) and ".tmp" not in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.toml"]


def test_a_key_in_an_endpoint_table_is_not_the_setting() -> None:
    path = write('# mine\n[endpoints.vllm]\nurl = "http://127.0.0.1:8000/v1"\nmodel = "served"\n')
    set_value("model", r"C:\m.gguf")
    config = load_config()
    assert config.get("model") == r"C:\m.gguf"
    assert config.endpoints["vllm"]["model"] == "served"
    assert path.read_text().startswith('# mine\nmodel = "C:\\\\m.gguf"\n\n[endpoints.vllm]')


def test_the_file_keeps_its_mode_and_its_link(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "reflectchat.toml"
    real.parent.mkdir()
    real.write_text('theme = "nord"\n')
    os.chmod(real, 0o640)
    link = write("")
    link.unlink()
    link.symlink_to(real)
    set_value("model", "reflection-70b:q4_k_m")
    assert link.is_symlink() and (real.stat().st_mode & 0o777) == 0o640
    assert load_config().get("model") == "reflection-70b:q4_k_m"
    assert load_config().get("theme") == "nord"


def models_default(spec: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "reflectchat", "models", "default", spec],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_models_default_with_a_windows_path_keeps_every_command_working() -> None:
    spec = r"C:\models\tiny.gguf"
    for _ in range(2):  # the second time replaces the line the first one wrote
        result = models_default(spec)
        assert result.returncode == 0, result.stderr
    assert load_config().get("model") == spec
    after = subprocess.run(
        [sys.executable, "-m", "reflectchat", "models", "default", "reflection-70b:q4_k_m"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert after.returncode == 0, after.stderr
    assert load_config().get("model") == "reflection-70b:q4_k_m"


def test_models_default_with_a_newline_is_a_usage_error() -> None:
    path = write('model = "old"\n')
    result = models_default("tiny\n.gguf")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "control character" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert path.read_text() == 'model = "old"\n'
