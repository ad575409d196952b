"""`reflectchat view`: show a reply from any source exactly as `ask` would: raw text, an
OpenAI-compatible JSON response or a captured SSE stream (decoded by core/reply/wire.py).

Never imports llama_cpp: viewing text needs no model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reflectchat.cli.errors import CliError
from reflectchat.core.chat.export import to_json
from reflectchat.core.errors import EXIT_FAILURE, EXIT_USAGE
from reflectchat.core.reply.sanitize import strip_controls
from reflectchat.core.reply.wire import choose_format, decode_pasted, parse_pasted
from reflectchat.core.units import MiB, format_bytes

# Text to view is a reply, not a disk image: a bound keeps `view /dev/zero` from eating memory.
MAX_INPUT_BYTES = 16 * MiB
_LIMIT = format_bytes(MAX_INPUT_BYTES, "MiB", digits=0)  # "16 MiB"


def decode_input(data: bytes) -> str:
    """Bytes from a pipe or file as text. Invalid UTF-8 becomes U+FFFD: never surrogates, which
    would carry raw bytes such as 0x9b (8-bit CSI) back out to the terminal."""
    return data.decode("utf-8", "replace")


def read_stdin_text(what: str = "the input") -> str:
    """All of stdin as text (at most MAX_INPUT_BYTES), for `view` and `ask`'s piped prompt.

    Raises CliError (exit 2) with one line when stdin is closed, unreadable or too large."""
    if sys.stdin is None:
        raise CliError(f"{what} is closed: pipe text in or give it as an argument", EXIT_USAGE)
    stream = getattr(sys.stdin, "buffer", None)
    try:
        if stream is None:  # a text stream put in place of stdin (embedding, tests)
            data = sys.stdin.read(MAX_INPUT_BYTES + 1).encode("utf-8", "surrogateescape")
        else:
            data = stream.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise CliError(f"cannot read {what}: {exc.strerror or exc}", EXIT_USAGE) from None
    if len(data) > MAX_INPUT_BYTES:
        raise CliError(f"{what} is larger than {_LIMIT}: give at most {_LIMIT} of text", EXIT_USAGE)
    return decode_input(data)


def read_source(name: str) -> str:
    if name == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise CliError("nothing to view: give a FILE or pipe text in", EXIT_USAGE)
        return read_stdin_text("standard input")
    path = Path(name)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError:
        raise CliError(f"{path}: no such file", EXIT_USAGE) from None
    except IsADirectoryError:
        raise CliError(f"{path} is a directory: give a text file", EXIT_USAGE) from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    if len(data) > MAX_INPUT_BYTES:
        raise CliError(
            f"{path} is larger than {_LIMIT}: view shows at most {_LIMIT} of text", EXIT_USAGE
        )
    return decode_input(data)


def run_view(args: argparse.Namespace) -> int:
    text = read_source(args.file)
    pasted = decode_pasted(text)
    if pasted.error and not pasted.pieces and not pasted.tool_calls:
        raise CliError(f"the pasted response is the server's error: {pasted.error}", EXIT_FAILURE)
    detection = choose_format(pasted, getattr(args, "format", None))
    parsed = parse_pasted(pasted, detection)
    if args.json:
        body = parsed.to_dict()
        if pasted.model:
            body["model"] = pasted.model
        if pasted.finish_reason:
            body["finish_reason"] = pasted.finish_reason
        if pasted.error:
            body["error"] = pasted.error
        body["input"] = {
            "kind": pasted.kind,
            "format_reason": detection.reason,
            "skipped_lines": pasted.skipped,
        }
        print(to_json(body))
        return 0
    on_terminal = sys.stdout.isatty()
    show = (args.reasoning or ("show" if on_terminal else "hide")) == "show"
    if on_terminal:
        from rich.console import Console

        from reflectchat.cli.render import render_parsed

        render_parsed(
            Console(highlight=False, markup=False, emoji=False), parsed, show_reasoning=show
        )
    else:
        from reflectchat.cli.plain import write_plain

        write_plain(sys.stdout, parsed, show_reasoning=show)
    _notes(pasted.skipped, pasted.finish_reason, pasted.error)
    return 0


def _notes(skipped: int, finish_reason: str | None, error: str | None) -> None:
    """What the reader should know about the pasted stream, one line each on stderr."""
    notes = []
    if skipped:
        lines = "line" if skipped == 1 else "lines"
        notes.append(f"skipped {skipped} {lines} of the stream that held no event")
    if finish_reason == "length":
        notes.append("the reply was cut off by its token limit (finish_reason: length)")
    if error:
        notes.append(f"the stream ended with the server's error: {error}")
    for note in notes:
        print(f"reflectchat: note: {' '.join(strip_controls(note).split())}", file=sys.stderr)
