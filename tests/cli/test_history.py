"""`ask` joins the history; `reflectchat history …`; crashes and Ctrl+C never lose messages."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from reflectchat.core.chat.store import DB_FILENAME
from tests.conftest import cli, run_env
from tests.support.gguf_fixtures import embedded_model_path


def run(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=run_env(REFLECTCHAT_HOME=str(home)),
    )


def db(home: Path) -> Path:
    return home / "data" / DB_FILENAME


def rows(home: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db(home)) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    embedded_model_path()
    return tmp_path / "home"


def test_ask_saves_and_continue_goes_on(home: Path) -> None:
    fast = ("--max-tokens", "24", "--seed", "1", "--json")
    first = json.loads(run(home, "ask", "What is the capital of France?", *fast).stdout)
    cid = first["conversation_id"]
    assert isinstance(cid, int)
    second = json.loads(run(home, "ask", "-c", "And of Italy?", *fast).stdout)
    assert second["conversation_id"] == cid
    assert second["stats"]["prompt_tokens"] > first["stats"]["prompt_tokens"]
    other = json.loads(run(home, "ask", "A new topic", *fast).stdout)
    assert other["conversation_id"] != cid
    third = json.loads(run(home, "ask", "--conversation", str(cid), "And Spain?", *fast).stdout)
    assert third["conversation_id"] == cid
    nosave = run(home, "ask", "--no-save", "Ephemeral question", *fast)
    assert json.loads(nosave.stdout)["conversation_id"] is None

    listing = run(home, "history", "list")
    assert listing.returncode == 0
    lines = listing.stdout.strip().splitlines()
    assert lines[0].split("\t") == ["id", "title", "model", "updated", "turns"]
    by_id = {int(line.split("\t")[0]): line.split("\t") for line in lines[1:]}
    assert by_id[cid][1] == "What is the capital of France?"
    assert by_id[cid][2] == "smollm2"
    assert by_id[cid][4] == "3"
    assert len(by_id) == 2  # --no-save left no trace
    assert "Ephemeral" not in run(home, "history", "search", "ephemeral").stdout

    hits = run(home, "history", "search", "ITALY")
    assert hits.returncode == 0 and str(cid) in hits.stdout

    md = run(home, "history", "export", str(cid), "--format", "md").stdout
    assert md.startswith("# What is the capital of France?")
    assert "<details><summary>Thinking</summary>" in md
    assert md.count("## You") == 3
    data = json.loads(run(home, "history", "export", str(cid), "--format", "json").stdout)
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"] * 3
    assert data["messages"][1]["sections"][0]["kind"] == "thinking"
    assert data["system_prompt"].startswith("You are a world-class AI system")

    shown = run(home, "history", "show", str(cid))
    assert shown.returncode == 0 and "And of Italy?" in shown.stdout

    assert run(home, "history", "rm", str(cid)).returncode == 0
    gone = run(home, "history", "show", str(cid))
    assert gone.returncode == 2 and "no conversation" in gone.stderr
    assert len(gone.stderr.strip().splitlines()) == 1


def test_unknown_conversation_and_nothing_to_continue(home: Path) -> None:
    r = run(home, "ask", "-c", "hello", "--max-tokens", "2")
    assert r.returncode == 2 and "no conversation to continue" in r.stderr
    r = run(home, "ask", "--conversation", "999", "hello", "--max-tokens", "2")
    assert r.returncode == 2 and "999" in r.stderr
    assert "Traceback" not in r.stderr


def test_corrupt_database_is_left_untouched(home: Path) -> None:
    path = db(home)
    path.parent.mkdir(parents=True)
    garbage = b"this is not a database at all\n" * 100
    path.write_bytes(garbage)
    r = run(home, "ask", "hello", "--max-tokens", "2")
    assert r.returncode == 1
    assert str(path) in r.stderr and "--no-save" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert path.read_bytes() == garbage
    assert run(home, "ask", "hello", "--max-tokens", "2", "--no-save").returncode == 0
    r = run(home, "history", "list")
    assert r.returncode == 1 and str(path) in r.stderr
    assert path.read_bytes() == garbage


def _spawn(home: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        cli(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=run_env(REFLECTCHAT_HOME=str(home)),
    )


def _wait_for_user_message(home: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db(home).exists():
            try:
                if rows(home, f"SELECT 1 FROM messages WHERE content = '{text}'"):
                    return
            except sqlite3.OperationalError:
                pass
        time.sleep(0.05)
    raise AssertionError("the user's message was never committed")


def test_kill_9_mid_generation_loses_only_the_reply_in_flight(home: Path) -> None:
    r = run(home, "ask", "First question", "--max-tokens", "16", "--seed", "1")
    assert r.returncode == 0
    proc = _spawn(home, "ask", "-c", "Second question", "--max-tokens", "900", "--seed", "2")
    _wait_for_user_message(home, "Second question")
    time.sleep(1.0)  # well into generation
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert rows(home, "PRAGMA integrity_check") == [("ok",)]
    got = rows(home, "SELECT role, content FROM messages ORDER BY conversation_id, seq")
    assert [role for role, _ in got] == ["user", "assistant", "user"]
    assert got[0][1] == "First question" and got[2][1] == "Second question"
    # and the history is still usable
    again = run(home, "ask", "-c", "Third question", "--max-tokens", "8", "--json")
    assert again.returncode == 0, again.stderr


def test_ctrl_c_keeps_the_partial_reply_marked_cancelled(home: Path) -> None:
    proc = _spawn(home, "ask", "Tell me a story", "--max-tokens", "900", "--seed", "3", "--json")
    _wait_for_user_message(home, "Tell me a story")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    data = json.loads(out)
    assert data["finish_reason"] == "cancelled"
    stored = rows(home, "SELECT role, content, finish_reason FROM messages ORDER BY seq")
    assert [r[0] for r in stored] == ["user", "assistant"]
    assert stored[1][2] == "cancelled"
    assert stored[1][1] and stored[1][1].startswith("<thinking>")
    assert data["thinking"] and data["stats"]["completion_tokens"] > 0
    assert "Traceback" not in err
