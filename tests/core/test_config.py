"""The config file and REFLECTCHAT_* variables: precedence, and errors that name key and line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from reflectchat.core.config import ConfigError, config_path, load_config, set_value
from tests.conftest import cli, run_env
from tests.support.gguf_fixtures import embedded_model_path


def write(text: str) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_config_lives_under_reflectchat_home(isolated_home: Path) -> None:
    assert config_path() == isolated_home / "config" / "config.toml"


def test_values_and_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    write('model = "smollm2"\ncontext = 4096\ngpu_layers = "all"\ntemperature = 0.2\n')
    config = load_config()
    assert config.get("model") == "smollm2"
    assert config.get("context", 1024) == 1024  # a flag beats the file
    assert config.get("context") == 4096
    assert config.get("gpu_layers") == "all"
    monkeypatch.setenv("REFLECTCHAT_CONTEXT", "512")
    assert load_config().get("context", 1024) == 512  # the environment beats both
    assert load_config().get("top_p", None, 0.95) == 0.95


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('model = "x"\ngpu_layer = 3\n', ["line 2", "'gpu_layer' is not a setting"]),
        ('context = "big"\n', ["line 1", "'context' must be a whole number"]),
        ("temperature = 9\n", ["'temperature' must be a number from 0 to 5"]),
        ('reasoning = "maybe"\n', ['"show" or "hide"']),
        ("model = \ncontext = 1\n", ["not valid TOML", "line 1"]),
    ],
)
def test_errors_name_the_key_and_line(text: str, words: list[str]) -> None:
    path = write(text)
    with pytest.raises(ConfigError) as err:
        load_config()
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    for word in words:
        assert word in message


def test_bad_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFLECTCHAT_GPU_LAYERS", "lots")
    with pytest.raises(ConfigError, match="REFLECTCHAT_GPU_LAYERS"):
        load_config()


def test_set_value_keeps_the_rest(tmp_path: Path) -> None:
    path = write('# mine\ncontext = 4096\nmodel = "a"\n')
    set_value("model", "reflection-70b:q4_k_m")
    text = path.read_text()
    assert text.splitlines() == ["# mine", "context = 4096", 'model = "reflection-70b:q4_k_m"']
    set_value("theme", "nord")
    assert load_config().get("theme") == "nord"


def test_ask_follows_file_flag_and_environment(isolated_home: Path) -> None:
    embedded_model_path()
    write("max_tokens = 5\n")

    def tokens(*args: str, **env: str) -> int:
        proc = subprocess.run(
            cli("ask", "hi", "--json", "--no-save", *args),
            capture_output=True,
            text=True,
            env=run_env(REFLECTCHAT_HOME=str(isolated_home), **env),
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["stats"]["completion_tokens"]

    assert tokens() == 5
    assert tokens("--max-tokens", "7") == 7
    assert tokens("--max-tokens", "7", REFLECTCHAT_MAX_TOKENS="3") == 3


def test_ask_with_a_broken_config_is_a_usage_error(isolated_home: Path) -> None:
    path = write("max_tokenz = 5\n")
    proc = subprocess.run(
        cli("ask", "hi"),
        capture_output=True,
        text=True,
        env=run_env(REFLECTCHAT_HOME=str(isolated_home)),
        timeout=60,
    )
    assert proc.returncode == 2
    assert f"{path} line 1: 'max_tokenz' is not a setting" in proc.stderr


def test_config_command(isolated_home: Path) -> None:
    env = run_env(REFLECTCHAT_HOME=str(isolated_home), REFLECTCHAT_THEME="nord", EDITOR="true")
    out = subprocess.run(cli("config", "path"), capture_output=True, text=True, env=env)
    assert out.stdout.strip() == str(config_path())
    edit = subprocess.run(cli("config", "edit"), capture_output=True, text=True, env=env)
    assert edit.returncode == 0 and config_path().is_file()
    load_config()  # the template it created is valid
    write("context = 2048\n")
    show = subprocess.run(cli("config", "show"), capture_output=True, text=True, env=env)
    assert "context = 2048  # from the file" in show.stdout
    assert "theme = 'nord'  # from REFLECTCHAT_THEME" in show.stdout


# -- the limits: the same table for the file, the variables and the flags -----------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("threads = 5000000\n", "'threads' must be a whole number from 1 to 512"),
        ("threads = 0\n", "'threads' must be a whole number from 1 to 512"),
        (f"context = {2**24 + 1}\n", "'context' must be a whole number from 1 to 16777216"),
        ("max_tokens = 100000000000000000000\n", "'max_tokens' must be a whole number"),
        ("gpu_layers = 100000\n", "'gpu_layers' must be a number of layers from 0 to 9999"),
        ("top_p = 1.5\n", "'top_p' must be a number from 0 to 1"),
        ("temperature = inf\n", "'temperature' must be a number from 0 to 5"),
    ],
)
def test_out_of_range_values_in_the_file(text: str, words: str) -> None:
    write(text)
    with pytest.raises(ConfigError) as err:
        load_config()
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REFLECTCHAT_THREADS", "5000000"),
        ("REFLECTCHAT_CONTEXT", "100000000000000000000"),
        ("REFLECTCHAT_MAX_TOKENS", "-3"),
        ("REFLECTCHAT_GPU_LAYERS", "5000000"),
        ("REFLECTCHAT_TOP_P", "nan"),
    ],
)
def test_out_of_range_environment_values(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"{name} must be a"):
        load_config()


@pytest.mark.parametrize(
    ("key", "flag"),
    [("context", "--ctx"), ("threads", "--threads"), ("max_tokens", "--max-tokens")],
)
def test_flags_and_settings_share_one_table(
    monkeypatch: pytest.MonkeyPatch, key: str, flag: str
) -> None:
    from reflectchat.cli.main import build_parser
    from reflectchat.core.config import LIMITS

    low, high = LIMITS[key]
    parser = build_parser()
    name = f"REFLECTCHAT_{key.upper()}"
    for good in (low, high):
        monkeypatch.setenv(name, str(good))
        assert load_config().get(key) == good
        args = parser.parse_args(["ask", "hi", flag, str(good)])
        assert getattr(args, flag.lstrip("-").replace("-", "_")) == good
    for bad in (low - 1, high + 1):
        monkeypatch.setenv(name, str(bad))
        with pytest.raises(ConfigError):
            load_config()
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(["ask", "hi", flag, str(bad)])
        assert exit_.value.code == 2


def test_ask_rejects_an_out_of_range_variable(isolated_home: Path) -> None:
    proc = subprocess.run(
        cli("ask", "hi"),
        capture_output=True,
        text=True,
        env=run_env(REFLECTCHAT_HOME=str(isolated_home), REFLECTCHAT_THREADS="5000000"),
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "reflectchat: error: REFLECTCHAT_THREADS must be a whole number from 1 to 512, "
        "not '5000000'"
    )
