"""Writing presets: built in and from the config file, added to the model's own system prompt
(the reflection instructions stay), their sampling between the flags and the defaults, and a
bad [presets.NAME] table refused in one line like any other setting."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from reflectchat.core.chat.presets import BUILTIN, all_presets, find_preset, with_preset
from reflectchat.core.chat.prompts import PROMPT_STYLES
from reflectchat.core.chat.setup import SessionOptions, entry_for, generation_params, system_prompt
from reflectchat.core.config import ConfigError, config_path, load_config
from reflectchat.core.errors import UsageError
from tests.conftest import cli, run_env


def write_config(text: str) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_five_built_in_presets() -> None:
    assert list(BUILTIN) == ["email", "essay", "summary", "proofread", "explain"]
    for preset in BUILTIN.values():
        assert preset.system.startswith("Task: ") and preset.description
        assert preset.temperature is not None and 0 <= preset.temperature <= 1


def test_a_preset_adds_to_the_reflection_prompt_and_never_replaces_it() -> None:
    entry = entry_for("reflection-70b")
    options = SessionOptions(preset=find_preset("summary"))
    prompt = system_prompt(options, entry)
    assert prompt == f"{PROMPT_STYLES['reflection']}\n\n{BUILTIN['summary'].system}"
    assert "<reflection>" in prompt  # the model still reasons in its format
    chosen = system_prompt(SessionOptions(system="Be brief.", preset=BUILTIN["email"]), entry)
    assert chosen == f"Be brief.\n\n{BUILTIN['email'].system}"
    alone = system_prompt(SessionOptions(no_system=True, preset=BUILTIN["email"]), entry)
    assert alone == BUILTIN["email"].system
    assert with_preset("base", None) == "base"
    assert SessionOptions(preset=BUILTIN["essay"]).explicit_system  # ask -c takes it


def test_sampling_flag_beats_preset_beats_model() -> None:
    entry = entry_for("reflection-70b")
    assert generation_params(SessionOptions(preset=BUILTIN["proofread"]), entry).temperature == 0.2
    flagged = SessionOptions(preset=BUILTIN["proofread"], temperature=1.1)
    assert generation_params(flagged, entry).temperature == 1.1
    assert generation_params(SessionOptions(), entry).temperature == 0.7


def test_config_presets_add_and_replace() -> None:
    write_config(
        '[presets.letter]\nsystem = "Task: write a cover letter."\ntemperature = 0.4\n'
        'description = "a cover letter"\n\n[presets.summary]\nsystem = "Task: one line."\n'
    )
    config = load_config()
    presets = all_presets(config.presets)
    assert presets["letter"].system == "Task: write a cover letter."
    assert presets["letter"].temperature == 0.4 and presets["letter"].source == "config"
    assert presets["summary"].system == "Task: one line." and presets["summary"].source == "config"
    assert find_preset("Letter", config.presets).name == "letter"
    with pytest.raises(UsageError) as err:
        find_preset("lettre", config.presets)
    assert "no preset 'lettre' (known: email, essay, summary, proofread, explain, letter)" in str(
        err.value
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[presets.x]\ntemperature = 0.5\n", ["line 1 [presets.x]", "'system' is required"]),
        ('[presets.x]\nsystem = ""\n', ["'system' must be a non-empty string"]),
        ('[presets.x]\nsystem = "s"\ntemperature = 9\n', ["'temperature' must be a number from 0"]),
        ('[presets.x]\nsystem = "s"\ntop_p = "high"\n', ["'top_p' must be a number from 0 to 1"]),
        ('[presets.x]\nsystem = "s"\nsytem = "t"\n', ["'sytem' is not a preset setting"]),
        ('[presets."a b"]\nsystem = "s"\n', ["a preset name is letters, digits"]),
        ('presets = "email"\n', ["must be tables like [presets.letter]"]),
        ('[presets]\nx = "s"\n', ["[presets.x]: must be a table with a system"]),
    ],
)
def test_bad_preset_tables_are_one_line_errors(text: str, words: list[str]) -> None:
    path = write_config(text)
    with pytest.raises(ConfigError) as err:
        load_config()
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    for word in words:
        assert word in message, message


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli(*args), capture_output=True, text=True, env=run_env(**env), timeout=120
    )


def test_presets_command_lists_built_in_and_config(isolated_home: Path) -> None:
    write_config('[presets.letter]\nsystem = "Task: write a cover letter."\n')
    listed = run("presets", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["presets"]
    assert [r["name"] for r in rows] == [*BUILTIN, "letter"]
    assert rows[-1]["source"] == "config" and rows[-1]["temperature"] is None
    table = run("presets")
    assert table.stdout.splitlines()[0].split("\t") == [
        "name",
        "from",
        "sampling",
        "what it asks for",
    ]
    assert "letter\tconfig\tthe model's\tTask: write a cover letter." in table.stdout


def test_ask_with_a_preset_and_with_a_bad_one(isolated_home: Path, tmp_path: Path) -> None:
    reply = tmp_path / "reply.json"
    reply.write_text('["<output>Dear Sam,</output>"]')
    scripted = {"REFLECTCHAT_SCRIPTED_REPLY": str(reply)}
    done = run("ask", "--preset", "proofread", "Their going home", "--json", **scripted)
    assert done.returncode == 0, done.stderr
    cid = json.loads(done.stdout)["conversation_id"]
    stored = json.loads(run("history", "export", str(cid), "--format", "json").stdout)
    assert stored["system_prompt"].endswith(BUILTIN["proofread"].system)
    assert stored["messages"][1]["params"]["temperature"] == 0.2  # the preset's
    bad = run("ask", "--preset", "nope", "hi", **scripted)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "no preset 'nope'" in bad.stderr
    write_config('[presets.x]\nsystem = "s"\ntemperature = 9\n')
    broken = run("ask", "hi", **scripted)
    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    assert "[presets.x]: 'temperature' must be a number from 0 to 5" in broken.stderr
