"""Rendering and the reply stream above the engine, driven by the scripted backend."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import pytest
from rich.console import Console

from reflectchat.cli.plain import write_plain
from reflectchat.cli.render import TerminalRenderer, render_parsed
from reflectchat.core.engine.base import CancelToken, GenerationParams, Message
from reflectchat.core.reply.stream import ReplyStream, result_from_text
from reflectchat.testing.scripted_backend import ScriptedBackend
from tests.conftest import cli, run_env

REPLY = (
    "<thinking>\nCount the r's in [bold]strawberry[/bold].\n"
    "<reflection>\nI missed one: there are three [/INST].\n</reflection>\n"
    "So three.\n</thinking>\n\n<output>\nThere are **3** r's.\n\n"
    "```python\nprint('strawberry'.count('r'))\n```\n</output>"
)
HOSTILE = (
    "<thinking>\x1b]52;c;cHduZWQ=\x07steal \x1b[2J\x9b31m[red]x[/red]</thinking>"
    "<output>\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\ [bold]lit[/bold] \x1b]0;title\x07ok\r\x08"
    "</output>"
)
MESSAGES = [Message("user", "How many r's in strawberry?")]


def render(reply: str, chunk: int | None = None, *, show: bool = True, color: bool = False) -> str:
    chunks = (
        [reply] if chunk is None else [reply[i : i + chunk] for i in range(0, len(reply), chunk)]
    )
    backend = ScriptedBackend([chunks])
    out = io.StringIO()
    console = Console(
        file=out,
        width=80,
        force_terminal=color,
        color_system="truecolor" if color else None,
        highlight=False,
        markup=False,
    )
    renderer = TerminalRenderer(console, show_reasoning=show)
    stream = ReplyStream(backend, MESSAGES, GenerationParams())
    for event in stream:
        renderer.handle(event)
    renderer.finish(stream.result)
    return out.getvalue()


def test_reasoning_and_reflection_shown_apart() -> None:
    text = render(REPLY)
    assert "Thinking" in text
    assert "Reflection — the model corrects itself" in text
    assert "I missed one: there are three [/INST]." in text
    assert "[bold]strawberry[/bold]" in text  # markup-like text stays literal
    assert "Answer" in text
    assert "There are 3 r's." in text  # Markdown rendered: ** consumed
    assert "print('strawberry'.count('r'))" in text
    assert "<thinking>" not in text and "<output>" not in text
    # the order on screen follows the reply
    assert text.index("Count the r's") < text.index("I missed one") < text.index("So three")
    assert text.index("So three") < text.index("There are 3")


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
def test_any_chunking_renders_the_same_screen(chunk: int) -> None:
    def body(screen: str) -> str:  # everything but the footer, whose stats differ
        return screen.rsplit("\n", 2)[0]

    assert body(render(REPLY, chunk)) == body(render(REPLY))


def test_hidden_reasoning_shows_only_the_answer() -> None:
    text = render(REPLY, 5, show=False)
    assert "Count the r's" not in text
    assert "I missed one" not in text
    assert "There are 3 r's." in text


@pytest.mark.parametrize("color", [False, True])
def test_escape_sequences_never_reach_the_terminal(color: bool) -> None:
    text = render(HOSTILE, 3, color=color)
    # The model's sequences and their payloads are gone; with colour on, Rich's own styling
    # and Live redraws (ESC[…m, ESC[2K, \r) are the only control sequences left.
    for bad in ("]52;", "cHduZWQ", "]8;;", "evil", "]0;", "title", "[2J", "\x9b", "\x07", "\x08"):
        assert bad not in text
    if not color:
        assert "\x1b" not in text and "\r" not in text
        assert "[red]x[/red]" in text
        assert "[bold]lit[/bold]" in text


def test_incomplete_thinking_is_marked() -> None:
    text = render("<thinking>still going and going", 4)
    assert "thinking incomplete" in text
    assert "no answer" in text


def test_untagged_reply_is_just_an_answer() -> None:
    text = render("Plain answer with a < b and <div>.", 2)
    assert "Thinking" not in text
    assert "Plain answer with a < b and <div>." in text


def test_footer_reports_tokens_and_reason() -> None:
    text = render(REPLY, 10)
    assert "scripted" in text
    assert "tokens" in text
    assert "stop" in text


def test_reply_stream_result_and_cancel() -> None:
    cancel = CancelToken()
    backend = ScriptedBackend([list(REPLY)])
    stream = ReplyStream(backend, MESSAGES, GenerationParams(), cancel)
    for seen, _ in enumerate(stream, 1):
        if seen == 20:
            cancel.cancel()
    result = stream.result
    assert result is not None
    assert result.finish_reason == "cancelled"
    assert 0 < len(result.raw_text) < len(REPLY)
    assert REPLY.startswith(result.raw_text)


def test_reply_stream_honours_template_prefill() -> None:
    backend = ScriptedBackend([["Let me see", "…</think>", "\n\nSix."]], prefill="<think>")
    result = ReplyStream(backend, MESSAGES, GenerationParams()).run()
    assert result.parsed.thinking == "Let me see…"
    assert result.parsed.answer == "Six."
    assert result.to_dict()["sections"] == [
        {"kind": "thinking", "text": "Let me see…"},
        {"kind": "text", "text": "Six."},
    ]


def test_max_tokens_gives_length() -> None:
    backend = ScriptedBackend([list("abcdefgh")])
    result = ReplyStream(backend, MESSAGES, GenerationParams(max_tokens=3)).run()
    assert result.finish_reason == "length"
    assert result.raw_text == "abc"


def test_render_parsed_and_plain_output() -> None:
    parsed = result_from_text(REPLY).parsed
    out = io.StringIO()
    render_parsed(Console(file=out, width=80, markup=False), parsed, show_reasoning=True)
    shown = out.getvalue()
    assert "I missed one" in shown and "There are 3 r's." in shown
    plain = io.StringIO()
    write_plain(plain, parsed, show_reasoning=False)
    assert (
        plain.getvalue()
        == "There are **3** r's.\n\n```python\nprint('strawberry'.count('r'))\n```\n"
    )
    plain = io.StringIO()
    write_plain(plain, result_from_text(HOSTILE).parsed, show_reasoning=True)
    assert "\x1b" not in plain.getvalue() and "\x9b" not in plain.getvalue()


# -- issue 13: deep nesting, long blocks --------------------------------------------------------

DEEP_LIST = "".join("  " * i + f"- level{i}\n" for i in range(12)) + "\nafter the list\n"
DEEP_QUOTE = (
    "".join("> " * (i + 1) + f"quote{i}\n" + "> " * (i + 1) + "\n" for i in range(30))
    + "\nafter the quotes\n"
)


def words_in_order(screen: str, words: list[str]) -> bool:
    """Every word on screen, in this order (markers and box characters in between)."""
    found = re.findall(r"\b(?:level|quote)\d+\b|after the (?:list|quotes)", screen)
    return found == words


@pytest.mark.parametrize(
    ("markdown", "words"),
    [
        (DEEP_LIST, [f"level{i}" for i in range(12)] + ["after the list"]),
        (DEEP_QUOTE, [f"quote{i}" for i in range(30)] + ["after the quotes"]),
    ],
    ids=["12-level list", "30-level quote"],
)
def test_deep_nesting_shows_every_word(markdown: str, words: list[str]) -> None:
    # markdown-it stopped at 20 levels and dropped the rest of the block; Rich narrowed each
    # level until the text had no width left. Past a depth the markers stay as text.
    out = io.StringIO()
    console = Console(file=out, width=60, highlight=False, markup=False)
    render_parsed(console, result_from_text(markdown, "m").parsed, show_reasoning=True)
    assert words_in_order(out.getvalue(), words), out.getvalue()  # `view`
    for chunk in (None, 3):  # `ask`, whole and streamed
        assert words_in_order(render(markdown, chunk), words)


def run_ask_on_pty(tokens: list[str], tmp_path: Path, rows: int = 30) -> tuple[int, str]:
    """`reflectchat ask` on a real terminal, replaying `tokens`; its exit status and what it
    wrote, escape sequences removed."""
    reply = tmp_path / "reply.json"
    reply.write_text(json.dumps(tokens))
    env = run_env(
        TERM="xterm-256color", COLUMNS="100", LINES=str(rows), REFLECTCHAT_SCRIPTED_REPLY=str(reply)
    )
    pid, fd = pty.fork()
    if pid == 0:  # the child: reflectchat on a real terminal
        args = cli("ask", "write it", "--no-save", "--max-tokens", str(len(tokens) + 10))
        os.execvpe(args[0], args, env)
    screen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                data = os.read(fd, 1 << 16)
            except OSError:
                break
            if not data:
                break
            screen += data
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r", "", screen.decode("utf-8"))
    return os.waitstatus_to_exitcode(status), text


def contains_run(found: list[int], n: int) -> bool:
    """0, 1, …, n-1 one after the other: the finished block printed whole, in order (the
    live redraws before it only ever show a screenful)."""
    return any(found[i : i + n] == list(range(n)) for i, v in enumerate(found) if v == 0)


def test_ask_on_a_terminal_shows_a_long_code_block_and_paragraph_whole(tmp_path: Path) -> None:
    tokens = ["Here it is:\n\n", "```python\n"]
    for i in range(300):
        tokens += [f"value_{i}", " = ", f"{i}", "  # line\n"]
    tokens += ["```\n\n"]
    tokens += [f"w{i} " for i in range(1500)]  # one long paragraph, still being written at the end
    code, text = run_ask_on_pty(tokens, tmp_path)
    assert code == 0, text
    assert "Traceback" not in text
    assert "Here it is:" in text
    lines = [int(m) for m in re.findall(r"\bvalue_(\d+) = \1\b", text)]
    assert contains_run(lines, 300), text[-3000:]
    words = [int(m) for m in re.findall(r"\bw(\d+)\b", text)]
    assert contains_run(words, 1500), text[-3000:]
    assert text.rindex("value_299") < text.rindex("w1499")
    assert f"{len(tokens)} tokens" in text  # the footer: every token was rendered


def test_a_bad_scripted_reply_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = subprocess.run(
        cli("ask", "hi", "--no-save"),
        env=run_env(REFLECTCHAT_SCRIPTED_REPLY=str(bad)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "REFLECTCHAT_SCRIPTED_REPLY" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("markdown", "words"),
    [
        (DEEP_LIST, [f"level{i}" for i in range(12)] + ["after the list"]),
        (DEEP_QUOTE, [f"quote{i}" for i in range(30)] + ["after the quotes"]),
    ],
    ids=["12-level list", "30-level quote"],
)
def test_chat_app_markdown_shows_deep_nesting(markdown: str, words: list[str]) -> None:
    import asyncio

    from textual.app import App, ComposeResult

    from reflectchat.tui.streamed import StreamedText

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield StreamedText()

    async def screen() -> str:
        app = One()
        async with app.run_test(size=(70, 200)) as pilot:
            streamed = app.query_one(StreamedText)
            for i in range(0, len(markdown), 5):  # streamed as the chat app streams a reply
                streamed.write(markdown[i : i + 5])
            await streamed.settle()
            await pilot.pause()
            svg = app.export_screenshot()
        return re.sub(r"<[^>]+>", "", svg).replace("&#160;", " ")

    assert words_in_order(asyncio.run(screen()), words)


# -- other formats (issue 10) -------------------------------------------------------------------

HARMONY_TOOL_CALL = (
    "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>"
    'commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}<|call|>'
    "<|start|>assistant<|channel|>final<|message|>It is sunny.<|return|>"
)


@pytest.mark.parametrize("chunk", [None, 1, 5])
def test_tool_calls_are_a_labelled_block_never_the_answer(chunk: int | None) -> None:
    screen = render(HARMONY_TOOL_CALL, chunk)
    assert "⚙ Tool call → functions.get_weather" in screen
    assert '{"city":"Paris"}' in screen
    assert "It is sunny." in screen
    assert "<|" not in screen and "|>" not in screen
    assert screen.index("Tool call") < screen.index("It is sunny.")


def test_view_of_a_stored_tool_call_and_budget_note() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, markup=False, highlight=False)
    seed = (
        "<seed:think>Eggs.<seed:cot_budget_reflect>Used 129 tokens."
        "</seed:cot_budget_reflect>18.</seed:think>**Answer:** 18"
    )
    render_parsed(console, result_from_text(seed, fmt="seed-oss").parsed, show_reasoning=True)
    render_parsed(
        console, result_from_text(HARMONY_TOOL_CALL).parsed, show_reasoning=False
    )  # hidden reasoning still names the tool call, folded to its label
    screen = out.getvalue()
    assert "Budget note" in screen and "Used 129 tokens." in screen
    assert "Answer: 18" in screen
    assert "⚙ Tool call → functions.get_weather" in screen
    assert '{"city"' not in screen.split("Tool call")[-1]
    assert "seed:" not in screen
