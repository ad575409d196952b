"""`reflectchat history`: list, show, export, rm and search stored conversations."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from reflectchat.cli.errors import CliError
from reflectchat.cli.tables import Column, print_table
from reflectchat.core.chat.export import local_time, summary_dict, to_dict, to_json, to_markdown
from reflectchat.core.chat.store import ConversationNotFound, Store, StoreError
from reflectchat.core.chat.store_rows import parsed_reply
from reflectchat.core.errors import EXIT_USAGE
from reflectchat.core.reply.footer import stop_reason_text
from reflectchat.core.reply.sanitize import strip_controls

ID, TITLE, UPDATED = Column("id"), Column("title", wrap=True), Column("updated")


def open_store() -> Store:
    try:
        return Store()
    except StoreError as exc:
        raise CliError(str(exc)) from exc


def run_history(args: argparse.Namespace) -> int:
    action = args.history_command
    with open_store() as store:
        try:
            if action == "list":
                return _list(store, args)
            if action == "show":
                return _show(store, args)
            if action == "export":
                return _export(store, args)
            if action == "rm":
                from reflectchat.core.chat.forget import delete_conversation

                delete_conversation(store, args.id)  # its saved KV cache goes with it
                print(f"deleted conversation {args.id}", file=sys.stderr)
                return 0
            if action == "search":
                return _search(store, args)
        except ConversationNotFound as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc
        except StoreError as exc:
            raise CliError(str(exc)) from exc
    raise CliError("say what to do: reflectchat history list|show|export|rm|search", EXIT_USAGE)


def _list(store: Store, args: argparse.Namespace) -> int:
    rows = store.list_conversations(limit=args.limit)
    if args.json:
        print(to_json({"conversations": [summary_dict(s) for s in rows]}))
        return 0
    if not rows:
        print('no conversations yet: reflectchat ask "…" starts one', file=sys.stderr)
        return 0
    print_table(
        [ID, TITLE, Column("model"), UPDATED, Column("turns")],
        [[str(s.id), s.title, s.model or "", local_time(s.updated_at), str(s.turns)] for s in rows],
    )
    return 0


def _search(store: Store, args: argparse.Namespace) -> int:
    hits = store.search(args.text)
    if args.json:
        print(to_json({"results": [{**summary_dict(s), "snippet": snip} for s, snip in hits]}))
        return 0
    if not hits:
        print(f"nothing in the history matches '{strip_controls(args.text)}'", file=sys.stderr)
        return 0
    print_table(
        [ID, TITLE, UPDATED, Column("match")],
        [[str(s.id), s.title, local_time(s.updated_at), snip] for s, snip in hits],
    )
    return 0


def _show(store: Store, args: argparse.Namespace) -> int:
    conversation = store.get_conversation(args.id)
    show = args.reasoning == "show"
    if not sys.stdout.isatty():
        sys.stdout.write(to_markdown(conversation, details=show))
        return 0
    from rich.console import Console
    from rich.text import Text

    from reflectchat.cli.render import render_parsed

    console = Console(highlight=False, markup=False, emoji=False)
    s = conversation.summary
    console.print(Text(f"#{s.id} {strip_controls(s.title)}", style="bold"))
    for message in conversation.messages:
        if message.role == "user":
            console.print()
            console.print(Text("› " + strip_controls(message.content), style="bold cyan"))
            for a in message.attachments:  # folded: the export has them whole
                lines = a.text.count("\n") + (not a.text.endswith("\n"))
                console.print(
                    Text(
                        f"  + {strip_controls(a.name)} ({lines:,} lines, {len(a.text):,}"
                        f" characters; history export {s.id} has it)",
                        style="dim",
                    )
                )
            continue
        console.print()
        render_parsed(console, parsed_reply(message), show_reasoning=show)
        stats = message.stats or {}
        if stats.get("thinking_tokens"):
            console.print(
                Text(
                    f"(thinking {stats['thinking_tokens']:,} tokens, answer "
                    f"{stats.get('answer_tokens', 0):,} tokens)",
                    style="dim",
                )
            )
        if message.finish_reason and message.finish_reason != "stop":
            reason = strip_controls(stop_reason_text(message.finish_reason))
            console.print(Text(f"({reason})", style="dim"))
    return 0


def _export(store: Store, args: argparse.Namespace) -> int:
    conversation = store.get_conversation(args.id)
    if args.format == "json":
        print(to_json(to_dict(conversation)))
    else:
        sys.stdout.write(to_markdown(conversation, details=True))
    return 0


def add_history_parser(commands: Any, parser_class: type) -> None:
    history = commands.add_parser(
        "history",
        help="list, show, export, delete and search past conversations",
        description="Conversations saved by ask (and the chat).",
    )
    sub = history.add_subparsers(
        dest="history_command", metavar="ACTION", parser_class=parser_class
    )
    listing = sub.add_parser("list", help="conversations, newest first")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="one conversation, rendered like ask")
    show.add_argument("id", type=int)
    show.add_argument("--reasoning", choices=("show", "hide"), default="hide")
    export = sub.add_parser("export", help="Markdown (thinking folded) or JSON")
    export.add_argument("id", type=int)
    export.add_argument("--format", choices=("md", "json"), default="md")
    rm = sub.add_parser("rm", help="delete a conversation")
    rm.add_argument("id", type=int)
    search = sub.add_parser("search", help="conversations whose text contains TEXT")
    search.add_argument("text")
    search.add_argument("--json", action="store_true")
