"""`/` commands typed in the prompt (terminals and multiplexers swallow some keys: tmux takes
F1, VS Code's terminal takes Ctrl+T), and the key table the help screen shows."""

from __future__ import annotations

from dataclasses import dataclass

KEYS: tuple[tuple[str, str], ...] = (
    ("Enter", "send"),
    ("Shift+Enter, Ctrl+J", "new line (Shift+Enter where the terminal reports it)"),
    ("Up / Down", "in an empty prompt: earlier prompts"),
    ("Esc", "stop the reply (what was written stays)"),
    ("Ctrl+N", "new chat"),
    ("Ctrl+T", "expand or fold all thinking"),
    ("Ctrl+R", "regenerate the last reply"),
    ("Ctrl+G", "answer now: stop the thinking, let the answer follow"),
    ("Ctrl+O", "copy the last answer"),
    ("Ctrl+P", "command palette"),
    ("Ctrl+B", "show or hide the conversation list"),
    ("Tab / Shift+Tab", "move between the prompt, the chat and the list"),
    ("F1", "this help"),
    ("Ctrl+Q", "quit (Ctrl+D in an empty prompt too)"),
)

SLASH_COMMANDS: tuple[tuple[str, str], ...] = (
    ("/help", "keys and commands"),
    ("/new, /clear", "start a new chat"),
    ("/model [NAME]", "switch model: an alias or a path to a .gguf (no name: ask)"),
    ("/system [TEXT]", "set the system prompt (no text: edit it; 'none' drops it)"),
    ("/preset [NAME]", "writing preset: email, essay, summary… (none: off)"),
    ("/attach [PATH]", "add a text file to the next message (none: remove)"),
    ("/export md|json", "write this conversation to a file in the current folder"),
    ("/copy", "copy the last answer"),
    ("/retry", "regenerate the last reply"),
    ("/answer", "stop the thinking now and let the answer follow (Ctrl+G)"),
    ("/thinking", "expand or fold all thinking"),
    ("/keep-thinking", "keep thinking open while the answer streams (on/off)"),
    ("/reasoning show|hide", "show or hide thinking panels"),
    ("/strict on|off", "constrain replies to the thinking/output format"),
    ("/think-budget N|off", "end the thinking after N tokens (0: none)"),
    ("/theme [NAME]", "change the colour theme"),
    ("/sidebar", "show or hide the conversation list (Ctrl+B)"),
    ("/quit", "quit"),
)

ALIASES = {
    "clear": "new",
    "regenerate": "retry",
    "regen": "retry",
    "exit": "quit",
    "q": "quit",
    "h": "help",
    "?": "help",
}
NAMES = frozenset(c[0].split()[0].lstrip("/").rstrip(",") for c in SLASH_COMMANDS) | frozenset(
    ALIASES
)


@dataclass(frozen=True)
class SlashCommand:
    name: str  # canonical name, without the slash
    arg: str  # the rest, stripped


def parse_slash(text: str) -> SlashCommand | None:
    """A `/command arg` typed in the prompt, or None for a message to send.

    `//text` sends `/text` as a message; a path such as `/etc/hosts are…` (a slash inside the
    first word) is a message, not a command."""
    stripped = text.strip()
    if not stripped.startswith("/") or stripped.startswith("//"):
        return None
    head, _, arg = stripped[1:].partition(" ")
    head = head.strip().lower()
    if not head or "/" in head:
        return None
    return SlashCommand(ALIASES.get(head, head), arg.strip())


def unescape_message(text: str) -> str:
    """`//text` → `/text` (the way to send a message that starts with a slash)."""
    stripped = text.lstrip()
    return stripped[1:] if stripped.startswith("//") else text
