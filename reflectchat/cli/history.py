"""`reflectchat history`: list, show, export, rm and search stored conversations."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from reflectchat.cli.errors import CliError
from reflectchat.cli.jsonout import to_json
from reflectchat.core.chat.store import Conversation, ConversationNotFound, Store, StoreError
from reflectchat.core.reply.sanitize import escape_controls, strip_controls
from reflectchat.core.reply.sections import parse

EXIT_USAGE = 2


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
                store.delete_conversation(args.id)
                print(f"deleted conversation {args.id}", file=sys.stderr)
                return 0
            if action == "search":
                return _search(store, args)
        except ConversationNotFound as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc
        except StoreError as exc:
            raise CliError(str(exc)) from exc
    raise CliError("say what to do: reflectchat history list|show|export|rm|search", EXIT_USAGE)


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _list(store: Store, args: argparse.Namespace) -> int:
    rows = store.list_conversations(limit=args.limit)
    if args.json:
        print(to_json({"conversations": [_summary_dict(s) for s in rows]}))
        return 0
    if not rows:
        print('no conversations yet: reflectchat ask "…" starts one', file=sys.stderr)
        return 0
    _table(
        ["id", "title", "model", "updated", "turns"],
        [[str(s.id), s.title, s.model or "", _when(s.updated_at), str(s.turns)] for s in rows],
    )
    return 0


def _search(store: Store, args: argparse.Namespace) -> int:
    hits = store.search(args.text)
    if args.json:
        print(to_json({"results": [{**_summary_dict(s), "snippet": snip} for s, snip in hits]}))
        return 0
    if not hits:
        print(f"nothing in the history matches '{strip_controls(args.text)}'", file=sys.stderr)
        return 0
    _table(
        ["id", "title", "updated", "match"],
        [[str(s.id), s.title, _when(s.updated_at), snip] for s, snip in hits],
    )
    return 0


def _table(header: list[str], rows: list[list[str]]) -> None:
    rows = [[" ".join(strip_controls(cell).split()) for cell in row] for row in rows]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(box=None, header_style="bold")
        for name in header:
            table.add_column(name, overflow="ellipsis", no_wrap=name != "title")
        for row in rows:
            table.add_row(*row)  # plain strings; markup is off on the console below
        Console(markup=False, highlight=False, emoji=False).print(table)
        return
    print("\t".join(header))
    for row in rows:
        print("\t".join(row))


def _summary_dict(s: Any) -> dict[str, Any]:
    return {
        "id": s.id,
        "title": s.title,
        "model": s.model,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "turns": s.turns,
    }


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
            continue
        console.print()
        render_parsed(console, parse(message.content), show_reasoning=show)
        if message.finish_reason and message.finish_reason != "stop":
            label = {"cancelled": "cancelled", "length": "stopped at the token limit"}
            reason = strip_controls(label.get(message.finish_reason, message.finish_reason))
            console.print(Text(f"({reason})", style="dim"))
    return 0


def _export(store: Store, args: argparse.Namespace) -> int:
    conversation = store.get_conversation(args.id)
    if args.format == "json":
        print(to_json(to_dict(conversation)))
    else:
        sys.stdout.write(to_markdown(conversation, details=True))
    return 0


def to_dict(conversation: Conversation) -> dict[str, Any]:
    messages = []
    for m in conversation.messages:
        item: dict[str, Any] = {"role": m.role, "content": m.content, "created_at": m.created_at}
        if m.role == "assistant":
            parsed = parse(m.content).to_dict()
            item.update(
                answer=parsed["answer"],
                thinking=parsed["thinking"],
                reflections=parsed["reflections"],
                sections=parsed["sections"],
                model=m.model,
                params=m.params,
                finish_reason=m.finish_reason,
                stats=m.stats,
            )
        messages.append(item)
    return {
        **_summary_dict(conversation.summary),
        "system_prompt": conversation.system_prompt,
        "messages": messages,
    }


def to_markdown(conversation: Conversation, *, details: bool = True) -> str:
    """Markdown with thinking and reflections in <details> blocks, which GitHub and most
    viewers fold. Stored text is quoted as it was, except that control characters (escape
    sequences, bidi overrides) are written visibly (␛, <U+202E>): the file is read with `cat`
    and `history show` pipes it, so nothing in it may act on a terminal."""
    s = conversation.summary
    out = [f"# {s.title}\n", f"*{s.model or 'unknown model'} · {_when(s.created_at)}*\n"]
    if conversation.system_prompt:
        out.append(
            f"<details><summary>System prompt</summary>\n\n{conversation.system_prompt}"
            "\n\n</details>\n"
        )
    for m in conversation.messages:
        if m.role == "user":
            out.append(f"## You\n\n{m.content.strip()}\n")
            continue
        parsed = parse(m.content)
        out.append("## Assistant\n")
        if details:
            for section in parsed.sections:
                if section.kind in ("thinking", "reflection") and section.text.strip():
                    label = "Thinking" if section.kind == "thinking" else "Reflection"
                    out.append(
                        f"<details><summary>{label}</summary>\n\n{section.text.strip()}"
                        "\n\n</details>\n"
                    )
        if parsed.answer:
            out.append(parsed.answer + "\n")
        if m.finish_reason and m.finish_reason != "stop":
            out.append(f"*({m.finish_reason})*\n")
    return escape_controls("\n".join(out))


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
