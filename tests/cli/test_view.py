"""`reflectchat view` on what people paste (raw replies in every format, JSON responses, SSE
streams) and `reflectchat formats`, run in-process through cli.main.main."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from reflectchat.cli.main import main
from reflectchat.core.reply.format_catalog import BY_NAME, FORMATS
from reflectchat.core.reply.formats import COMMON_TURN_ENDS
from tests.conftest import cli, run_env
from tests.support.paths import REPO, SAMPLES

WIRE = REPO / "tests" / "data" / "wire"


def view(
    capsys: pytest.CaptureFixture[str],
    *args: str,
    stdin: str | None = None,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> tuple[int, str, str]:
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(["view", *args])
    out, err = capsys.readouterr()
    return code, out, err


def view_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    code, out, err = view(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


# One reply per format, modelled on the real samples: (format, text, --format or None,
# expected thinking, expected answer, expected tool calls).
REPLIES = [
    (
        "reflection",
        "<thinking>Count the r's: two.<reflection>Recount: s-t-r-a-w-b-e-r-r-y has three."
        "</reflection>So three.</thinking>\n<output>There are 3 r's.</output><|eot_id|>",
        None,
        "Count the r's: two.So three.",
        "There are 3 r's.",
        [],
    ),
    (
        "think",
        "Okay, 2+2 is 4.\n</think>\n\nIt is **4**.<|im_end|><|im_start|>user\nthanks",
        None,
        "Okay, 2+2 is 4.",
        "It is **4**.",
        [],
    ),
    (
        "think",
        "<think>Describe.</think><answer>Two cats on a blanket.",  # GLM, <answer> unclosed
        None,
        "Describe.",
        "Two cats on a blanket.",
        [],
    ),
    ("marco-o1", "<Thought>Compare.</Thought>\n<Output>9.9</Output>", None, "Compare.", "9.9", []),
    (
        "exaone",
        "<thought>Add them.</thought>\n\n5[|endofturn|]",
        "exaone",
        "Add them.",
        "5",
        [],
    ),
    (
        "harmony",
        "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>"
        'commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}<|call|>'
        "<|start|>assistant<|channel|>final<|message|>Sunny in Paris.<|return|>",
        None,
        "Need weather.",
        "Sunny in Paris.",
        ['{"city":"Paris"}'],
    ),
    (
        "harmony-stripped",
        'analysisWe need to answer "2+2" in one word.assistantfinalfour',
        None,
        'We need to answer "2+2" in one word.',
        "four",
        [],
    ),
    (
        "magistral",
        "[THINK]Alternate colours.[/THINK]Red, then blue.</s>[INST]next",
        None,
        "Alternate colours.",
        "Red, then blue.",
        [],
    ),
    (
        "kimi",
        "◁think▷Two tabby cats.◁/think▷Two cats sleep on a couch.<|im_assistant|>assistant",
        None,
        "Two tabby cats.",
        "Two cats sleep on a couch.",
        [],
    ),
    (
        "seed-oss",
        "<seed:think>16-3-4=9 eggs.<seed:cot_budget_reflect>I have used 20 tokens, 492 left."
        "</seed:cot_budget_reflect>9*2=18.</seed:think>She makes $18.<seed:eos>",
        None,
        "16-3-4=9 eggs.9*2=18.",
        "She makes $18.",
        [],
    ),
    (
        "gemma4",
        "<|channel>thought\nA red brick church.<channel|>Akeman Street Baptist Church.<turn|>",
        None,
        "A red brick church.",
        "Akeman Street Baptist Church.",
        [],
    ),
    (
        "apriel",
        "Two cats, pink couch.\n[BEGIN FINAL RESPONSE]\nTwo cats sleep on a pink couch.\n"
        "[END FINAL RESPONSE]\n<|end|>",
        None,
        "Two cats, pink couch.",
        "Two cats sleep on a pink couch.",
        [],
    ),
    (
        "command-a",
        "<|START_THINKING|>Count r: 3.<|END_THINKING|><|START_RESPONSE|>Three.<|END_RESPONSE|>",
        None,
        "Count r: 3.",
        "Three.",
        [],
    ),
]


def marker_texts(name: str) -> list[str]:
    fmt = BY_NAME[name]
    words = {"analysis"}  # harmony-stripped's plain words may be prose
    return [m.text for m in fmt.markers if m.text not in words] + list(COMMON_TURN_ENDS)


@pytest.mark.parametrize(
    ("name", "text", "override", "thinking", "answer", "tools"),
    REPLIES,
    ids=[f"{r[0]}-{i}" for i, r in enumerate(REPLIES)],
)
def test_raw_reply_in_every_format(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    name: str,
    text: str,
    override: str | None,
    thinking: str,
    answer: str,
    tools: list[str],
) -> None:
    path = tmp_path / "reply.txt"
    path.write_text(text, encoding="utf-8")
    data = view_json(capsys, str(path), *(["--format", override] if override else []))
    # marco-o1 has no marker of its own: `auto` reads its tags
    assert data["format"] == (name if name != "marco-o1" else "auto")
    assert data["input"]["kind"] == "raw"
    assert data["thinking"] == thinking
    assert data["answer"] == answer
    assert data["tool_calls"] == tools
    assert {s["kind"] for s in data["sections"]} <= {
        "thinking",
        "reflection",
        "output",
        "text",
        "tool_call",
        "note",
    }
    for marker in marker_texts(name):
        assert marker.lower() not in data["answer"].lower(), marker


def test_json_response_reasoning_is_not_reparsed(capsys: pytest.CaptureFixture[str]) -> None:
    data = view_json(capsys, str(WIRE / "vllm_qwen3_response.json"))
    assert data["format"] == "think"
    assert data["model"] == "Qwen/Qwen3-8B"
    assert data["finish_reason"] == "stop"
    assert data["input"] == {
        "kind": "json",
        "format_reason": "model name 'Qwen/Qwen3-8B' matches <think>",
        "skipped_lines": 0,
    }
    assert "</think>" in data["thinking"] and "<output>" in data["thinking"]
    assert data["answer"].startswith("Reasoning models wrap")
    assert [s["kind"] for s in data["sections"]] == ["thinking", "text"]


def test_json_response_with_harmony_in_content(capsys: pytest.CaptureFixture[str]) -> None:
    data = view_json(capsys, str(WIRE / "llama_server_gptoss_response.json"))
    assert data["format"] == "harmony"
    assert data["answer"] == "2 + 2 = **4**."
    assert "<|" not in data["answer"]


def test_json_response_tool_call(capsys: pytest.CaptureFixture[str]) -> None:
    data = view_json(capsys, str(WIRE / "openrouter_tool_call_response.json"))
    assert data["tool_calls"] == ['{"city": "Paris"}']
    assert data["sections"][-1] == {
        "kind": "tool_call",
        "text": '{"city": "Paris"}',
        "label": "get_weather",
    }
    assert data["answer"] == ""


def test_sse_stream_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (WIRE / "vllm_r1_stream.sse").read_text(encoding="utf-8")
    code, out, err = view(capsys, "--json", stdin=text, monkeypatch=monkeypatch)
    assert code == 0, err
    data = json.loads(out)
    assert data["input"]["kind"] == "sse"
    assert data["format"] == "think"
    assert data["thinking"].endswith("A closing </think> tag here is just text.")
    assert data["answer"] == "No: 9.9 is bigger than 9.11."
    # piped, not --json: only the answer on stdout
    code, out, err = view(capsys, stdin=text, monkeypatch=monkeypatch)
    assert (code, out, err) == (0, "No: 9.9 is bigger than 9.11.\n", "")


def test_real_sse_captures(capsys: pytest.CaptureFixture[str]) -> None:
    cut = next(WIRE.glob("35_*.txt"))
    data = view_json(capsys, str(cut))
    assert data["input"]["skipped_lines"] == 1
    assert data["thinking"] == 'need to use the tool{"query":"how to'
    assert data["answer"] == "" and data["thinking_incomplete"] is True
    # shown piped, with the reasoning: the notes go to stderr, one line each
    code, out, err = view(capsys, str(cut), "--reasoning", "show")
    assert code == 0
    assert "need to use the tool" in out
    assert err == "reflectchat: note: skipped 1 line of the stream that held no event\n"
    length = next(WIRE.glob("36_*.txt"))
    data = view_json(capsys, str(length))
    assert data["finish_reason"] == "length" and data["model"] == "openai/gpt-oss-120b"
    code, out, err = view(capsys, str(length))
    assert "finish_reason: length" in err and err.count("\n") == 1


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared/reference/samples is not here")
def test_every_shared_format_sample_views_without_markers_in_the_answer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    samples = sorted((SAMPLES / "formats").glob("*.txt"))
    assert len(samples) >= 21
    for sample in samples:
        data = view_json(capsys, str(sample))
        for fmt in FORMATS:
            for marker in fmt.markers:
                if marker.action != "open" or marker.at_start or marker.text == "assistantfinal":
                    continue
                assert marker.text not in data["answer"], (sample.name, marker.text)


def test_chunk_list_and_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    data = view_json(capsys, str(WIRE / "magistral_chunks.json"))
    assert (data["format"], data["answer"]) == ("magistral", "Alternate red and blue petals.")
    data = view_json(capsys, str(WIRE / "ollama_chat_stream.jsonl"))
    assert data["input"]["kind"] == "jsonl"
    assert (data["thinking"], data["answer"]) == ("Two plus two is four.", "2 + 2 = 4")


def test_format_override_and_unknown_format(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "reply.txt"
    path.write_text("[THINK]a[/THINK]b", encoding="utf-8")
    data = view_json(capsys, str(path), "--format", "think")
    assert data["format"] == "think" and data["input"]["format_reason"] == "--format"
    assert data["answer"] == "[THINK]a[/THINK]b"  # not this format's markers: text
    code, out, err = view(capsys, str(path), "--format", "nope")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "unknown reasoning format 'nope'" in err
    assert "Traceback" not in err


def test_server_error_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "error.json"
    path.write_text(
        json.dumps({"error": {"message": "bad\x1b]52;c;Zm9v\x07 key\nsecond", "code": 401}}),
        encoding="utf-8",
    )
    code, out, err = view(capsys, str(path))
    assert code == 1 and out == ""
    assert err == "reflectchat: error: the pasted response is the server's error: bad key second\n"


def test_json_output_escapes_and_plain_output_strips_controls(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = {
        "model": "qwen3",
        "choices": [
            {"message": {"content": "ok \x1b[31mred\x1b[0m [bold]x[/bold]", "reasoning": "r"}}
        ],
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    code, out, _ = view(capsys, str(path))
    assert code == 0
    assert out == "ok red [bold]x[/bold]\n"


# -- reflectchat formats -------------------------------------------------------------------------


def test_formats_json_lists_every_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["formats", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = [f["name"] for f in data["formats"]]
    assert names == [f.name for f in FORMATS]
    harmony = data["formats"][names.index("harmony")]
    assert harmony["recognised_by"]["vocab_tokens"] == ["<|channel|>", "<|message|>", "<|return|>"]
    assert harmony["recognised_by"]["name_pattern"] == "gpt-?oss"
    assert "<|channel|>" in harmony["recognised_by"]["template_hints"]
    assert "<|return|>" in harmony["turn_markers"]
    stripped = data["formats"][names.index("harmony-stripped")]
    assert "assistantfinal" in stripped["recognised_by"]["text_shape"]
    auto = data["formats"][0]
    assert {"text": "[THINK]", "action": "switch", "kind": None, "target": "magistral"} in auto[
        "markers"
    ]


def test_formats_table_piped(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["formats"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["name", "models", "looks like", "recognised by"]
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[0] for r in rows] == [f.name for f in FORMATS]
    assert all(len(r) == 4 and all(r) for r in rows)
    seed = rows[[r[0] for r in rows].index("seed-oss")]
    assert "tokens <seed:think>" in seed[3] and "name matches /seed-?oss/" in seed[3]


def test_formats_on_a_terminal_needs_no_model_and_stays_light() -> None:
    code = (
        "import sys, json, runpy\n"
        "sys.argv = ['reflectchat', 'formats']\n"
        "try:\n    runpy.run_module('reflectchat', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=run_env(), check=True
    )
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "llama_cpp" not in loaded and "textual" not in loaded
    help_text = subprocess.run(cli("formats", "--help"), capture_output=True, text=True,
                               env=run_env(), check=True).stdout  # fmt: skip
    assert "--json" in help_text
