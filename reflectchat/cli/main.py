"""`reflectchat` command line: argument parsing and dispatch.

Heavy imports (llama_cpp, rich, textual) happen inside the commands that need them, so
`--help`, `--version` and `view` stay fast and never load llama.cpp.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from reflectchat import __version__
from reflectchat.cli.errors import SignalExit, report_error
from reflectchat.cli.limits import gpu_layers_flag, number_flag, whole_number_flag
from reflectchat.core.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    ReflectchatError,
)
from reflectchat.core.reply.format_catalog import BY_NAME

FORMAT_NAMES = tuple(BY_NAME)


def _conversation_id(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a conversation number, got '{text}'") from None


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other error, pointing at the right --help."""

    def error(self, message: str) -> NoReturn:
        report_error(f"{message} (see: {self.prog} --help)")
        raise SystemExit(EXIT_USAGE)


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The model, sampling, loading and history flags `ask` and `chat` share."""
    p.add_argument("-m", "--model", metavar="SPEC", help="catalog alias or path to a .gguf")
    system = p.add_mutually_exclusive_group()
    system.add_argument("--system", metavar="TEXT", help="replace the model's system prompt")
    system.add_argument("--no-system", action="store_true", help="send no system prompt")
    p.add_argument(
        "--preset",
        metavar="NAME",
        help="a writing preset added to the system prompt: email, essay, summary, proofread, "
        "explain, or one of yours (reflectchat presets lists them)",
    )
    p.add_argument("--temperature", type=number_flag("temperature"), metavar="T")
    p.add_argument("--top-p", type=number_flag("top_p"), metavar="P")
    p.add_argument(
        "--seed",
        type=whole_number_flag("seed"),
        metavar="N",
        help="fix sampling for repeatable output (-1: random)",
    )
    p.add_argument(
        "--max-tokens", type=whole_number_flag("max_tokens"), metavar="N", help="default 1024"
    )
    p.add_argument(
        "--ctx", type=whole_number_flag("context"), metavar="N", help="context size in tokens"
    )
    p.add_argument("--threads", type=whole_number_flag("threads"), metavar="N", help="CPU threads")
    p.add_argument(
        "--gpu-layers",
        type=gpu_layers_flag,
        metavar="N|all|auto",
        help="layers to offload (auto: all when this build supports GPU offload, else 0)",
    )
    p.add_argument(
        "--strict-format",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="constrain decoding to <thinking>…</thinking><output>…</output> "
        "(on by default for the demo model)",
    )
    p.add_argument(
        "--format",
        dest="reasoning_format",
        choices=FORMAT_NAMES,
        metavar="NAME",
        help="the reasoning format of the model's replies, instead of the detected one "
        "(`reflectchat formats` lists them)",
    )
    p.add_argument(
        "--think-budget",
        type=whole_number_flag("think_budget"),
        metavar="N",
        help="end the thinking after N tokens and answer (0: answer without thinking)",
    )
    p.add_argument(
        "--think",
        choices=("on", "off"),
        help="thinking on or off, through the model's own switch where it has one",
    )
    p.add_argument(
        "--effort", choices=("low", "medium", "high"), help="thinking effort, where supported"
    )
    p.add_argument(
        "--reasoning",
        choices=("show", "hide"),
        help="show or hide thinking and reflections (ask's default: show on a terminal, hide "
        "piped)",
    )
    p.add_argument(
        "--force", action="store_true", help="load the model even if it looks too big to fit"
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "-c",
        "--continue",
        dest="continue_last",
        action="store_true",
        help="continue the most recent conversation",
    )
    which.add_argument(
        "--conversation", type=_conversation_id, metavar="ID", help="continue conversation ID"
    )
    p.add_argument("--no-save", action="store_true", help="don't save this conversation")
    p.add_argument(
        "--keep-reasoning",
        action="store_true",
        default=None,
        help="send earlier replies back whole, thinking included (default: answers only)",
    )
    p.add_argument(
        "--endpoint",
        metavar="URL|NAME",
        help="use a remote OpenAI-compatible server (vLLM, llama-server, …) instead of a local "
        "model; -m then names the server's model",
    )
    p.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="environment variable holding the endpoint's API key (default OPENAI_API_KEY)",
    )
    p.add_argument(
        "--rpc",
        metavar="HOST:PORT,…",
        help="spread the model's layers over llama.cpp rpc-server machines (needs a "
        "-DGGML_RPC=on build)",
    )


# The commands whose parsers live in their own modules (with those modules' imports).
_MODULE_COMMANDS = ("chat", "history", "models", "config", "doctor", "bench")
_COMMANDS = ("ask", *_MODULE_COMMANDS, "eval", "presets", "view", "formats")


def _command_word(argv: Sequence[str]) -> str | None:
    """The command the words name, if it is one (the top level's options take no values)."""
    for word in argv:
        if word == "--":
            break
        if not word.startswith("-"):
            return word if word in _COMMANDS else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Every command's parser; given the words, only the parser of the command they name, so
    `ask` doesn't import the history, models and config modules just to describe them (cold
    start: issue 12). Unknown or no command: all of them, for help and the usage error."""
    only = _command_word(argv) if argv is not None else None

    def wanted(*names: str) -> bool:
        return only is None or only in names

    parser = _Parser(
        prog="reflectchat",
        description=(
            "Chat with local reasoning models (Reflection-Llama-3.1-70B and others) and see "
            "their thinking, their reflections and their answer apart."
        ),
    )
    parser.add_argument("--version", action="version", version=f"reflectchat {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and llama.cpp logs")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    ask = commands.add_parser(
        "ask",
        help="answer one prompt and exit",
        description="Answer one prompt with a local GGUF model, showing its reasoning apart.",
    )
    ask.add_argument(
        "prompt", nargs="?", help="the prompt; '-' or omitted with piped input reads stdin"
    )
    add_model_options(ask)
    ask.add_argument(
        "-a",
        "--attach",
        action="append",
        metavar="FILE",
        help="add a text file to the prompt (repeatable); piped text is added too",
    )
    ask.add_argument("--json", action="store_true", help="print one JSON object with everything")

    if wanted("chat"):
        from reflectchat.cli.chat_cmd import add_chat_parser

        add_chat_parser(commands, add_model_options)
    if wanted("history"):
        from reflectchat.cli.history import add_history_parser

        add_history_parser(commands, _Parser)
    if wanted("models"):
        from reflectchat.cli.models import add_models_parser

        add_models_parser(commands, _Parser)
    if wanted("config"):
        from reflectchat.cli.config_cmd import add_config_parser

        add_config_parser(commands, _Parser)
    if wanted("doctor", "bench"):
        from reflectchat.cli.tools import add_tool_parsers

        add_tool_parsers(commands)
    # eval parses its own flags (cli/eval_cmd.py): its module is imported only when it runs
    eval_cmd = commands.add_parser(
        "eval",
        help="measure accuracy with and without reflection, with 95%% error bars",
        add_help=False,
        prefix_chars="\0",
    )
    eval_cmd.add_argument("eval_argv", nargs="*")  # fmt: skip
    presets = commands.add_parser(
        "presets",
        help="list the writing presets (--preset NAME)",
        description="List the built-in writing presets and the config file's [presets.NAME].",
    )
    presets.add_argument("--json", action="store_true", help="print them as JSON")

    view = commands.add_parser(
        "view",
        help="show tagged text from any source the way ask does",
        description="Parse a reasoning model's reply (raw text, an OpenAI-compatible JSON "
        "response or a captured SSE stream; a file, or stdin) and show it like ask.",
    )
    view.add_argument("file", nargs="?", default="-", help="a text file, or '-' for stdin")
    view.add_argument("--json", action="store_true", help="print the parsed sections as JSON")
    view.add_argument("--reasoning", choices=("show", "hide"))
    view.add_argument(
        "--format",
        metavar="NAME",
        help="the reasoning format (reflectchat formats lists them; default: from the pasted "
        "response's model name, else from the text)",
    )
    formats = commands.add_parser(
        "formats",
        help="list the reasoning formats (--format NAME) and how each is recognised",
        description="List every known reasoning format: who writes it, what it looks like, "
        "and how it is recognised (chat template, special tokens, model name, text).",
    )
    formats.add_argument("--json", action="store_true", help="print them as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if sys.stdout is None:  # started with stdout closed (`>&-`): Python gives no stream at all
        report_error(
            "standard output is closed; run with it open (use >/dev/null to discard the output)"
        )
        return EXIT_FAILURE
    if args.command is None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            parser.print_help()  # no terminal to draw the app on
            return EXIT_OK
        args = parser.parse_args([*argv, "chat"])  # no arguments: open the chat app
    try:
        code = _dispatch(args)
        if code is not None:
            return code
    except ReflectchatError as exc:  # the one place errors become exit codes
        report_error(str(exc), debug=args.debug)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # also a second SIGTERM/SIGHUP (SignalExit)
        if isinstance(exc, SignalExit):
            print(f"\nreflectchat: {exc}", file=sys.stderr)
            return exc.exit_code
        print("\nreflectchat: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_broken_pipe()
        return EXIT_FAILURE
    except Exception as exc:  # the last line of defence: one line, never a traceback
        report_error(
            f"unexpected error: {type(exc).__name__}: {exc} (run with --debug for details)",
            debug=args.debug,
        )
        return EXIT_FAILURE
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


def _dispatch(args: argparse.Namespace) -> int | None:
    if args.command == "chat":
        from reflectchat.cli.chat_cmd import run_chat

        return run_chat(args)
    if args.command == "ask":
        from reflectchat.cli.ask import run_ask

        return run_ask(args)
    if args.command == "models":
        from reflectchat.cli.models import run_models

        return run_models(args)
    if args.command == "config":
        from reflectchat.cli.config_cmd import run_config

        return run_config(args)
    if args.command == "doctor":
        from reflectchat.cli.tools import run_doctor

        return run_doctor(args)
    if args.command == "bench":
        from reflectchat.cli.tools import run_bench

        return run_bench(args)
    if args.command == "history":
        from reflectchat.cli.history import run_history

        return run_history(args)
    if args.command == "eval":
        from reflectchat.cli.eval_cmd import run_eval_argv

        return run_eval_argv(args.eval_argv, debug=args.debug)
    if args.command == "presets":
        from reflectchat.cli.presets_cmd import run_presets

        return run_presets(args)
    if args.command == "view":
        from reflectchat.cli.view import run_view

        return run_view(args)
    if args.command == "formats":
        from reflectchat.cli.formats_cmd import run_formats

        return run_formats(args)
    return None


def _silence_broken_pipe() -> None:
    # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
