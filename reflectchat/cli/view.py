"""`reflectchat view`: show tagged text from any source exactly as `ask` would.

Never imports llama_cpp: viewing text needs no model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reflectchat.cli.errors import CliError
from reflectchat.cli.jsonout import to_json
from reflectchat.core.reply import result_from_text

EXIT_USAGE = 2


def read_source(name: str) -> str:
    if name == "-":
        if sys.stdin.isatty():
            raise CliError("nothing to view: give a FILE or pipe text in", EXIT_USAGE)
        return sys.stdin.read()
    path = Path(name)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CliError(f"{path}: no such file", EXIT_USAGE) from None
    except IsADirectoryError:
        raise CliError(f"{path} is a directory: give a text file", EXIT_USAGE) from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", EXIT_USAGE) from None
    return data.decode("utf-8", "replace")


def run_view(args: argparse.Namespace) -> int:
    text = read_source(args.file)
    result = result_from_text(text)
    if args.json:
        body = result.to_dict()
        for key in ("model", "finish_reason", "stats"):
            body.pop(key)
        print(to_json(body))
        return 0
    on_terminal = sys.stdout.isatty()
    show = (args.reasoning or ("show" if on_terminal else "hide")) == "show"
    if on_terminal:
        from rich.console import Console

        from reflectchat.cli.render import render_parsed

        render_parsed(
            Console(highlight=False, markup=False, emoji=False), result.parsed, show_reasoning=show
        )
    else:
        from reflectchat.cli.plain import write_plain

        write_plain(sys.stdout, result.parsed, show_reasoning=show)
    return 0
