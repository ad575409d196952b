"""Thinking control on the real demo model (issue 11): `ask --think-budget` ends the thinking
near the budget and an answer follows; `--think off` answers without thinking; the JSON and the
history report how much thinking it cost."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import cli, run_env
from tests.support.gguf_fixtures import embedded_model_path

PROMPT = "Is 9.11 bigger than 9.9?"


def ask(home: Path, *flags: str) -> dict:
    embedded_model_path()
    out = subprocess.run(
        cli("ask", PROMPT, "--json", "--seed", "3", "--max-tokens", "300", *flags),
        capture_output=True,
        text=True,
        env=run_env(REFLECTCHAT_HOME=str(home)),
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_think_budget_ends_the_thinking_and_an_answer_follows(tmp_path: Path) -> None:
    data = ask(tmp_path, "--think-budget", "24")
    stats = data["stats"]
    assert data["thinking_cut"] == "budget"
    # 24 of the model's own, then the closing sequence the engine wrote (≈ 20 tokens)
    assert 24 <= stats["thinking_tokens"] <= 24 + 30, stats
    assert data["answer"] and stats["answer_tokens"] > 0
    assert [s["kind"] for s in data["sections"]][-1] == "output"
    assert data["format"] == "reflection"
    assert not data["thinking_incomplete"]
    shown = subprocess.run(
        cli("history", "show", "1"),
        capture_output=True,
        text=True,
        env=run_env(REFLECTCHAT_HOME=str(tmp_path)),
        timeout=60,
    )
    assert f"thinking {stats['thinking_tokens']:,} tokens" in shown.stdout  # history reports it


def test_think_off_answers_without_thinking(tmp_path: Path) -> None:
    data = ask(tmp_path, "--think", "off", "--no-save")
    assert data["answer"]
    assert "thinking" not in [s["kind"] for s in data["sections"]]
    assert data["stats"]["thinking_tokens"] == 0


def test_unlimited_thinking_is_counted(tmp_path: Path) -> None:
    data = ask(tmp_path, "--no-save")
    assert "thinking_cut" not in data
    assert data["stats"]["thinking_tokens"] > 24
