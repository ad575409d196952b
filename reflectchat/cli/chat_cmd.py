"""`reflectchat chat`: the terminal chat app's flags. Textual is imported only when the app
actually starts, so `--help` and the other commands stay light."""

from __future__ import annotations

import argparse
from typing import Any

from reflectchat.cli.errors import CliError

EXIT_USAGE = 2


def add_chat_parser(commands: Any, parser_class: type, types: dict[str, Any]) -> None:
    """`types` holds main's argument validators (positive_int, temperature, unit_float,
    gpu_layers), so chat and ask reject bad values the same way."""
    chat = commands.add_parser(
        "chat",
        help="the chat app (also: reflectchat with no arguments)",
        description="Chat in the terminal: thinking and reflections stream into folding panels, "
        "the answer as Markdown; conversations are saved and listed on the left.",
    )
    chat.add_argument("-m", "--model", metavar="SPEC", help="catalog alias or path to a .gguf")
    which = chat.add_mutually_exclusive_group()
    which.add_argument("--conversation", type=int, metavar="ID", help="open conversation ID")
    which.add_argument(
        "-c",
        "--continue",
        dest="continue_last",
        action="store_true",
        help="open the most recent conversation",
    )
    system = chat.add_mutually_exclusive_group()
    system.add_argument("--system", metavar="TEXT", help="replace the model's system prompt")
    system.add_argument("--no-system", action="store_true", help="send no system prompt")
    chat.add_argument("--temperature", type=types["temperature"], metavar="T")
    chat.add_argument("--top-p", type=types["unit_float"], metavar="P")
    chat.add_argument("--seed", type=int, metavar="N", help="fix sampling for repeatable output")
    chat.add_argument("--max-tokens", type=types["positive_int"], metavar="N", help="default 1024")
    chat.add_argument("--ctx", type=types["positive_int"], metavar="N", help="context size")
    chat.add_argument("--threads", type=types["positive_int"], metavar="N", help="CPU threads")
    chat.add_argument(
        "--gpu-layers",
        type=types["gpu_layers"],
        metavar="N|all|auto",
        help="layers to offload (auto: all when this build supports GPU offload, else 0)",
    )
    chat.add_argument(
        "--strict-format",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="constrain decoding to <thinking>…</thinking><output>…</output> "
        "(on by default for the demo model)",
    )
    chat.add_argument(
        "--reasoning", choices=("show", "hide"), help="show or hide the thinking panels"
    )
    chat.add_argument(
        "--keep-thinking-open",
        action="store_true",
        help="keep the thinking panel open while the answer streams (default: it folds)",
    )
    chat.add_argument(
        "--keep-reasoning",
        action="store_true",
        default=None,
        help="send earlier replies back whole, thinking included (default: answers only)",
    )
    chat.add_argument(
        "--force", action="store_true", help="load the model even if it looks too big to fit"
    )
    chat.add_argument("--no-save", action="store_true", help="don't save this chat")
    chat.add_argument(
        "--endpoint",
        metavar="URL|NAME",
        help="chat with a remote OpenAI-compatible server; -m names the server's model",
    )
    chat.add_argument("--api-key-env", metavar="VAR", help="the endpoint's API-key variable")


def run_chat(args: argparse.Namespace) -> int:
    from reflectchat.cli.ask import apply_config

    theme = apply_config(args).get("theme")
    args.remote_endpoint = _remote_endpoint(args) if args.endpoint else None
    store, store_error = _open_history(args)
    try:
        from reflectchat.tui.launch import run_chat as run_app

        return run_app(args, theme=theme, store=store, store_error=store_error)
    finally:
        if store is not None:
            store.close()


def _remote_endpoint(args: argparse.Namespace) -> Any:
    """The endpoint, with the model to use named (the server's first, if none was given)."""
    import dataclasses

    from reflectchat.cli.ask import endpoint_from
    from reflectchat.core.remote_backend import RemoteBackend, RemoteError

    endpoint = endpoint_from(args)
    if endpoint.model is None:
        try:
            name = RemoteBackend(endpoint, retries=1).resolve_model_name()
        except RemoteError as exc:
            raise CliError(str(exc)) from exc
        endpoint = dataclasses.replace(endpoint, model=name)
    args.model = endpoint.model
    return endpoint


def _open_history(args: argparse.Namespace) -> tuple[Any, str | None]:
    """The history store, checked before the app starts: a conversation that does not exist
    is a one-line error here, not a surprise inside the app. A history that cannot be opened
    is not fatal: the chat runs unsaved and says so."""
    from reflectchat.core.store import ConversationNotFound, Store, StoreError

    if args.no_save:
        if args.conversation is not None or args.continue_last:
            raise CliError("--no-save cannot be combined with --conversation/--continue", 2)
        return None, None
    try:
        store = Store()
    except StoreError as exc:
        if args.conversation is not None or args.continue_last:
            raise CliError(str(exc)) from exc
        return None, str(exc)
    try:
        if args.conversation is not None:
            store.get_conversation(args.conversation)
        elif args.continue_last and store.latest_conversation_id() is None:
            raise CliError(
                "there is no conversation to continue yet; start one with: reflectchat chat", 2
            )
    except ConversationNotFound as exc:
        store.close()
        raise CliError(str(exc), EXIT_USAGE) from exc
    except StoreError as exc:
        store.close()
        raise CliError(str(exc)) from exc
    except CliError:
        store.close()
        raise
    return store, None
