"""Regenerate every picture in the README (assets/*.svg), each from something real:

- assets/ask-demo.svg: a real `reflectchat ask` run on the embedded demo model (SmolLM2-135M),
  on this machine; the picture's first line names the model, the CPU and the threads, and its
  footer has the speed really measured. The demo model's answer is nonsense, and shown as such.
- assets/chat-thinking.svg, assets/chat-answer.svg: the chat app replaying a real Reflection
  70B reply (tests/data/replays/, see its README) token by token. Nothing is measured in a
  replay, so no token count or speed is shown, and the chat says it is a replay.

tests/test_screenshots.py runs the replay part and checks its inputs, so the pictures cannot
drift into fiction. Usage: python benchmarks/make_screenshots.py [--out assets] [--replays-only]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reflectchat.core.chat.store import Store  # noqa: E402
from reflectchat.core.engine.base import (  # noqa: E402
    CancelToken,
    Finished,
    GenerationParams,
    GenerationStats,
    Message,
    StreamEvent,
)
from reflectchat.testing.scripted_backend import ScriptedBackend  # noqa: E402
from reflectchat.tui.app import ChatApp  # noqa: E402
from reflectchat.tui.loading import ChatOptions  # noqa: E402
from reflectchat.tui.replies import ReplyDone  # noqa: E402
from tests.support.tui import chunked, wait_for_reply  # noqa: E402

REPLAYS = REPO / "tests" / "data" / "replays"


@dataclass(frozen=True)
class Replay:
    file: str  # under tests/data/replays/
    prompt: str
    model: str  # shown as the model's name: says what it was and that this is a replay
    note: str  # shown in the chat above the exchange

    @property
    def text(self) -> str:
        return (REPLAYS / self.file).read_text(encoding="utf-8")


REFLECTION_HELLO = Replay(
    file="reflection70b-ollama6689.txt",
    prompt="hello",
    model="Reflection-70B Q4_0 (replay)",
    note=(
        "Replay of a real Reflection-Llama-3.1-70B reply (Q4_0 via Ollama, ollama/ollama issue"
        " #6689, as quoted in reflectchat's reference notes, elisions kept). No model ran here:"
        " nothing was measured, so no speed is shown."
    ),
)

THINKING_SIZE = (110, 30)
ANSWER_SIZE = (110, 21)


class ReplayBackend(ScriptedBackend):
    """Streams a real reply's text in token-like chunks and reports no statistics: a replay
    measures nothing, so it must show no token counts and no speed."""

    def stream(
        self, messages: list[Message], params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[StreamEvent]:
        for event in super().stream(messages, params, cancel):
            yield (
                Finished(event.reason, GenerationStats()) if isinstance(event, Finished) else event
            )


class ReplayApp(ChatApp):
    """The chat app, but a replay's reply counts nothing: the chunks it streams are the
    replay's, not a model's tokens, so no thinking or token count is shown either."""

    async def on_reply_done(self, message: ReplyDone) -> None:
        if message.result is not None:
            message.result.stats = GenerationStats()
        await super().on_reply_done(message)


async def _shoot(replay: Replay, out: Path, home: Path, *, keep_open: bool, name: str) -> None:
    backend = ReplayBackend([chunked(replay.text)], name=replay.model)
    with Store(home / f"{name}.sqlite3") as store:
        app = ReplayApp(
            backend=backend,
            options=ChatOptions(model=replay.model, keep_thinking_open=keep_open),
            store=store,
        )
        size = THINKING_SIZE if keep_open else ANSWER_SIZE
        async with app.run_test(size=size) as pilot:
            app.prompt_input.cursor_blink = False
            await pilot.pause()
            app.mount_note(replay.note, classes="replay-note")
            app.prompt_input.load_text(replay.prompt)
            await pilot.press("enter")
            await wait_for_reply(app, pilot)
            app.last_rate = None  # the live figure of a replay is the replay's, not a model's
            app.show_usage()
            await pilot.pause()
            app.save_screenshot(filename=name, path=str(out))


def replay_pictures(out: Path) -> list[Path]:
    """The chat app's pictures, from the replay (no model needed; deterministic)."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as home:
        old = os.environ.get("REFLECTCHAT_HOME")
        os.environ["REFLECTCHAT_HOME"] = home  # nothing touches the real history
        try:
            asyncio.run(
                _shoot(REFLECTION_HELLO, out, Path(home), keep_open=True, name="chat-thinking.svg")
            )
            asyncio.run(
                _shoot(REFLECTION_HELLO, out, Path(home), keep_open=False, name="chat-answer.svg")
            )
        finally:
            if old is None:
                os.environ.pop("REFLECTCHAT_HOME", None)
            else:
                os.environ["REFLECTCHAT_HOME"] = old
    return [out / "chat-thinking.svg", out / "chat-answer.svg"]


ASK_PROMPT = "Is 9.11 bigger than 9.9?"


ASK_SEED = 12  # a seed whose reply fits on one screen; the demo model's answers are nonsense


def real_ask_picture(out: Path, *, seed: int = ASK_SEED) -> Path:
    """`reflectchat ask` on the embedded demo model, really run here, as a terminal shows it."""
    from rich.console import Console
    from rich.text import Text

    from reflectchat.cli.render import footer, render_parsed
    from reflectchat.core.chat.setup import SessionOptions, generation_params, system_prompt
    from reflectchat.core.engine.llama import LlamaBackend, LoadOptions, default_threads
    from reflectchat.core.host.machine import cpu_name
    from reflectchat.core.models.resolve import resolve_model
    from reflectchat.core.reply.stream import ReplyStream

    model = resolve_model("smollm2")
    backend = LlamaBackend(model, LoadOptions())
    options = SessionOptions(seed=seed)  # what `ask` does with no flags, seed fixed
    messages = [Message("user", ASK_PROMPT)]
    if (system := system_prompt(options, model.entry)) is not None:
        messages.insert(0, Message("system", system))
    result = ReplyStream(backend, messages, generation_params(options, model.entry)).run()
    threads = default_threads()  # what LoadOptions() above used
    console = Console(record=True, width=90, force_terminal=True, highlight=False, markup=False)
    console.print(
        Text(
            f"# a real run: the demo model (SmolLM2-135M-Instruct Q4_1) on {cpu_name()}"
            + f", {threads} threads",
            style="dim",
        )
    )
    console.print(Text(f'$ reflectchat ask --seed {seed} "{ASK_PROMPT}"', style="bold"))
    # The finished screen, rendered whole: a recording console would keep every intermediate
    # frame of the live answer region, which a real terminal overwrites.
    render_parsed(console, result.parsed, show_reasoning=True)
    console.print(footer(result))
    path = out / "ask-demo.svg"
    console.save_svg(str(path), title="reflectchat ask")
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=REPO / "assets")
    parser.add_argument("--replays-only", action="store_true", help="skip the real model run")
    args = parser.parse_args()
    made = replay_pictures(args.out)
    if not args.replays_only:
        made.append(real_ask_picture(args.out))
    for path in made:
        print(path)


if __name__ == "__main__":
    main()
