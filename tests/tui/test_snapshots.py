"""Snapshots of the chat app's main states (pytest-textual-snapshot).

Replies are scripted with fixed stats (FrozenStatsBackend), the cursor does not blink and each
test gets an empty history (REFLECTCHAT_HOME is a temp folder), so the pictures are the same
on every run. After a deliberate change: pytest tests/test_tui_snapshots.py --snapshot-update,
then look at the SVGs in tests/__snapshots__/ before committing them.
"""

from __future__ import annotations

from typing import Any

import pytest

# The plugin behind the snap_compare fixture: a test dependency, so a missing one is an error.
import pytest_textual_snapshot  # type: ignore[import-untyped]  # noqa: F401  (no py.typed)

from reflectchat.core.chat.store import Store
from reflectchat.tui import demo_note
from reflectchat.tui.app import ChatApp
from reflectchat.tui.loading import ChatOptions
from tests.support.tui import (
    INCOMPLETE_REPLY,
    MARKUP_PROMPT,
    MARKUP_REPLY,
    STRAWBERRY_PROMPT,
    STRAWBERRY_REPLY,
    scripted,
    wait_for_reply,
)

SIZE = (100, 40)
SMALL = (80, 24)  # a common default terminal: the sidebar starts hidden, nothing is cut


@pytest.fixture(autouse=True)
def _fixed_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo note says whether the real model fits this machine: a fixed one here."""
    monkeypatch.setattr(demo_note, "MACHINE", lambda: (24 * 10**9, []))


def _app(reply: str = STRAWBERRY_REPLY, **options: Any) -> ChatApp:
    backend = scripted(reply, name=options.pop("name", "reflection-70b"))
    return ChatApp(backend=backend, store=Store(), options=ChatOptions(**options))


def _asking(prompt: str) -> Any:
    async def run_before(pilot: Any) -> None:
        app = pilot.app
        app.prompt_input.cursor_blink = False
        await pilot.pause()
        app.prompt_input.load_text(prompt)
        await pilot.press("enter")
        await wait_for_reply(app, pilot)

    return run_before


async def _still(pilot: Any) -> None:
    pilot.app.prompt_input.cursor_blink = False
    await pilot.pause()


def test_first_run_with_the_demo_model(snap_compare: Any) -> None:
    app = _app(model="smollm2", name="smollm2")
    assert snap_compare(app, terminal_size=SIZE, run_before=_still)


def test_thinking_open_with_two_reflections(snap_compare: Any) -> None:
    app = _app(keep_thinking_open=True)
    assert snap_compare(app, terminal_size=(100, 50), run_before=_asking(STRAWBERRY_PROMPT))


def test_thinking_folded_with_the_answer(snap_compare: Any) -> None:
    app = _app()
    assert snap_compare(app, terminal_size=SIZE, run_before=_asking(STRAWBERRY_PROMPT))


def test_markup_and_escape_sequences_shown_as_text(snap_compare: Any) -> None:
    app = _app(MARKUP_REPLY, keep_thinking_open=True, name="m[bold]odel[/INST]")
    assert snap_compare(app, terminal_size=SIZE, run_before=_asking(MARKUP_PROMPT))


def test_incomplete_thinking(snap_compare: Any) -> None:
    app = _app(INCOMPLETE_REPLY)
    assert snap_compare(app, terminal_size=SIZE, run_before=_asking("Think it through"))


def test_help_screen(snap_compare: Any) -> None:
    assert snap_compare(_app(), terminal_size=SIZE, run_before=_still, press=["f1"])


def test_first_run_at_80x24(snap_compare: Any) -> None:
    app = _app(model="smollm2", name="smollm2")
    assert snap_compare(app, terminal_size=SMALL, run_before=_still)


def test_a_reply_at_80x24(snap_compare: Any) -> None:
    app = _app()
    assert snap_compare(app, terminal_size=SMALL, run_before=_asking(STRAWBERRY_PROMPT))


def test_sidebar_shown_at_80x24(snap_compare: Any) -> None:
    app = _app()
    assert snap_compare(app, terminal_size=SMALL, run_before=_still, press=["ctrl+b"])
