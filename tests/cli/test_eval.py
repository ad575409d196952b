"""`reflectchat eval` as users run it: the flags, the files, the table and JSON, on the
scripted backend (fast), on the real demo model, against llama-cpp-python's real server, and
Ctrl+C then --resume on a real pty. Runs are kept small (n of 2-3, short --max-tokens)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reflectchat.cli.eval_cmd import parse_conditions
from reflectchat.core.errors import UsageError
from tests.cli.test_signals import Terminal
from tests.conftest import cli, run_env
from tests.support.gguf_fixtures import embedded_model_path

FIELDS = {"name", "model", "suite", "n", "accuracy", "ci95", "mean_thinking_tokens",
          "mean_reflections", "changed_by_reflection", "unparsed", "mean_seconds"}  # fmt: skip


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Any:
    return subprocess.run(
        cli("eval", *args), capture_output=True, text=True, env=env or run_env(), timeout=timeout
    )


def scripted(tmp_path: Path, *tokens: str) -> dict[str, str]:
    """An environment whose eval answers every item with the same scripted reply."""
    script = tmp_path / "reply.json"
    script.write_text(json.dumps(list(tokens)), encoding="utf-8")
    return run_env(REFLECTCHAT_SCRIPTED_REPLY=str(script))


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def assert_one_line_error(proc: Any, code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("reflectchat: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in errors[0]


# -- conditions -------------------------------------------------------------------------------


def test_conditions_from_flags() -> None:
    assert [c.name for c in parse_conditions(None)] == ["reflect", "plain"]
    conditions = parse_conditions(
        ["plain", "cold=--temperature 0 --max-tokens 64", "terse=--system 'Be terse.' --seed -1",
         "plain-hot=--no-system --temperature=1.5 --strict-format"]
    )  # fmt: skip
    assert [c.name for c in conditions] == ["plain", "cold", "terse", "plain-hot"]
    assert conditions[1].settings == {"temperature": 0.0, "max_tokens": 64}
    assert conditions[2].settings == {"system": "Be terse.", "no_system": False, "seed": None}
    assert conditions[3].settings == {"no_system": True, "system": None, "temperature": 1.5,
                                      "strict_format": True}  # fmt: skip
    # a built-in name with flags starts from the built-in
    assert parse_conditions(["plain=--temperature 0"])[0].settings["no_system"] is True
    assert parse_conditions(["plain"])[0].settings["think"] is False  # thinking off too
    thinking = parse_conditions(["short=--think on --think-budget 64 --effort low"])[0]
    assert thinking.settings == {"think": True, "think_budget": 64, "effort": "low"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hot", "not a built-in (reflect, plain)"),
        ("=--temperature 1", "give NAME or NAME=FLAGS"),
        ("a b=--temperature 1", "give NAME or NAME=FLAGS"),
        ("x=--bogus", "unrecognized arguments: --bogus"),
        ("x=--temperature warm", "--temperature"),
        ("x=--ctx 512", "unrecognized arguments: --ctx"),  # loading is the run's, not a condition's
        ("x=--system 'unclosed", "No closing quotation"),
        ("x=--system A --no-system", "not allowed with argument"),
    ],
)
def test_bad_conditions(spec: str, message: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_conditions([spec])
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UsageError, match="given twice"):
        parse_conditions(["plain", "plain"])


# -- on the scripted backend: files, output, errors ------------------------------------------------


def test_json_out_file_and_table(tmp_path: Path, isolated_home: Path) -> None:
    env = scripted(tmp_path, "<thinking>1+1", "</thinking>", "<output>Answer: 4</output>")
    out = tmp_path / "run.jsonl"
    proc = run("--suite", "letters", "--suite", "aiw", "-n", "3", "--json", "--out", str(out),
               env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    rows = data["conditions"]
    assert [(r["name"], r["suite"]) for r in rows] == [
        ("reflect", "letters"), ("plain", "letters"), ("reflect", "aiw"), ("plain", "aiw"),
        ("reflect", "all"), ("plain", "all"),
    ]  # fmt: skip
    assert all(set(r) >= FIELDS for r in rows)
    assert all(r["n"] == 3 and r["unparsed"] == 0 for r in rows[:4])
    assert data["items_scored"] == 12 and data["interrupted"] is False
    overall = [c for c in data["comparisons"] if c["suite"] == "all"]
    assert [(c["condition"], c["versus_condition"]) for c in overall] == [("reflect", "plain")]
    assert overall[0]["difference"] == 0 and overall[0]["ci95"][0] < 0 < overall[0]["ci95"][1]
    records = lines(out)
    assert len(records) == 12
    first = records[0]
    for key in ("prompt", "raw", "answer", "extracted", "expected", "correct", "system_prompt"):
        assert key in first
    assert first["extracted"] == "4" and first["raw"].startswith("<thinking>")
    assert first["correct"] == (first["expected"] == "4")
    # the same run piped, without --json: a table (tab-separated in a pipe)
    table = run("--suite", "aiw", "-n", "2", env=env)
    assert table.returncode == 0, table.stderr
    header, *body = table.stdout.splitlines()
    assert header.split("\t")[:6] == ["model", "condition", "suite", "n", "acc", "95% CI"]
    assert [row.split("\t")[1] for row in body] == ["reflect", "plain"]
    # nothing went to the chat history
    history = subprocess.run(cli("history", "list", "--json"), capture_output=True, text=True,
                             env=env)  # fmt: skip
    assert json.loads(history.stdout)["conversations"] == []


def test_save_writes_each_item_to_the_history(tmp_path: Path) -> None:
    env = scripted(tmp_path, "Answer: 3")
    proc = run("--suite", "aiw", "-n", "2", "--condition", "plain", "--save", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    history = subprocess.run(cli("history", "list", "--json"), capture_output=True, text=True,
                             env=env)  # fmt: skip
    assert len(json.loads(history.stdout)["conversations"]) == 2


def test_user_items_and_custom_conditions(tmp_path: Path) -> None:
    items = tmp_path / "capitals.jsonl"
    items.write_text(
        '{"prompt": "Capital of France?", "answer": "Paris"}\n'
        '{"prompt": "2+2?", "answer": 4}\n'
        '{"prompt": "Red or blue?", "answer": "blue", "checker": "choice", '
        '"choices": ["red", "blue"]}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    env = scripted(tmp_path, "<output>Paris</output>")
    proc = run("--file", str(items), "--condition", "reflect", "--condition",
               "cold=--temperature 0 --no-system", "--json", "--out", str(out),
               env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["conditions"]
    assert [(r["name"], r["suite"], r["n"], r["accuracy"]) for r in rows] == [
        ("reflect", "capitals", 3, round(1 / 3, 4)), ("cold", "capitals", 3, round(1 / 3, 4)),
    ]  # fmt: skip
    cold = [r for r in lines(out) if r["condition"] == "cold"]
    assert all(r["params"]["temperature"] == 0.0 and r["system_prompt"] is None for r in cold)
    assert [r["extracted"] for r in cold] == ["paris", None, None]


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    env = scripted(tmp_path, "Answer: 1")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "answer": 1}\n{"prompt": "b"}\n', encoding="utf-8")
    good = tmp_path / "good.jsonl"
    good.write_text('{"prompt": "a", "answer": 1}\n', encoding="utf-8")
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("hello\n{}\n", encoding="utf-8")
    cases = [
        (("--suite", "trivia"), "unknown suite 'trivia'"),
        (("-n", "0"), "-n: must be a whole number from 1 to"),
        (("--condition", "hot"), "--condition hot: not a built-in"),
        (("--condition", "x=--bogus 1"), "--condition x"),
        (("--file", str(tmp_path / "none.jsonl")), "no such items file"),
        (("--file", str(bad)), f"{bad} line 2: 'answer' is missing"),
        (("--resume", str(tmp_path / "none.jsonl")), "no such file"),
        (("--resume", str(garbage)), "line 1 is not a record of `reflectchat eval --out`"),
        (("--temperature", "hot"), "--temperature"),
        (("--bogus",), "unrecognized arguments: --bogus"),
        (("-m", "smollm2", "-m", "smollm2"), "-m smollm2 is given twice"),
        (("--file", str(good), "--out", str(good)), "is an items file of this run"),
    ]
    for args, message in cases:
        assert_one_line_error(run(*args, env=env), 2, message)
    assert good.read_text(encoding="utf-8") == '{"prompt": "a", "answer": 1}\n'  # untouched


def test_resume_skips_what_was_scored_and_drops_a_cut_line(tmp_path: Path) -> None:
    env = scripted(tmp_path, "Answer: 3")
    out = tmp_path / "run.jsonl"
    assert run("--suite", "aiw", "-n", "3", "--out", str(out), env=env).returncode == 0
    whole = out.read_text(encoding="utf-8").splitlines()
    assert len(whole) == 6
    # as a kill -9 leaves it: two records and half of a third
    out.write_text("\n".join(whole[:2]) + "\n" + whole[2][:40], encoding="utf-8")
    proc = run("--suite", "aiw", "-n", "3", "--resume", str(out), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    records = lines(out)
    keys = [(r["condition"], r["id"]) for r in records]
    assert len(records) == 6 and len(set(keys)) == 6
    assert records[:2] == [json.loads(line) for line in whole[:2]]  # kept as they were
    rows = json.loads(proc.stdout)["conditions"]
    assert [r["n"] for r in rows] == [3, 3] and json.loads(proc.stdout)["items_scored"] == 6
    # a resumed run with nothing left only reports
    again = run("--suite", "aiw", "-n", "3", "--resume", str(out), "--json", env=env)
    assert again.returncode == 0 and len(lines(out)) == 6
    # a resume file from another run: said, and kept
    moved = run("--suite", "arith", "-n", "1", "--resume", str(out), "--json", env=env)
    assert moved.returncode == 0 and "none of the 6 items" in moved.stderr
    assert len(lines(out)) == 8
    out.write_text("\n".join(whole) + "\n", encoding="utf-8")
    # another model's records in the file are kept there, and left out of this run's table
    other_model = run("-m", "other", "--suite", "aiw", "-n", "3", "--resume", str(out), "--json",
                      env=env)  # fmt: skip
    assert other_model.returncode == 0, other_model.stderr
    assert {r["model"] for r in json.loads(other_model.stdout)["conditions"]} == {"other"}
    assert len(lines(out)) == 12
    out.write_text("\n".join(whole) + "\n", encoding="utf-8")
    # --resume into another --out: the new file is whole
    other = tmp_path / "other.jsonl"
    proc = run("--suite", "aiw", "-n", "4", "--resume", str(out), "--out", str(other), env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(lines(other)) == 8 and len(lines(out)) == 6


def test_model_output_never_reaches_the_terminal_raw(tmp_path: Path) -> None:
    env = scripted(tmp_path, "\x1b]52;c;ZXZpbA==\x07[bold]Answer: 3\x1b[2J")
    out = tmp_path / "run.jsonl"
    proc = run("--suite", "aiw", "-n", "1", "--out", str(out), env=env)
    assert proc.returncode == 0 and "\x1b" not in proc.stdout + proc.stderr
    assert lines(out)[0]["raw"].startswith("\x1b]52")  # the file keeps it, JSON-escaped
    assert "\x1b" not in out.read_text(encoding="utf-8")


def test_sigterm_stops_with_the_partial_table_and_143(tmp_path: Path) -> None:
    env = scripted(tmp_path, "Answer: 3")
    out = tmp_path / "run.jsonl"
    proc = subprocess.Popen(cli("eval", "--suite", "aiw", "-n", "100000", "--out", str(out)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (out.exists() and out.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr and f"continue with --resume {out}" in stderr
    header, *rows = stdout.splitlines()
    assert header.startswith("model\tcondition")
    assert rows[-1] == "(partial: the run was interrupted)"
    assert len(lines(out)) < 200_000


# -- the real demo model --------------------------------------------------------------------


def test_on_the_demo_model(tmp_path: Path, isolated_home: Path) -> None:
    model = embedded_model_path()
    out = tmp_path / "run.jsonl"
    proc = run("-m", "smollm2", "-m", str(model), "--suite", "decimals", "-n", "2",
               "--max-tokens", "48", "--json", "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["conditions"]
    assert [(r["model"], r["name"]) for r in rows] == [
        ("smollm2", "reflect"), ("smollm2", "plain"),
        (str(model), "reflect"), (str(model), "plain"),
    ]  # fmt: skip
    records = lines(out)
    assert len(records) == 8
    reflect = [r for r in records if r["condition"] == "reflect"]
    plain = [r for r in records if r["condition"] == "plain"]
    # reflect: the Reflection prompt and the format grammar, so the reply starts thinking
    assert all(r["params"]["strict_format"] and r["system_prompt"] for r in reflect)
    assert all(r["raw"].startswith("<thinking>") and r["thinking_tokens"] > 0 for r in reflect)
    assert all(not r["params"]["strict_format"] and r["system_prompt"] is None for r in plain)
    assert all(0 < r["completion_tokens"] <= 48 and r["seconds"] > 0 for r in records)
    # the same seed, the same replies: the two spellings of one model answer alike
    assert [r["raw"] for r in records[:4]] == [r["raw"] for r in records[4:]]
    assert not (isolated_home / "data").exists() or not list((isolated_home).rglob("*.sqlite3"))


# -- llama-cpp-python's real OpenAI-compatible server ---------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def real_server() -> Iterator[str]:
    model = embedded_model_path()
    port = _free_port()
    args = ["--model", str(model), "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
            "--model_alias", "smollm2-served"]  # fmt: skip
    # as tests/core/engine/test_remote.py runs it: reflectchat's own llama.cpp model params
    code = (
        "import runpy, sys\n"
        "from reflectchat.core.engine.llama_glue import extra_buffers_allowed, model_params\n"
        f"sys.argv = ['llama_cpp.server', *{args!r}]\n"
        "with model_params(None, extra_buffers=extra_buffers_allowed()):\n"
        "    runpy.run_module('llama_cpp.server', run_name='__main__')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=run_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("llama_cpp.server did not start")
                time.sleep(0.2)
        from reflectchat.core.engine.remote import Endpoint, RemoteBackend

        RemoteBackend(Endpoint(url)).list_models()  # it answers HTTP
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_against_the_real_server(real_server: str, tmp_path: Path) -> None:
    out = tmp_path / "run.jsonl"
    proc = run("--endpoint", real_server, "--suite", "aiw", "-n", "2", "--max-tokens", "32",
               "--json", "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["conditions"]
    assert [(r["model"], r["name"], r["n"]) for r in rows] == [
        ("smollm2-served", "reflect", 2), ("smollm2-served", "plain", 2),
    ]  # fmt: skip
    records = lines(out)
    assert all(r["raw"] and 0 < r["completion_tokens"] <= 32 for r in records)
    # a served model with no prompt of its own is asked to reflect under `reflect` only
    assert [bool(r["system_prompt"]) for r in records] == [True, True, False, False]
    # the server gone: one line, exit 1 or 2, and no traceback
    dead = run("--endpoint", f"http://127.0.0.1:{_free_port()}/v1", "--suite", "aiw", "-n", "1")
    assert dead.returncode != 0 and "Traceback" not in dead.stderr
    assert dead.stderr.strip().splitlines()[-1].startswith("reflectchat: error: ")


# -- Ctrl+C and --resume on a real terminal ---------------------------------------------------


def test_ctrl_c_prints_the_partial_table_and_resume_finishes(tmp_path: Path) -> None:
    embedded_model_path()
    out = tmp_path / "run.jsonl"
    args = ["--suite", "letters", "-n", "3", "--max-tokens", "40", "--out", str(out)]
    term = Terminal(cli("eval", *args))
    # the progress bar is drawn; once an item is scored, Ctrl+C as a user types it
    term.read_until(lambda _: out.exists() and out.stat().st_size > 0, "a first scored item")
    term.write("\x03")
    status = term.wait(timeout=120)
    text = term.output.decode("utf-8", "replace")
    assert status == 130, text
    assert "Traceback" not in text
    assert "eta" in text  # the progress bar was drawn
    assert "condition" in text and "95% CI" in text  # the partial table
    assert "partial" in text and f"--resume {out}" in text
    scored = lines(out)
    assert 1 <= len(scored) < 6
    term = Terminal(cli("eval", *args[:-2], "--resume", str(out)))
    status = term.wait(timeout=180)
    text = term.output.decode("utf-8", "replace")
    assert status == 0, text
    records = lines(out)
    assert records[: len(scored)] == scored  # what was scored before is not redone
    assert len({(r["condition"], r["id"]) for r in records}) == len(records) == 6
    assert "partial" not in text
    assert "reflect − plain on smollm2, letters: " in text  # the difference, with its interval
