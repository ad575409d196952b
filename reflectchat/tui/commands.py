"""The chat's settings and commands: `/` commands typed in the prompt and the command
palette (Ctrl+P) — switch model, system prompt, strict format, reasoning display, export,
theme. A mixin of `ChatApp`, kept apart so each file reads in one sitting."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from textual.app import SystemCommand
from textual.screen import Screen

from reflectchat.core.models.resolve import load_catalog
from reflectchat.tui.screens import TextEntryScreen
from reflectchat.tui.slash import NAMES

UNSET: Any = object()
"""No system prompt chosen in the app: the model's default applies."""


class CommandsMixin:
    async def run_slash(self, name: str, arg: str) -> None:
        if name not in NAMES:
            self._say(f"Unknown command /{name} — /help lists them (// sends a '/' message).")
            return
        if name == "help":
            self.action_help()
        elif name == "new":
            await self.action_new_chat()
        elif name == "model":
            if arg:
                self.switch_model(arg)
            else:
                self.action_pick_model()
        elif name == "system":
            self.set_system_from_text(arg)
        elif name == "export":
            self.export(arg or "md")
        elif name == "copy":
            self.action_copy_answer()
        elif name == "retry":
            await self.action_regenerate()
        elif name == "thinking":
            self.action_toggle_thinking()
        elif name == "keep-thinking":
            self.set_keep_thinking_open(_on_off(arg, not self.keep_thinking_open))
        elif name == "reasoning":
            show = {"show": True, "hide": False}.get(arg.lower())
            self.set_show_reasoning(
                self.chat.has_class("-hide-reasoning") if show is None else show
            )
        elif name == "strict":
            self.set_strict_format(_on_off(arg, not self.params.strict_format))
        elif name == "theme":
            if not arg:
                self.action_change_theme()
            elif arg in self.available_themes:
                self.theme = arg
            else:
                self._say(f"No theme '{arg}'. Themes: {', '.join(sorted(self.available_themes))}")
        elif name == "quit":
            self.exit()

    def set_system_from_text(self, arg: str) -> None:
        if not arg:
            self.action_edit_system_prompt()
        elif arg.lower() in ("none", "off"):
            self.set_system_prompt(None)
        elif arg.lower() == "default":
            self.set_system_prompt(UNSET)
        else:
            self.set_system_prompt(arg)

    def set_system_prompt(self, value: Any) -> None:
        self._system_override = value
        prompt = self.system_prompt
        if self.session is not None:
            self.session.system_prompt = prompt
        if self.conversation_id is not None and self.store is not None:
            self._store_call(self.store.set_system_prompt, self.conversation_id, prompt)
        if prompt is None:
            self._say("System prompt: none.")
        else:
            short = " ".join(prompt.split())
            self._say(f"System prompt set: {short[:80]}{'…' if len(short) > 80 else ''}")

    def set_keep_thinking_open(self, keep: bool) -> None:
        self.keep_thinking_open = keep
        state = "stays open" if keep else "folds"
        self._say(f"Thinking now {state} when the answer starts.")

    def set_show_reasoning(self, show: bool) -> None:
        self.chat.set_class(not show, "-hide-reasoning")
        self._say(
            "Reasoning shown." if show else "Reasoning hidden (/reasoning show brings it back)."
        )

    def set_strict_format(self, strict: bool) -> None:
        self.options.strict_format = strict
        self.params = replace(self.params, strict_format=strict)
        if self.session is not None:
            self.session.params = self.params
        self._say(f"Strict format {'on' if strict else 'off'}.")

    def action_pick_model(self) -> None:
        aliases = ", ".join(load_catalog())

        def chosen(spec: str | None) -> None:
            if spec:
                self.switch_model(spec)

        self.push_screen(
            TextEntryScreen(
                "Switch model",
                "",
                hint=f"A catalog alias ({aliases}) or a path to a .gguf file."
                f" Now: {self.model_spec}",
            ),
            chosen,
        )

    def action_edit_system_prompt(self) -> None:
        def chosen(text: str | None) -> None:
            if text is not None:
                self.set_system_prompt(text if text.strip() else None)

        self.push_screen(
            TextEntryScreen(
                "System prompt",
                self.session.system_prompt or "" if self.session else self.system_prompt or "",
                multiline=True,
                hint="Applies to the rest of this conversation and to new ones; empty: none.",
            ),
            chosen,
        )

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("New chat", "Start a new conversation (Ctrl+N)", self.action_new_chat)
        yield SystemCommand(
            "Switch model", f"Load another model (now: {self.model_spec})", self.action_pick_model
        )
        yield SystemCommand(
            "Edit system prompt", "Change what the model is told", self.action_edit_system_prompt
        )
        strict = "off" if self.params.strict_format else "on"
        yield SystemCommand(
            f"Turn strict format {strict}",
            "Constrain replies to <thinking>…</thinking><output>…</output>",
            lambda: self.set_strict_format(not self.params.strict_format),
        )
        showing = not self.chat.has_class("-hide-reasoning")
        yield SystemCommand(
            "Hide reasoning" if showing else "Show reasoning",
            "Show or hide the thinking panels",
            lambda: self.set_show_reasoning(not showing),
        )
        keep = self.keep_thinking_open
        yield SystemCommand(
            "Fold thinking when the answer starts"
            if keep
            else "Keep thinking open while answering",
            "What the thinking panel does when the answer begins",
            lambda: self.set_keep_thinking_open(not keep),
        )
        yield SystemCommand("Expand or fold all thinking", "Ctrl+T", self.action_toggle_thinking)
        yield SystemCommand(
            "Export conversation as Markdown",
            "To a new .md file in the current folder (thinking in <details>)",
            lambda: self.export("md"),
        )
        yield SystemCommand(
            "Export conversation as JSON",
            "To a new .json file in the current folder",
            lambda: self.export("json"),
        )
        yield SystemCommand("Copy last answer", "Ctrl+O", self.action_copy_answer)
        yield SystemCommand("Regenerate last reply", "Ctrl+R", self.action_regenerate)
        yield SystemCommand("Help", "Keys and / commands (F1)", self.action_help)


def _on_off(arg: str, default: bool) -> bool:
    value = arg.strip().lower()
    if value in ("on", "yes", "true", "1"):
        return True
    if value in ("off", "no", "false", "0"):
        return False
    return default
