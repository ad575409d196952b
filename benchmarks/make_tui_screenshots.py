"""Save the chat app's README pictures (SVG) into assets/, from a scripted Reflection reply.

- assets/chat-thinking.svg: the thinking panel open, a reflection highlighted inside it
- assets/chat-answer.svg:   the same reply with the thinking folded and the answer below

The reply is scripted (no model needed) so the pictures are the same on every machine; its
stats are fixed too. Usage: python benchmarks/make_tui_screenshots.py [--out assets]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reflectchat.core.chat.store import Store  # noqa: E402
from reflectchat.tui.app import ChatApp  # noqa: E402
from reflectchat.tui.loading import ChatOptions  # noqa: E402
from tests.support.tui import (  # noqa: E402
    STRAWBERRY_PROMPT,
    STRAWBERRY_REPLY,
    scripted,
    wait_for_reply,
)

THINKING_SIZE = (110, 50)
ANSWER_SIZE = (110, 32)


def lived_in_store(folder: Path) -> Store:
    """A history with a couple of earlier conversations, so the sidebar is not empty."""
    store = Store(folder / "history.sqlite3")
    for title in ("Is 9.11 bigger than 9.9?", "Alice's brothers and sisters"):
        cid = store.create_conversation(title=title, model="reflection-70b", system_prompt=None)
        store.add_message(cid, "user", title)
        store.add_message(cid, "assistant", "<output>…</output>", answer="…")
    return store


async def shoot(out: Path, home: Path) -> None:
    # 1. Thinking open (kept open), with the reflections highlighted inside it.
    backend = scripted(STRAWBERRY_REPLY, name="reflection-70b")
    with lived_in_store(home / "one") as store:
        options = ChatOptions(keep_thinking_open=True)
        app = ChatApp(backend=backend, options=options, store=store)
        async with app.run_test(size=THINKING_SIZE) as pilot:
            app.prompt_input.cursor_blink = False
            await pilot.pause()
            app.prompt_input.load_text(STRAWBERRY_PROMPT)
            await pilot.press("enter")
            await wait_for_reply(app, pilot)
            app.save_screenshot(filename="chat-thinking.svg", path=str(out))

    # 2. The default: thinking folded once the answer starts.
    backend = scripted(STRAWBERRY_REPLY, name="reflection-70b")
    with lived_in_store(home / "two") as store:
        app = ChatApp(backend=backend, store=store)
        async with app.run_test(size=ANSWER_SIZE) as pilot:
            app.prompt_input.cursor_blink = False
            await pilot.pause()
            app.prompt_input.load_text(STRAWBERRY_PROMPT)
            await pilot.press("enter")
            await wait_for_reply(app, pilot)
            app.save_screenshot(filename="chat-answer.svg", path=str(out))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=REPO / "assets")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as home:
        os.environ["REFLECTCHAT_HOME"] = home  # nothing touches the real history
        asyncio.run(shoot(args.out, Path(home)))
    for name in ("chat-thinking.svg", "chat-answer.svg"):
        print(args.out / name)


if __name__ == "__main__":
    main()
