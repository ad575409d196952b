"""The chat's settings and commands: `/` commands typed in the prompt and the command
palette (Ctrl+P) — switch model, system prompt, strict format, reasoning display, export,
theme. A part of `ChatApp`, kept apart so each file reads in one sitting."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from textual.app import SystemCommand

from reflectchat.core.chat.attachments import read_attachment
from reflectchat.core.chat.presets import Preset, all_presets, find_preset
from reflectchat.core.chat.setup import generation_params
from reflectchat.core.config import ConfigError, load_config
from reflectchat.core.errors import ReflectchatError
from reflectchat.core.models.resolve import load_catalog
from reflectchat.tui.attachments import pending_note
from reflectchat.tui.screens import TextEntryScreen
from reflectchat.tui.slash import NAMES

if TYPE_CHECKING:
    from reflectchat.tui.app import ChatApp


class _Default(Enum):
    UNSET = "unset"


UNSET: Final = _Default.UNSET
"""No system prompt chosen in the app: the model's default applies."""

SystemChoice: TypeAlias = "str | _Default | None"
"""A system prompt, none at all, or `UNSET` (the model's default)."""


class Commands:
    """The `/` commands and the palette's entries, acting on `app`."""

    def __init__(self, app: ChatApp) -> None:
        self.app = app

    async def run_slash(self, name: str, arg: str) -> None:
        app = self.app
        if name not in NAMES:
            app.say(f"Unknown command /{name} — /help lists them (// sends a '/' message).")
            return
        if name == "help":
            app.action_help()
        elif name == "new":
            await app.action_new_chat()
        elif name == "model":
            if arg:
                app.loader.switch(arg)
            else:
                app.action_pick_model()
        elif name == "system":
            self.set_system_from_text(arg)
        elif name == "export":
            app.conversations.export(arg or "md")
        elif name == "copy":
            app.action_copy_answer()
        elif name == "retry":
            await app.action_regenerate()
        elif name == "answer":
            app.action_answer_now()
        elif name == "thinking":
            app.action_toggle_thinking()
        elif name == "keep-thinking":
            self.set_keep_thinking_open(_on_off(arg, not app.keep_thinking_open))
        elif name == "reasoning":
            show = {"show": True, "hide": False}.get(arg.lower())
            self.set_show_reasoning(app.chat.has_class("-hide-reasoning") if show is None else show)
        elif name == "strict":
            self.set_strict_format(_on_off(arg, not app.params.strict_format))
        elif name == "think-budget":
            self.set_think_budget(arg)
        elif name == "theme":
            if not arg:
                app.action_change_theme()
            elif arg in app.available_themes:
                app.theme = arg
            else:
                app.say(f"No theme '{arg}'. Themes: {', '.join(sorted(app.available_themes))}")
        elif name == "sidebar":
            app.action_toggle_sidebar()
        elif name == "attach":
            self.attach(arg)
        elif name == "preset":
            self.set_preset_from_text(arg)
        elif name == "quit":
            app.exit()

    def attach(self, arg: str) -> None:
        """`/attach PATH` adds a file to the next message; no path lists them; none drops them."""
        app = self.app
        pending = app.replies.attachments
        if arg.lower() in ("none", "off", "clear"):
            pending.clear()
            app.say("No attachments for the next message.")
            return
        if not arg:
            app.say(
                pending_note(pending) if pending else "Nothing attached. /attach PATH adds a file."
            )
            return
        path = os.path.expanduser(arg.strip().strip("\"'"))
        try:
            pending.append(read_attachment(path))
        except ReflectchatError as exc:
            app.say(str(exc), "error")
            return
        app.say(pending_note(pending))

    def set_preset_from_text(self, arg: str) -> None:
        app = self.app
        if not arg:
            names = ", ".join(self.presets())
            now = app.preset.name if app.preset else "none"
            app.say(f"Preset: {now}. /preset NAME picks one of: {names}; /preset none: off.")
            return
        if arg.lower() in ("none", "off"):
            self.set_preset(None)
            return
        try:
            self.set_preset(find_preset(arg, self._config_presets()))
        except ReflectchatError as exc:
            app.say(str(exc), "error")

    def _config_presets(self) -> dict[str, dict[str, Any]]:
        try:
            return load_config().presets
        except ConfigError as exc:
            self.app.say(str(exc), "error")
            return {}

    def presets(self) -> dict[str, Preset]:
        return all_presets(self._config_presets())

    def set_preset(self, preset: Preset | None) -> None:
        """A preset's part follows the system prompt; its sampling applies unless flags chose."""
        app = self.app
        app.preset = preset
        app.options.preset = preset
        app.params = generation_params(app.options, app.entry)
        prompt = app.system_prompt
        if app.session is not None:
            app.session.params = app.params
            app.session.system_prompt = prompt
        if app.conversation_id is not None and app.store is not None:
            app.store_call(app.store.set_system_prompt, app.conversation_id, prompt)
        if preset is None:
            app.say("No preset.")
        else:
            app.say(f"Preset {preset.name}: {preset.description or preset.system[:80]}.")

    def set_system_from_text(self, arg: str) -> None:
        if not arg:
            self.edit_system_prompt()
        elif arg.lower() in ("none", "off"):
            self.set_system_prompt(None)
        elif arg.lower() == "default":
            self.set_system_prompt(UNSET)
        else:
            self.set_system_prompt(arg)

    def set_system_prompt(self, value: SystemChoice) -> None:
        app = self.app
        app.system_override = value
        prompt = app.system_prompt
        if app.session is not None:
            app.session.system_prompt = prompt
        if app.conversation_id is not None and app.store is not None:
            app.store_call(app.store.set_system_prompt, app.conversation_id, prompt)
        if prompt is None:
            app.say("System prompt: none.")
        else:
            short = " ".join(prompt.split())
            app.say(f"System prompt set: {short[:80]}{'…' if len(short) > 80 else ''}")

    def set_keep_thinking_open(self, keep: bool) -> None:
        self.app.keep_thinking_open = keep
        state = "stays open" if keep else "folds"
        self.app.say(f"Thinking now {state} when the answer starts.")

    def set_show_reasoning(self, show: bool) -> None:
        self.app.chat.set_class(not show, "-hide-reasoning")
        self.app.say(
            "Reasoning shown." if show else "Reasoning hidden (/reasoning show brings it back)."
        )

    def set_strict_format(self, strict: bool) -> None:
        app = self.app
        app.options.strict_format = strict
        app.params = replace(app.params, strict_format=strict)
        if app.session is not None:
            app.session.params = app.params
        app.say(f"Strict format {'on' if strict else 'off'}.")

    def set_think_budget(self, arg: str) -> None:
        """`/think-budget N` (0: answer without thinking) or `/think-budget off`."""
        app = self.app
        arg = arg.strip().lower()
        if arg in ("", "off", "none"):
            budget = None
        elif arg.isdigit() and int(arg) <= 1 << 24:
            budget = int(arg)
        else:
            app.say("Usage: /think-budget N (thinking tokens; 0: none) or /think-budget off.")
            return
        app.options.think_budget = budget
        app.params = replace(app.params, think_budget=budget)
        if app.session is not None:
            app.session.params = app.params
        if budget is None:
            app.say("Thinking budget off: the model thinks as long as it wants.")
        else:
            app.say(f"Thinking budget: {budget:,} tokens, then the answer.")

    def pick_model(self) -> None:
        aliases = ", ".join(load_catalog())

        def chosen(spec: str | None) -> None:
            if spec:
                self.app.loader.switch(spec)

        self.app.push_screen(
            TextEntryScreen(
                "Switch model",
                "",
                hint=f"A catalog alias ({aliases}) or a path to a .gguf file."
                f" Now: {self.app.model_spec}",
            ),
            chosen,
        )

    def edit_system_prompt(self) -> None:
        def chosen(text: str | None) -> None:
            if text is not None:
                self.set_system_prompt(text if text.strip() else None)

        session = self.app.session
        shown = session.system_prompt or "" if session else self.app.system_prompt or ""
        if self.app.preset is not None:  # the preset's part is added on top: edit the rest
            shown = self.app.base_system_prompt or ""
        self.app.push_screen(
            TextEntryScreen(
                "System prompt",
                shown,
                multiline=True,
                hint="Applies to the rest of this conversation and to new ones; empty: none.",
            ),
            chosen,
        )

    def system_commands(self) -> Iterator[SystemCommand]:
        """The palette's entries for the chat, after Textual's own."""
        app = self.app
        yield SystemCommand("New chat", "Start a new conversation (Ctrl+N)", app.action_new_chat)
        yield SystemCommand(
            "Switch model", f"Load another model (now: {app.model_spec})", app.action_pick_model
        )
        yield SystemCommand(
            "Edit system prompt", "Change what the model is told", app.action_edit_system_prompt
        )
        strict = "off" if app.params.strict_format else "on"
        yield SystemCommand(
            f"Turn strict format {strict}",
            "Constrain replies to <thinking>…</thinking><output>…</output>",
            lambda: self.set_strict_format(not app.params.strict_format),
        )
        showing = not app.chat.has_class("-hide-reasoning")
        yield SystemCommand(
            "Hide reasoning" if showing else "Show reasoning",
            "Show or hide the thinking panels",
            lambda: self.set_show_reasoning(not showing),
        )
        keep = app.keep_thinking_open
        yield SystemCommand(
            "Fold thinking when the answer starts"
            if keep
            else "Keep thinking open while answering",
            "What the thinking panel does when the answer begins",
            lambda: self.set_keep_thinking_open(not keep),
        )
        for preset in self.presets().values():
            yield SystemCommand(
                f"Preset: {preset.name}",
                preset.description or preset.system[:80],
                partial(self.set_preset, preset),
            )
        if app.preset is not None:
            yield SystemCommand(
                "No preset", "Drop the writing preset", partial(self.set_preset, None)
            )
        yield SystemCommand(
            "Show or hide the sidebar", "The conversation list (Ctrl+B)", app.action_toggle_sidebar
        )
        yield SystemCommand("Expand or fold all thinking", "Ctrl+T", app.action_toggle_thinking)
        yield SystemCommand(
            "Export conversation as Markdown",
            "To a new .md file in the current folder (thinking in <details>)",
            lambda: app.conversations.export("md"),
        )
        yield SystemCommand(
            "Export conversation as JSON",
            "To a new .json file in the current folder",
            lambda: app.conversations.export("json"),
        )
        yield SystemCommand("Copy last answer", "Ctrl+O", app.action_copy_answer)
        yield SystemCommand("Regenerate last reply", "Ctrl+R", app.action_regenerate)
        yield SystemCommand("Help", "Keys and / commands (F1)", app.action_help)


def _on_off(arg: str, default: bool) -> bool:
    value = arg.strip().lower()
    if value in ("on", "yes", "true", "1"):
        return True
    if value in ("off", "no", "false", "0"):
        return False
    return default
