"""The chat app's everyday habits (issue 14): /attach, presets, the sidebar on small
terminals, the demo note. Scripted backend, driven with Textual's Pilot."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from reflectchat.core.chat.attachments import Attachment, with_attachments
from reflectchat.core.chat.presets import BUILTIN
from reflectchat.core.chat.prompts import PROMPT_STYLES
from reflectchat.core.chat.store import Store
from reflectchat.core.host.machine import GpuDevice
from reflectchat.tui import demo_note
from reflectchat.tui.app import ChatApp
from reflectchat.tui.attachments import AttachmentsBlock
from reflectchat.tui.loading import ChatOptions
from reflectchat.tui.messages import AssistantMessage, UserMessage
from reflectchat.tui.sidebar import Sidebar
from tests.support.tui import scripted, wait_for_reply

Body = Callable[[ChatApp, Any], Awaitable[None]]


def drive(app: ChatApp, body: Body, size: tuple[int, int] = (110, 40)) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            app.prompt_input.cursor_blink = False
            await pilot.pause()
            await body(app, pilot)

    asyncio.run(main())


async def type_and_send(app: ChatApp, pilot: Any, text: str) -> None:
    app.prompt_input.focus()
    app.prompt_input.load_text(text)
    await pilot.press("enter")
    await wait_for_reply(app, pilot)


def notices(app: ChatApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


def test_attach_sends_the_file_with_the_next_message_and_stores_it(tmp_path: Path) -> None:
    doc = tmp_path / "notes [draft].md"  # brackets: never markup
    doc.write_text("line one\nline two\n")
    backend = scripted("<output>ok</output>", name="reflection-70b")
    store = Store()
    app = ChatApp(backend=backend, store=store, options=ChatOptions(model="reflection-70b"))

    async def body(app: ChatApp, pilot: Any) -> None:
        await type_and_send(app, pilot, f"/attach {tmp_path / 'missing.txt'}")
        assert any("no such file" in n for n in notices(app))
        await type_and_send(app, pilot, f"/attach {doc}")
        assert any("Attached notes [draft].md (2 lines)" in n for n in notices(app))
        await type_and_send(app, pilot, "Summarize")
        sent = backend.calls[-1][-1].content
        assert sent == with_attachments("Summarize", (Attachment(str(doc), doc.read_text()),))
        block = app.chat.query_one(AttachmentsBlock)
        assert block.collapsed and "notes [draft].md" in str(block.title)
        await type_and_send(app, pilot, "And again")  # the attachment went with one message
        assert backend.calls[-1][-1].content == "And again"
        # Retry of the first exchange is not possible (it is not the last), of the last it is.
        assert app.conversation_id is not None
        stored = store.get_conversation(app.conversation_id).messages
        assert stored[0].attachments == (Attachment(str(doc), "line one\nline two\n"),)
        # Reopened, the attachment is shown folded under its message again.
        await app.conversations.new_chat()
        await app.conversations.open(stored[0].conversation_id)
        await pilot.pause()
        children = list(app.chat.children)
        assert isinstance(children[0], UserMessage) and isinstance(children[1], AttachmentsBlock)
        assert isinstance(children[2], AssistantMessage)

    drive(app, body)


def test_retrying_a_message_sends_its_attachment_again(tmp_path: Path) -> None:
    doc = tmp_path / "a.txt"
    doc.write_text("AAA")
    backend = scripted("<output>one</output>", "<output>two</output>")
    app = ChatApp(backend=backend, store=Store(), options=ChatOptions())

    async def body(app: ChatApp, pilot: Any) -> None:
        await type_and_send(app, pilot, f"/attach {doc}")
        await type_and_send(app, pilot, "Q")
        await app.action_regenerate()
        await wait_for_reply(app, pilot)
        assert backend.calls[1] == backend.calls[0] and "AAA" in backend.calls[1][-1].content
        children = list(app.chat.children)
        assert [type(c) for c in children] == [UserMessage, AttachmentsBlock, AssistantMessage]

    drive(app, body)


def test_attach_none_and_listing(tmp_path: Path) -> None:
    doc = tmp_path / "a.txt"
    doc.write_text("A")
    backend = scripted("<output>ok</output>")
    app = ChatApp(backend=backend, store=None, options=ChatOptions())

    async def body(app: ChatApp, pilot: Any) -> None:
        await type_and_send(app, pilot, f"/attach {doc}")
        await type_and_send(app, pilot, "/attach")
        assert notices(app)[-1].startswith("Attached a.txt (1 line)")
        await type_and_send(app, pilot, "/attach none")
        await type_and_send(app, pilot, "Q")
        assert backend.calls[-1][-1].content == "Q"
        assert not app.chat.query(AttachmentsBlock)

    drive(app, body)


def test_preset_from_options_and_slash_command() -> None:
    backend = scripted("<output>ok</output>", name="reflection-70b")
    options = ChatOptions(model="reflection-70b", preset=BUILTIN["summary"])
    app = ChatApp(backend=backend, store=Store(), options=options)

    async def body(app: ChatApp, pilot: Any) -> None:
        await type_and_send(app, pilot, "Q1")
        system = backend.calls[-1][0]
        assert system.content == f"{PROMPT_STYLES['reflection']}\n\n{BUILTIN['summary'].system}"
        assert app.params.temperature == 0.3
        await type_and_send(app, pilot, "/preset proofread")
        await type_and_send(app, pilot, "Q2")
        assert backend.calls[-1][0].content.endswith(BUILTIN["proofread"].system)
        assert PROMPT_STYLES["reflection"] in backend.calls[-1][0].content
        assert app.params.temperature == 0.2
        await type_and_send(app, pilot, "/preset nope")
        assert "no preset 'nope'" in notices(app)[-1]
        await type_and_send(app, pilot, "/preset none")
        await type_and_send(app, pilot, "Q3")
        assert backend.calls[-1][0].content == PROMPT_STYLES["reflection"]
        titles = [c.title for c in app.commands.system_commands()]
        assert "Preset: email" in titles and "Show or hide the sidebar" in titles

    drive(app, body)


@pytest.mark.parametrize(("width", "shown"), [(80, False), (99, False), (100, True), (140, True)])
def test_the_sidebar_starts_hidden_below_100_columns(width: int, shown: bool) -> None:
    app = ChatApp(backend=scripted("<output>ok</output>"), store=Store(), options=ChatOptions())

    async def body(app: ChatApp, pilot: Any) -> None:
        sidebar = app.query_one(Sidebar)
        assert sidebar.display is shown
        await pilot.press("ctrl+b")
        assert sidebar.display is not shown
        await type_and_send(app, pilot, "/sidebar")
        assert sidebar.display is shown
        # A choice the user made sticks when the terminal is resized.
        await pilot.press("ctrl+b")
        await pilot.resize_terminal(150 if not shown else 80, 24)
        await pilot.pause()
        assert sidebar.display is not shown

    drive(app, body, size=(width, 24))


def test_the_sidebar_follows_the_width_until_toggled() -> None:
    app = ChatApp(backend=scripted("<output>ok</output>"), store=Store(), options=ChatOptions())

    async def body(app: ChatApp, pilot: Any) -> None:
        sidebar = app.query_one(Sidebar)
        assert not sidebar.display
        await pilot.resize_terminal(120, 30)
        await pilot.pause()
        assert sidebar.display
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not sidebar.display

    drive(app, body, size=(80, 24))


def test_the_demo_note_points_to_models_pull_and_says_whether_it_fits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(demo_note, "MACHINE", lambda: (24 * 10**9, []))
    note = demo_note.demo_note()
    assert "reflectchat models pull reflection-70b" in note
    assert "huggingface-cli" not in note
    assert "Reflection-Llama-3.1-70B (Q4_K_M, 42.5 GB)" in note
    assert "needs about 45.5 GB at 8,192 tokens" in note
    assert "24.0 GB of RAM free: it won't fit here — reflection-8b:q4_k_s (4.7 GB) would." in note
    monkeypatch.setattr(demo_note, "MACHINE", lambda: (64 * 10**9, []))
    assert demo_note.fit_sentence().endswith("64.0 GB of RAM free: it fits here.")
    gpu = GpuDevice("H200", "CUDA", 141 * 10**9, 140 * 10**9)
    monkeypatch.setattr(demo_note, "MACHINE", lambda: (8 * 10**9, [gpu]))
    assert demo_note.fit_sentence().endswith("140.0 GB of GPU memory free: it fits here.")


def test_chat_prompt_and_attachments_are_the_first_message() -> None:
    """`reflectchat chat --prompt TEXT -a FILE` (launch sets these before the app runs)."""
    backend = scripted("<output>ok</output>")
    app = ChatApp(backend=backend, store=Store(), options=ChatOptions())
    app.initial_prompt = "Summarize"
    app.replies.attachments = [Attachment("stdin", "piped text\n")]

    async def body(app: ChatApp, pilot: Any) -> None:
        await wait_for_reply(app, pilot)
        assert backend.calls[0][-1].content == with_attachments(
            "Summarize", (Attachment("stdin", "piped text\n"),)
        )
        assert app.chat.query_one(AttachmentsBlock)
        assert app.replies.attachments == []

    drive(app, body)
