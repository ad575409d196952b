"""The chat app driven with Textual's Pilot: scripted replies (fast, deterministic), and one
run on the real embedded model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from reflectchat.core.chat.setup import SessionOptions
from reflectchat.core.chat.store import Store
from reflectchat.core.engine.base import ContextOverflowError, GenerationParams
from reflectchat.core.engine.kv_store import CacheIdentity, KVStore
from reflectchat.core.models.resolve import ModelNotFoundError
from reflectchat.core.reply.sections import SectionEvent
from reflectchat.testing.scripted_backend import ScriptedBackend
from reflectchat.tui.app import ChatApp
from reflectchat.tui.loading import ChatOptions
from reflectchat.tui.messages import AssistantMessage, ThinkingPanel, UserMessage, Welcome
from reflectchat.tui.screens import ConfirmScreen, HelpScreen, TextEntryScreen
from reflectchat.tui.slash import parse_slash, unescape_message
from reflectchat.tui.streamed import soften
from reflectchat.tui.streaming import EventBuffer, merge_text
from tests.support.gguf_fixtures import embedded_model_path
from tests.support.tui import (
    INCOMPLETE_REPLY,
    MARKUP_REPLY,
    STRAWBERRY_PROMPT,
    STRAWBERRY_REPLY,
    UNTAGGED_REPLY,
    chunked,
    scripted,
    wait_for_reply,
    wait_until,
)

SIZE = (110, 40)

Body = Callable[[ChatApp, Any], Awaitable[None]]


def drive(app: ChatApp, body: Body, size: tuple[int, int] = SIZE) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            app.prompt_input.cursor_blink = False
            await pilot.pause()
            await body(app, pilot)

    asyncio.run(main())


async def ask(app: ChatApp, pilot: Any, text: str, timeout: float = 30) -> AssistantMessage:
    """Type `text` in the prompt, press Enter, wait for the whole reply."""
    app.prompt_input.focus()
    app.prompt_input.load_text(text)
    await pilot.press("enter")
    await wait_for_reply(app, pilot, timeout)
    return app.chat.query(AssistantMessage).last()


def replies(app: ChatApp) -> list[AssistantMessage]:
    return list(app.chat.query(AssistantMessage))


# -- sending and streaming ----------------------------------------------------------------


def test_send_streams_thinking_reflections_and_answer_and_saves_it() -> None:
    store = Store()
    app = ChatApp(backend=scripted(STRAWBERRY_REPLY), store=store)

    async def body(app: ChatApp, pilot: Any) -> None:
        assert app.chat.query(Welcome)  # the empty chat offers examples
        reply = await ask(app, pilot, STRAWBERRY_PROMPT)
        assert not app.chat.query(Welcome)
        assert [m.prompt for m in app.chat.query(UserMessage)] == [STRAWBERRY_PROMPT]
        # the final count, however fast the reply ended (the live one may not have been drawn)
        assert reply.result is not None and reply.result.stats.thinking_tokens == 359
        assert reply.thinking_title == "Thinking · 359 tokens · 2 reflections"
        assert reply.reflections == 2
        assert reply.panel is not None and reply.panel.collapsed  # folded once answering
        assert "There are **3** r's" in reply.answer_source
        assert reply.result is not None and reply.result.finish_reason == "stop"
        footer = str(reply._footer.render())
        assert "tokens" in footer and "tok/s" in footer and "stop" in footer
        # the reflections sit inside the thinking, between thinking segments, in order
        kinds = [w.classes for w in reply.panel.query("StreamedText")]
        assert [("reflection" in c) for c in kinds] == [False, True, False, True, False]

    drive(app, body)
    [summary] = store.list_conversations()
    conversation = store.get_conversation(summary.id)
    assert [m.role for m in conversation.messages] == ["user", "assistant"]
    assert conversation.messages[1].finish_reason == "stop"
    assert "<reflection>" in conversation.messages[1].content


def test_streaming_is_incremental_and_follows_the_reply() -> None:
    backend = scripted(STRAWBERRY_REPLY, delay_s=0.004)
    seen: list[int] = []
    app = ChatApp(backend=backend, store=None, options=ChatOptions(keep_thinking_open=True))

    async def body(app: ChatApp, pilot: Any) -> None:
        app.prompt_input.load_text(STRAWBERRY_PROMPT)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.chat.query(ThinkingPanel))
        reply = replies(app)[-1]
        panel = reply.panel
        assert panel is not None and not panel.collapsed  # open while the model thinks
        assert str(panel.title).startswith("Thinking…")
        while app.generating:
            seen.append(len(reply.parts[0].text) if reply.parts else 0)
            await pilot.pause(0.02)
        assert reply.panel is not None and not reply.panel.collapsed  # setting: keep open
        assert app.chat.is_anchored and app.chat.scroll_y == app.chat.max_scroll_y

    drive(app, body)
    growth = [n for n in seen if n]
    assert len(set(growth)) > 3, "the thinking should have been drawn in several steps"


def test_untagged_incomplete_and_markup_replies() -> None:
    app = ChatApp(
        backend=scripted(UNTAGGED_REPLY, INCOMPLETE_REPLY, MARKUP_REPLY, name="m[bold]x"),
        store=None,
    )

    async def body(app: ChatApp, pilot: Any) -> None:
        plain = await ask(app, pilot, "Capital of France?")
        assert plain.panel is None and plain.answer_source == UNTAGGED_REPLY
        cut = await ask(app, pilot, "Think forever")
        assert cut.panel is not None and not cut.panel.collapsed
        assert "incomplete" in cut.thinking_title
        note = str(cut._note.render())
        assert "thinking incomplete" in note and "no answer" in note
        tricky = await ask(app, pilot, "[/INST] [bold]")
        # Shown as written, never interpreted; escape sequences gone.
        shown = tricky.answer_source
        assert "[/INST] [link=x]click[/link] [@click=app.quit]quit[/]" in shown
        assert "<div>html</div>" in shown
        assert "\x1b" not in shown and "pwned" not in shown
        thinking = "".join(p.text for p in tricky.parts[:-1])
        assert "[bold]tricky[/bold]" in thinking and "\x1b" not in thinking
        assert "aGFja2Vk" not in thinking  # the OSC 52 payload went with its sequence
        assert "m[bold]x" in str(tricky._footer.render())
        assert app.is_running  # nothing crashed

    drive(app, body)


def test_escape_stops_the_reply_and_keeps_the_partial_text() -> None:
    long_reply = STRAWBERRY_REPLY * 20
    store = Store()
    app = ChatApp(backend=scripted(long_reply, delay_s=0.002), store=store)

    async def body(app: ChatApp, pilot: Any) -> None:
        app.prompt_input.load_text("Go on and on")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.chat.query(ThinkingPanel))
        await pilot.pause(0.1)
        await pilot.press("escape")
        await wait_for_reply(app, pilot)
        reply = replies(app)[-1]
        assert reply.result is not None and reply.result.finish_reason == "cancelled"
        assert "Stopped" in str(reply._note.render())
        assert "cancelled" in str(reply._footer.render())
        assert reply.parts[0].text  # the partial thinking stays
        assert reply.result.stats.completion_tokens < len(chunked(long_reply))

    drive(app, body)
    [summary] = store.list_conversations()
    stored = store.get_conversation(summary.id).messages[-1]
    assert stored.finish_reason == "cancelled" and stored.content


def test_ctrl_c_stops_too_and_scrolling_up_stops_following() -> None:
    options = ChatOptions(keep_thinking_open=True)
    backend = scripted(STRAWBERRY_REPLY * 20, delay_s=0.002)
    app = ChatApp(backend=backend, store=None, options=options)

    async def body(app: ChatApp, pilot: Any) -> None:
        app.prompt_input.load_text("Go on")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.chat.max_scroll_y > 5)
        app.chat.scroll_home(animate=False)  # the user scrolls up to read
        await pilot.pause(0.2)
        assert app.chat.scroll_y == 0 < app.chat.max_scroll_y  # not dragged back down
        await pilot.press("ctrl+c")
        await wait_for_reply(app, pilot)
        assert replies(app)[-1].result.finish_reason == "cancelled"  # type: ignore[union-attr]
        assert app.is_running  # Ctrl+C stopped the reply, not the app

    drive(app, body)


def test_ctrl_d_in_an_empty_prompt_quits() -> None:
    app = ChatApp(backend=scripted("x"), store=None)

    async def body(app: ChatApp, pilot: Any) -> None:
        await pilot.press("a", "ctrl+d")  # not empty: Ctrl+D edits
        await pilot.pause()
        assert app.is_running
        app.prompt_input.load_text("")
        await pilot.press("ctrl+d")
        await pilot.pause()
        assert not app.is_running

    drive(app, body)


def test_ctrl_t_toggles_all_thinking_panels() -> None:
    app = ChatApp(backend=scripted(STRAWBERRY_REPLY), store=None)

    async def body(app: ChatApp, pilot: Any) -> None:
        await ask(app, pilot, "one")
        await ask(app, pilot, "two")
        panels = list(app.chat.query(ThinkingPanel))
        assert len(panels) == 2 and all(p.collapsed for p in panels)
        await pilot.press("ctrl+t")
        assert not any(p.collapsed for p in panels)
        await pilot.press("ctrl+t")
        assert all(p.collapsed for p in panels)
        app.prompt_input.load_text("/thinking")  # the same, for terminals that eat Ctrl+T
        await pilot.press("enter")
        await pilot.pause()
        assert not any(p.collapsed for p in panels)

    drive(app, body)


def test_ctrl_r_regenerates_the_last_reply() -> None:
    backend = scripted("<output>first</output>", "<output>second</output>")
    store = Store()
    app = ChatApp(backend=backend, store=store)

    async def body(app: ChatApp, pilot: Any) -> None:
        await ask(app, pilot, "Say something")
        assert replies(app)[-1].answer_source.strip() == "first"
        await pilot.press("ctrl+r")
        await wait_for_reply(app, pilot)
        assert [r.answer_source.strip() for r in replies(app)] == ["second"]
        assert len(app.chat.query(UserMessage)) == 1
        # The model saw the prompt again without the answer it replaces.
        assert [m.role for m in backend.calls[1]] == ["user"]
        assert backend.calls[1][-1].content == "Say something"
        assert [t.role for t in app.session.history] == ["user", "assistant"]

    drive(app, body)
    # the stored conversation holds the prompt once and only the reply that replaced the first
    [summary] = store.list_conversations()
    stored = store.get_conversation(summary.id).messages
    assert [(m.role, m.answer) for m in stored] == [("user", None), ("assistant", "second")]


def test_copy_last_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    copied: list[str] = []
    monkeypatch.setattr(ChatApp, "copy_to_clipboard", lambda self, text: copied.append(text))
    app = ChatApp(backend=scripted(STRAWBERRY_REPLY), store=None)

    async def body(app: ChatApp, pilot: Any) -> None:
        await pilot.press("ctrl+o")  # nothing yet: a notice, no crash
        await ask(app, pilot, STRAWBERRY_PROMPT)
        await pilot.press("ctrl+o")

    drive(app, body)
    assert len(copied) == 1 and copied[0].startswith('There are **3** r\'s in "strawberry"')
    assert "<thinking>" not in copied[0]


def test_prompt_keys_newline_and_history() -> None:
    backend = scripted("<output>ok</output>")
    app = ChatApp(backend=backend, store=None)

    async def body(app: ChatApp, pilot: Any) -> None:
        prompt = app.prompt_input
        await pilot.press("h", "i", "ctrl+j", "t", "h", "e", "r", "e")
        assert prompt.text == "hi\nthere"
        await pilot.press("enter")
        await wait_for_reply(app, pilot)
        assert backend.calls[0][-1].content == "hi\nthere"
        assert prompt.text == ""
        await pilot.press("up")  # an empty prompt recalls the last one
        assert prompt.text == "hi\nthere"
        await pilot.press("down")
        assert prompt.text == ""

    drive(app, body)


# -- conversations ------------------------------------------------------------------------


def _seed(store: Store) -> tuple[int, int]:
    first = store.create_conversation(title="Tea history", model="m", system_prompt=None)
    store.add_message(first, "user", "Tell me about tea")
    store.add_message(
        first,
        "assistant",
        "<thinking>hmm<reflection>oops</reflection></thinking><output>Tea is old.</output>",
        answer="Tea is old.",
        finish_reason="stop",
        stats={"completion_tokens": 12, "tokens_per_second": 3.5, "total_s": 4.0},
    )
    second = store.create_conversation(title="Coffee", model="m", system_prompt=None)
    store.add_message(second, "user", "And coffee?")
    store.add_message(second, "assistant", "Coffee is younger.", finish_reason="stop")
    return first, second


def test_switch_and_delete_conversations() -> None:
    store = Store()
    first, second = _seed(store)
    kv = KVStore()
    for conversation in (first, second):  # as if an `ask` had saved their KV caches
        kv.save(conversation, CacheIdentity("/m.gguf", 1, 1, 1024, "0"), [1, 2], b"state")
    backend = scripted("<output>More tea facts.</output>")
    app = ChatApp(backend=backend, store=store)

    async def body(app: ChatApp, pilot: Any) -> None:
        listing = app.query_one("#conversations")
        assert listing.option_count == 2
        # Newest first: Coffee, then Tea history. Open Tea history.
        listing.focus()
        listing.highlighted = 1
        await pilot.press("enter")
        await pilot.pause()
        assert app.conversation_id == first
        [stored] = replies(app)
        assert stored.answer_source == "Tea is old." and stored.reflections == 1
        assert "12 tokens" in str(stored._footer.render())
        # Continue it: the model gets the stored history (answers only).
        reply = await ask(app, pilot, "More?")
        assert reply.answer_source.strip() == "More tea facts."
        assert [m.content for m in backend.calls[0][-3:]] == [
            "Tell me about tea",
            "Tea is old.",
            "More?",
        ]
        # Delete Coffee (not the open one), with confirmation.
        listing.focus()
        coffee_index = [o.id for o in listing._options].index(str(second))
        listing.highlighted = coffee_index
        await pilot.press("delete")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.pause()
        assert listing.option_count == 1
        # Delete the open one: the chat starts over.
        listing.highlighted = 0
        await pilot.press("delete")
        await pilot.pause()
        await pilot.click("#yes")
        await pilot.pause()
        assert app.conversation_id is None and app.chat.query(Welcome)

    drive(app, body)
    assert store.list_conversations() == []
    assert not list(kv.root.glob("*.kv"))  # deleting a conversation deletes its cache too


def test_filter_rename_and_new_chat() -> None:
    store = Store()
    first, _ = _seed(store)
    app = ChatApp(backend=scripted("<output>x</output>"), store=store)

    async def body(app: ChatApp, pilot: Any) -> None:
        listing = app.query_one("#conversations")
        await pilot.click("#filter")
        await pilot.press(*"tea")
        await pilot.pause()
        assert listing.option_count == 1
        listing.focus()
        listing.highlighted = 0
        await pilot.press("f2")
        await pilot.pause()
        assert isinstance(app.screen, TextEntryScreen)
        entry = app.screen.query_one("#entry")
        entry.value = "All about tea"
        await pilot.press("enter")
        await pilot.pause()
        assert store.get_conversation(first).summary.title == "All about tea"
        await app.open_conversation(first)
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.conversation_id is None and app.chat.query(Welcome)

    drive(app, body)


def test_export_markdown_and_json_to_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "here"
    folder.mkdir()
    monkeypatch.chdir(folder)
    app = ChatApp(backend=scripted(STRAWBERRY_REPLY), store=Store())

    async def body(app: ChatApp, pilot: Any) -> None:
        await ask(app, pilot, STRAWBERRY_PROMPT)
        for command in ("/export md", "/export json", "/export md"):
            app.prompt_input.load_text(command)
            await pilot.press("enter")
            await pilot.pause()

    drive(app, body)
    files = sorted(p.name for p in folder.iterdir())
    assert files == [
        "reflectchat-1-how-many-r-s-are-in-the-word-strawberry-2.md",  # never overwritten
        "reflectchat-1-how-many-r-s-are-in-the-word-strawberry.json",
        "reflectchat-1-how-many-r-s-are-in-the-word-strawberry.md",
    ]
    md = (folder / files[2]).read_text()
    assert "<details><summary>Reflection</summary>" in md and "## Assistant" in md
    data = json.loads((folder / files[1]).read_text())
    assert data["messages"][1]["reflections"][0].startswith("Wait")


# -- commands, errors ---------------------------------------------------------------------


def test_slash_commands_help_system_and_unknown() -> None:
    backend = scripted("<output>ok</output>")
    app = ChatApp(backend=backend, store=None)

    async def body(app: ChatApp, pilot: Any) -> None:
        for text, check in (
            ("/help", lambda: isinstance(app.screen, HelpScreen)),
            ("/nonsense", lambda: not isinstance(app.screen, HelpScreen)),
        ):
            app.prompt_input.load_text(text)
            await pilot.press("enter")
            await pilot.pause()
            assert check()
            if isinstance(app.screen, HelpScreen):
                await pilot.press("escape")
                await pilot.pause()
        app.prompt_input.load_text("/system You are terse.")
        await pilot.press("enter")
        await ask(app, pilot, "//etc is a folder")  # '//' sends a '/' message
        app.prompt_input.load_text("/strict on")
        await pilot.press("enter")
        await pilot.pause()
        assert app.params.strict_format

    drive(app, body)
    assert backend.calls[0][0].role == "system"
    assert backend.calls[0][0].content == "You are terse."
    assert backend.calls[0][-1].content == "/etc is a folder"


def test_f1_and_command_palette_open() -> None:
    app = ChatApp(backend=scripted("x"), store=None)

    async def body(app: ChatApp, pilot: Any) -> None:
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "CommandPalette"
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for wanted in (
            "Switch model",
            "Edit system prompt",
            "Turn strict format on",
            "Hide reasoning",
            "Export conversation as Markdown",
            "Export conversation as JSON",
        ):
            assert wanted in titles
        assert any("theme" in t.lower() for t in titles)

    drive(app, body)


def test_a_full_context_is_an_inline_error_not_a_crash() -> None:
    backend = ScriptedBackend(["<output>never</output>"], n_ctx=40)
    app = ChatApp(backend=backend, store=Store(), options=ChatOptions(max_tokens=16))

    async def body(app: ChatApp, pilot: Any) -> None:
        reply = await ask(app, pilot, "word " * 100)
        assert "context holds 40" in str(reply._note.render())
        assert app.is_running and not app.generating
        assert backend.calls == []

    drive(app, body)


def test_a_model_that_cannot_load_is_reported_and_the_app_lives_on() -> None:
    calls: list[str] = []

    def factory(spec: str, progress: Any) -> ScriptedBackend:
        calls.append(spec)
        progress(0.5)
        if spec == "missing":
            raise ModelNotFoundError("unknown model 'missing': [bold]not a known alias[/]")
        return scripted("<output>loaded fine</output>", name=spec)

    app = ChatApp(backend_factory=factory, store=None, options=ChatOptions(model="missing"))

    async def body(app: ChatApp, pilot: Any) -> None:
        await wait_until(pilot, lambda: not app.loading)
        assert app.backend is None and "not a known alias" in (app.load_error or "")
        failed = await ask(app, pilot, "hello?")
        assert "no model is loaded" in str(failed._note.render())
        app.prompt_input.load_text("/model other")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.backend is not None)
        reply = await ask(app, pilot, "hello again")
        assert reply.answer_source.strip() == "loaded fine"

    drive(app, body)
    assert calls == ["missing", "other"]


def test_a_prompt_sent_while_loading_waits_for_the_model() -> None:
    import threading

    release = threading.Event()

    def factory(spec: str, progress: Any) -> ScriptedBackend:
        for step in range(5):
            progress(step / 4)
        release.wait(10)
        return scripted("<output>after loading</output>")

    app = ChatApp(backend_factory=factory, store=None)

    async def body(app: ChatApp, pilot: Any) -> None:
        assert app.loading
        app.prompt_input.load_text("early bird")
        await pilot.press("enter")
        await pilot.pause()
        assert "Waiting for the model" in str(replies(app)[-1]._note.render())
        release.set()
        await wait_until(pilot, lambda: app.backend is not None)
        await wait_for_reply(app, pilot)
        assert replies(app)[-1].answer_source.strip() == "after loading"

    drive(app, body)


# -- the real model -----------------------------------------------------------------------


def test_chat_with_the_embedded_model() -> None:
    embedded_model_path()
    from reflectchat.tui.loading import llama_factory

    progress: list[float] = []
    factory = llama_factory(SessionOptions(n_ctx=1024))

    def recording(spec: str, report: Any) -> Any:
        return factory(spec, lambda value: (progress.append(value), report(value))[1])

    app = ChatApp(
        backend_factory=recording,
        store=Store(),
        options=ChatOptions(model="smollm2", max_tokens=48, seed=1),
    )

    async def body(app: ChatApp, pilot: Any) -> None:
        await wait_until(pilot, lambda: not app.loading, timeout=120)
        assert app.backend is not None, app.load_error
        assert app.chat.query(Welcome).first().demo  # the demo-model note is shown
        # (generous: llama.cpp slows down a lot when other processes share the cores)
        reply = await ask(app, pilot, "Is 9.11 bigger than 9.9?", timeout=180)
        result = reply.result
        assert result is not None and result.finish_reason in ("stop", "length")
        assert 0 < result.stats.completion_tokens <= 48
        assert reply.panel is not None  # strict format: the demo model thinks in tags
        status = str(app.query_one("#status-model").render())
        assert "smollm2" in status and "CPU" in status

    drive(app, body)
    assert progress and progress[-1] == pytest.approx(1.0)


def test_reopening_a_conversation_restores_its_saved_kv_cache() -> None:
    # An earlier process (an `ask`) left a conversation and its saved KV cache behind.
    from reflectchat.core.chat.session import ChatSession
    from reflectchat.core.engine.llama import LlamaBackend, LoadOptions
    from reflectchat.core.models.resolve import resolve_model
    from reflectchat.tui.loading import llama_factory

    store = Store()
    earlier = ChatSession(
        LlamaBackend(resolve_model("smollm2"), LoadOptions(n_ctx=2048)),
        GenerationParams(seed=1, max_tokens=24),
        system_prompt="You are concise.",
        store=store,
    )
    first = earlier.send("Name one kind of tea.").run()
    assert earlier.conversation_id is not None
    app = ChatApp(
        backend_factory=llama_factory(SessionOptions(n_ctx=2048)),
        store=store,
        options=ChatOptions(model="smollm2", max_tokens=16, seed=1),
    )

    async def body(app: ChatApp, pilot: Any) -> None:
        await wait_until(pilot, lambda: not app.loading, timeout=120)
        assert app.backend is not None, app.load_error
        await app.open_conversation(earlier.conversation_id)
        reply = await ask(app, pilot, "And one more?", timeout=180)
        assert reply.result is not None
        # The model just loaded holds nothing: all but the reply's pre-filled opener came
        # from the file.
        assert reply.result.stats.cached_tokens >= first.stats.prompt_tokens - 8

    drive(app, body)


def test_strict_format_params_come_from_the_catalog() -> None:
    app = ChatApp(backend=scripted("x"), store=None, options=ChatOptions(model="smollm2"))
    assert app.params == GenerationParams(
        temperature=0.7, top_p=0.95, seed=None, max_tokens=1024, strict_format=True
    )
    assert app.system_prompt is not None and "<thinking>" in app.system_prompt


# -- pure helpers -------------------------------------------------------------------------


def test_merge_text_joins_runs_of_one_kind() -> None:
    events = [
        SectionEvent("open", "thinking"),
        SectionEvent("text", "thinking", "a"),
        SectionEvent("text", "thinking", "b"),
        SectionEvent("open", "reflection"),
        SectionEvent("text", "reflection", "c"),
        SectionEvent("close", "reflection"),
        SectionEvent("close", "thinking", complete=False),
    ]
    assert merge_text(events) == [
        ("open", "thinking", "", True),
        ("text", "thinking", "ab", True),
        ("open", "reflection", "", True),
        ("text", "reflection", "c", True),
        ("close", "reflection", "", True),
        ("close", "thinking", "", False),
    ]
    buffer = EventBuffer()
    for event in events:
        buffer.append(event)
    assert buffer.drain() == events and buffer.drain() == []


def test_slash_parsing() -> None:
    assert parse_slash("/export json").arg == "json"  # type: ignore[union-attr]
    assert parse_slash("/clear").name == "new"  # type: ignore[union-attr]
    assert parse_slash("hello /model x") is None
    assert parse_slash("//literal") is None and unescape_message("//literal") == "/literal"
    assert parse_slash("/etc/hosts is a file") is None


def test_soften_joins_paragraph_lines_only() -> None:
    assert soften("a\nb\n\n1. x\n   y\n2. z") == "a b\n\n1. x y\n2. z"
    assert soften("```\na\nb\n```") == "```\na\nb\n```"


def test_context_overflow_error_type_is_engine_error() -> None:
    # The app relies on this to show it inline.
    from reflectchat.core.engine.base import EngineError

    assert issubclass(ContextOverflowError, EngineError)


# -- a remote engine ----------------------------------------------------------------------


def test_chat_with_a_remote_server_shows_reasoning_content_as_thinking() -> None:
    from reflectchat.core.engine.remote import Endpoint
    from reflectchat.tui.loading import ChatOptions, remote_factory
    from tests.support.fake_openai import fake_openai

    with fake_openai() as fake:
        fake.mode = "reasoning"
        fake.models = ["mattshumer/Reflection-Llama-3.1-70B"]
        factory = remote_factory(Endpoint(fake.url))
        options = ChatOptions(model="mattshumer/Reflection-Llama-3.1-70B")
        app = ChatApp(backend_factory=factory, options=options, store=Store())

        async def body(app: ChatApp, pilot: Any) -> None:
            await wait_until(pilot, lambda: app.backend is not None)
            reply = await ask(app, pilot, "Is 9.11 bigger than 9.9?")
            assert reply.result is not None
            assert reply.result.parsed.thinking == "Let me think."
            assert reply.result.parsed.answer == "Hello there."
            assert reply.thinking_title.startswith("Thinking")

        drive(app, body)
        sent = fake.requests[-1]["body"]
        # the served Reflection model got its catalog system prompt, as a local one would
        assert sent["messages"][0]["role"] == "system"
        assert "<reflection>" in sent["messages"][0]["content"]


# -- other reasoning formats (issue 10) ---------------------------------------------------------


def test_harmony_reply_shows_thinking_tool_call_and_answer_apart_and_reopens_the_same() -> None:
    from reflectchat.tui.messages import ToolCallBlock

    harmony = (
        "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>"
        'commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}'
        "<|call|><|start|>assistant<|channel|>final<|message|>It is sunny.<|return|>"
    )
    store = Store()
    app = ChatApp(backend=scripted(harmony), store=store)

    async def body(app: ChatApp, pilot: Any) -> None:
        reply = await ask(app, pilot, "Weather in Paris?")
        assert reply.answer_source.strip() == "It is sunny."
        [block] = reply.query(ToolCallBlock)
        assert "functions.get_weather" in str(block.title)
        assert '{"city":"Paris"}' in block.text.text
        assert reply.panel is not None
        assert "Need the weather." in "".join(p.text for p in reply.parts)

    drive(app, body)
    [summary] = store.list_conversations()
    stored = store.get_conversation(summary.id).messages[1]
    assert stored.params is not None and stored.params["format"] == "harmony"
    from reflectchat.core.chat.store_rows import parsed_reply

    again = parsed_reply(stored)
    assert (again.thinking, again.answer, again.tool_calls) == (
        "Need the weather.",
        "It is sunny.",
        ['{"city":"Paris"}'],
    )


def test_answer_now_mid_thinking_on_the_embedded_model() -> None:
    # issue 11: Ctrl+G while the model thinks ends the thinking; the engine writes the closing
    # sequence itself and the answer follows; the panel says it was cut short.
    embedded_model_path()
    from reflectchat.tui.loading import llama_factory

    app = ChatApp(
        backend_factory=llama_factory(SessionOptions(n_ctx=1024)),
        store=Store(),
        options=ChatOptions(model="smollm2", max_tokens=300, seed=3),
    )

    async def body(app: ChatApp, pilot: Any) -> None:
        await wait_until(pilot, lambda: not app.loading, timeout=120)
        app.prompt_input.focus()
        app.prompt_input.load_text("Is 9.11 bigger than 9.9?")
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: bool(replies(app)) and replies(app)[-1].thinking_tokens >= 8,
            timeout=120,
        )
        await pilot.press("ctrl+g")
        await wait_for_reply(app, pilot, 180)
        reply = replies(app)[-1]
        result = reply.result
        assert result is not None and result.thinking_cut == "user"
        assert result.parsed.answer
        assert "cut short by you" in reply.thinking_title
        assert "tokens" in reply.thinking_title

    drive(app, body)


def test_think_budget_setting_cuts_the_thinking_and_marks_the_panel() -> None:
    reply_text = "<think>" + "word " * 40 + "</think>The answer."
    app = ChatApp(backend=scripted(reply_text), store=None)

    async def body(app: ChatApp, pilot: Any) -> None:
        app.prompt_input.focus()
        app.prompt_input.load_text("/think-budget 5")
        await pilot.press("enter")
        await pilot.pause()
        assert app.params.think_budget == 5
        reply = await ask(app, pilot, "Think briefly.")
        assert reply.result is not None and reply.result.thinking_cut == "budget"
        assert "cut short by the budget" in reply.thinking_title
        assert reply.result.stats.thinking_tokens >= 5
        app.prompt_input.load_text("/think-budget off")
        await pilot.press("enter")
        await pilot.pause()
        assert app.params.think_budget is None

    drive(app, body)
