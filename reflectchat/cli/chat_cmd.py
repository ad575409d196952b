"""`reflectchat chat`: the terminal chat app's flags. Textual is imported only when the app
actually starts, so `--help` and the other commands stay light."""

from __future__ import annotations

import argparse
from typing import Any

from reflectchat.core.errors import ReflectchatError, UsageError


def add_chat_parser(commands: Any, add_model_options: Any) -> None:
    """`add_model_options` is main's: chat and ask take the same model flags, checked alike."""
    chat = commands.add_parser(
        "chat",
        help="the chat app (also: reflectchat with no arguments)",
        description="Chat in the terminal: thinking and reflections stream into folding panels, "
        "the answer as Markdown; conversations are saved and listed on the left.",
    )
    add_model_options(chat)
    chat.add_argument(
        "--prompt", metavar="TEXT", help="send TEXT as the first message when the app opens"
    )
    chat.add_argument(
        "-a",
        "--attach",
        action="append",
        metavar="FILE",
        help="attach a text file to the first message (repeatable); piped text is attached too",
    )
    chat.add_argument(
        "--keep-thinking-open",
        action="store_true",
        help="keep the thinking panel open while the answer streams (default: it folds)",
    )


def run_chat(args: argparse.Namespace) -> int:
    from reflectchat.cli.options import apply_config, session_options

    theme = apply_config(args).get("theme")
    options = session_options(args)
    attachments = _first_message_attachments(args)
    if options.endpoint is not None:
        options.endpoint = _name_the_model(options.endpoint)
        options.model = options.endpoint.model
    store, store_error = _open_history(args)
    try:
        from reflectchat.tui.launch import run_chat as run_app

        return run_app(
            options,
            keep_thinking_open=bool(args.keep_thinking_open),
            show_reasoning=args.reasoning != "hide",
            theme=theme,
            store=store,
            store_error=store_error,
            prompt=args.prompt,
            attachments=attachments,
        )
    finally:
        if store is not None:
            store.close()


def _first_message_attachments(args: argparse.Namespace) -> tuple[Any, ...]:
    """--attach files and piped text, for the first message; checked before the app opens, so
    a bad file is a one-line error. Piped text is read whole, then the terminal becomes the
    app's input again (`cat notes.md | reflectchat chat --prompt "Summarize"`)."""
    from reflectchat.cli.ask import read_piped_text
    from reflectchat.cli.options import check_utf8
    from reflectchat.core.chat.attachments import (
        STDIN_NAME,
        Attachment,
        read_attachments,
        stdin_is_data,
    )

    check_utf8(args.prompt, "--prompt")
    files = read_attachments(args.attach or ())
    if not stdin_is_data(0):
        return tuple(files)
    text = read_piped_text()
    _reattach_terminal()
    piped = [Attachment(STDIN_NAME, text)] if text.strip() else []
    return (*piped, *files)


def _reattach_terminal() -> None:
    """After reading a pipe, the app reads keys from the controlling terminal instead."""
    import os
    import sys

    try:
        fd = os.open("/dev/tty", os.O_RDWR)
    except OSError:
        raise UsageError(
            "the chat app needs a terminal to read keys from, and there is none (piped text "
            'without one: reflectchat ask "PROMPT")'
        ) from None
    os.dup2(fd, 0)
    os.close(fd)
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115  (fd 0 stays open)


def _name_the_model(endpoint: Any) -> Any:
    """The endpoint, with the model to use named (the server's first, if none was given)."""
    import dataclasses

    from reflectchat.core.engine.remote import RemoteBackend

    if endpoint.model is None:
        name = RemoteBackend(endpoint, retries=1).resolve_model_name()
        endpoint = dataclasses.replace(endpoint, model=name)
    return endpoint


def _open_history(args: argparse.Namespace) -> tuple[Any, str | None]:
    """The history store, checked before the app starts: a conversation that does not exist
    is a one-line error here, not a surprise inside the app. A history that cannot be opened
    is not fatal: the chat runs unsaved and says so."""
    from reflectchat.core.chat.store import ConversationNotFound, Store, StoreError

    if args.no_save:
        if args.conversation is not None or args.continue_last:
            raise UsageError("--no-save cannot be combined with --conversation/--continue")
        return None, None
    try:
        store = Store()
    except StoreError as exc:
        if args.conversation is not None or args.continue_last:
            raise
        return None, str(exc)
    try:
        if args.conversation is not None:
            store.get_conversation(args.conversation)
        elif args.continue_last and store.latest_conversation_id() is None:
            raise UsageError(
                "there is no conversation to continue yet; start one with: reflectchat chat"
            )
    except ConversationNotFound as exc:
        store.close()
        raise UsageError(str(exc)) from exc
    except ReflectchatError:  # StoreError and the above: the message says it all
        store.close()
        raise
    return store, None
