"""`reflectchat eval`: does reflection help this model? Accuracy with error bars, and what the
thinking costs, per model × condition × suite (core/eval has the logic; this is flags, the
progress bar, the table and the files)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NoReturn

from reflectchat.cli.errors import report_error
from reflectchat.cli.limits import gpu_layers_flag, number_flag, whole_number_flag
from reflectchat.core.errors import EXIT_INTERRUPTED, EXIT_USAGE, ReflectchatError, UsageError

DEFAULT_N = 20
MAX_N = 100_000
DEFAULT_SEED = 0


class _EvalParser(argparse.ArgumentParser):
    """Usage errors as one line, like every other error (see cli/main.py's parser)."""

    def error(self, message: str) -> NoReturn:
        report_error(f"{message} (see: {self.prog} --help)")
        raise SystemExit(EXIT_USAGE)


def build_eval_parser() -> argparse.ArgumentParser:
    p = _EvalParser(
        prog="reflectchat eval",
        description=(
            "Run generated test suites with exact answers (or your own items) under several "
            "conditions — by default 'reflect' (the model's reasoning prompt and format) and "
            "'plain' (no reflection prompt, no format grammar) — and report accuracy with a 95% "
            "Wilson interval, thinking tokens, reflections, and time, per model, condition and "
            "suite. Each item is a fresh single-turn session; nothing goes to the history "
            "unless --save."
        ),
    )
    p.add_argument(
        "-m", "--model", action="append", metavar="SPEC",
        help="a model (repeat to compare models or quantizations); default: the default model",
    )  # fmt: skip
    p.add_argument(
        "--suite", action="append", metavar="NAME",
        help="letters, decimals, aiw or arith (repeatable; default: all four, or none with --file)",
    )  # fmt: skip
    p.add_argument(
        "--file", action="append", type=Path, metavar="ITEMS.jsonl",
        help='your items: one {"prompt": …, "answer": …} a line, optional "checker" '
        '(exact, number, choice, yesno) and "choices"',
    )  # fmt: skip
    p.add_argument(
        "-n", type=_item_count, default=DEFAULT_N, metavar="N",
        help=f"items per built-in suite (default {DEFAULT_N})",
    )  # fmt: skip
    p.add_argument(
        "--condition", action="append", metavar="NAME[=FLAGS]",
        help="a condition to run: 'reflect', 'plain', or NAME=\"--temperature 0 --no-system …\" "
        "(ask's prompt and sampling flags); repeatable; replaces the default pair",
    )  # fmt: skip
    add_generation_flags(p)
    p.add_argument("--ctx", type=whole_number_flag("context"), metavar="N", help="context size")
    p.add_argument("--threads", type=whole_number_flag("threads"), metavar="N", help="CPU threads")
    p.add_argument("--gpu-layers", type=gpu_layers_flag, metavar="N|all|auto")
    p.add_argument("--force", action="store_true", help="load a model even if it looks too big")
    p.add_argument("--rpc", metavar="HOST:PORT,…", help="llama.cpp rpc-server machines")
    p.add_argument(
        "--endpoint", metavar="URL|NAME",
        help="a remote OpenAI-compatible server; -m then names its models",
    )  # fmt: skip
    p.add_argument("--api-key-env", metavar="VAR", help="variable holding the endpoint's API key")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument(
        "--out", type=Path, metavar="FILE.jsonl",
        help="write every item (prompt, raw reply, answer read, verdict) as a JSON line",
    )  # fmt: skip
    p.add_argument(
        "--resume", type=Path, metavar="FILE.jsonl",
        help="continue a run: skip the items FILE already scored, and append to it",
    )  # fmt: skip
    p.add_argument(
        "--save", action="store_true", help="also save each exchange to the chat history"
    )
    return p


def run_eval_argv(argv: Sequence[str], *, debug: bool = False) -> int:
    """`reflectchat eval ARGS…`: main.py hands the words over unparsed, so this module (and
    what it imports) loads only when eval runs."""
    args = build_eval_parser().parse_args(list(argv))
    args.debug = debug
    return run_eval(args)


def _item_count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_N:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_N}, got '{text}'")
    return n


def add_generation_flags(p: argparse.ArgumentParser) -> None:
    """The prompt and sampling flags: for the whole run, and inside --condition NAME=FLAGS."""
    system = p.add_mutually_exclusive_group()
    system.add_argument("--system", metavar="TEXT", help="replace the model's system prompt")
    system.add_argument("--no-system", action="store_true", default=None, help="no system prompt")
    p.add_argument("--temperature", type=number_flag("temperature"), metavar="T")
    p.add_argument("--top-p", type=number_flag("top_p"), metavar="P")
    p.add_argument(
        "--seed", type=whole_number_flag("seed"), metavar="S",
        help=f"picks the items and the sampling seed (default {DEFAULT_SEED})",
    )  # fmt: skip
    p.add_argument("--max-tokens", type=whole_number_flag("max_tokens"), metavar="N")
    p.add_argument(
        "--strict-format", action=argparse.BooleanOptionalAction, default=None,
        help="constrain decoding to <thinking>…</thinking><output>…</output>",
    )  # fmt: skip
    p.add_argument("--think", choices=("on", "off"), help="thinking on or off (the model's switch)")
    p.add_argument(
        "--think-budget", type=whole_number_flag("think_budget"), metavar="N",
        help="end the thinking after N tokens and answer",
    )  # fmt: skip
    p.add_argument("--effort", choices=("low", "medium", "high"), help="thinking effort")


# -- conditions ------------------------------------------------------------------------------

# --condition flags -> SessionOptions fields (what a condition may change: prompt and sampling)
_CONDITION_FIELDS = {
    "system": "system",
    "no_system": "no_system",
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "max_tokens": "max_tokens",
    "strict_format": "strict_format",
    "think": "think",
    "think_budget": "think_budget",
    "effort": "effort",
}


class _ConditionParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise UsageError(message)


def parse_conditions(specs: Sequence[str] | None) -> list[Any]:
    """--condition NAME[=FLAGS] values as core Conditions (the default pair when none)."""
    from reflectchat.core.eval.runner import Condition, builtin_conditions, condition_settings

    if not specs:
        return builtin_conditions()
    conditions: list[Condition] = []
    for spec in specs:
        name, has_flags, flags = spec.partition("=")
        name = name.strip()
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise UsageError(f"--condition '{spec}': give NAME or NAME=FLAGS (a name of letters, "
                             "digits, - and _)")  # fmt: skip
        if any(c.name == name for c in conditions):
            raise UsageError(f"--condition {name} is given twice")
        settings = dict(condition_settings(name) or {})
        if not has_flags and condition_settings(name) is None:
            raise UsageError(f"--condition {name}: not a built-in (reflect, plain); give its "
                             f'flags: --condition {name}="--temperature 0"')  # fmt: skip
        settings.update(_condition_flags(name, flags))
        conditions.append(Condition(name, settings))
    return conditions


def _condition_flags(name: str, flags: str) -> dict[str, Any]:
    parser = _ConditionParser(prog=f"--condition {name}", add_help=False)
    add_generation_flags(parser)
    try:
        words = shlex.split(flags)
        parsed = parser.parse_args(words)
    except ValueError as exc:  # shlex: an unclosed quote
        raise UsageError(f"--condition {name}: {exc}") from None
    except UsageError as exc:
        raise UsageError(f"--condition {name}: {exc} (flags: --system, --no-system, "
                         "--temperature, --top-p, --seed, --max-tokens, "
                         "--[no-]strict-format, --think, --think-budget, "
                         "--effort)") from None  # fmt: skip
    settings = {
        field: getattr(parsed, flag)
        for flag, field in _CONDITION_FIELDS.items()
        if getattr(parsed, flag) is not None
    }
    if settings.get("system") is not None:
        settings["no_system"] = False
    if settings.get("no_system"):
        settings["system"] = None
    if settings.get("seed") == -1:
        settings["seed"] = None
    if "think" in settings:
        settings["think"] = settings["think"] == "on"
    return settings


# -- the run ---------------------------------------------------------------------------------


def run_eval(args: argparse.Namespace) -> int:
    from reflectchat.cli.ask import cancel_on_signals
    from reflectchat.cli.options import apply_config, session_options
    from reflectchat.core.engine.base import CancelToken
    from reflectchat.core.eval.runner import EvalRun, record_key

    models: list[str | None] = list(args.model or [])
    twice = next((m for i, m in enumerate(models) if m in models[:i]), None)
    if twice is not None:
        raise UsageError(f"-m {twice} is given twice")
    _prepare(args)
    apply_config(args)
    if not models:
        models = [args.model]  # the configured default model (None: the catalog's)
    args.model = None
    items = _items(args)
    conditions = parse_conditions(args.condition)
    out_path = args.out or args.resume
    if out_path is not None and any(_same_file(out_path, f) for f in args.file or ()):
        raise UsageError(f"--out {out_path} is an items file of this run; write elsewhere")
    earlier = read_records(args.resume) if args.resume else []
    wanted = {(c.name, i.id) for c in conditions for i in items}
    resumed = [r for r in earlier if (r["condition"], r["id"]) in wanted]
    if earlier and not resumed:
        print(f"reflectchat: none of the {len(earlier)} items in {args.resume} belong to this run "
              "(another --seed, --suite, --file or --condition?); starting afresh, keeping them",
              file=sys.stderr)  # fmt: skip
    base = session_options(args)
    base.seed = args.seed if args.seed is not None else DEFAULT_SEED
    base.no_save = True
    store = _open_store() if args.save else None

    cancel = CancelToken()
    run = EvalRun(
        base,
        conditions,
        items,
        done={record_key(r) for r in resumed},
        cancel=cancel,
        store=store,
        load=_loader(args),
    )
    total = len(models) * len(conditions) * len(items)
    interrupted = False
    error: ReflectchatError | None = None
    with _out_file(out_path, earlier) as out, _progress(total, len(resumed)) as progress:

        def on_record(record: dict[str, Any]) -> None:
            if out is not None:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                out.flush()  # what was scored survives a Ctrl+C or a crash: --resume reads it
            progress.advance(record)

        run.on_record = on_record
        run.on_model = progress.loading
        with cancel_on_signals(cancel) as stopped:
            try:
                run.run(models)
            except KeyboardInterrupt:  # a second Ctrl+C: stop now, still report what's done
                interrupted = True
            except ReflectchatError as exc:  # e.g. the second model fails to load
                error = exc
        interrupted = interrupted or cancel.cancelled
    # what was resumed, for this run's models (a local model's name is its -m; a served or
    # default one's is known once it has loaded)
    labels = {*run.labels, *(m for m in models if m and args.endpoint is None)}
    records = [*(r for r in resumed if r["model"] in labels), *run.records]
    if records or not error:
        _report(args, records, interrupted=interrupted, out_path=out_path)
    if error is not None:
        raise error
    if interrupted:
        done, left = len(records), max(0, total - len(records))
        hint = f"; continue with --resume {out_path}" if out_path else " (use --out to keep them)"
        print(f"reflectchat: interrupted: {done} of {total} items scored, {left} left{hint}",
              file=sys.stderr)  # fmt: skip
        return stopped.exit_code or EXIT_INTERRUPTED
    return 0


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _prepare(args: argparse.Namespace) -> None:
    """What apply_config expects of ask's flags, for the ones eval doesn't have."""
    args.model = None
    for name in ("reasoning", "keep_reasoning", "conversation", "preset"):
        setattr(args, name, None)
    if args.resume is not None and args.out is not None and args.out == args.resume:
        args.out = None


def _items(args: argparse.Namespace) -> list[Any]:
    from reflectchat.core.eval.suites import SUITES, generate, load_file

    seed = args.seed if args.seed is not None and args.seed >= 0 else DEFAULT_SEED
    suites = args.suite or ([] if args.file else list(SUITES))
    items = []
    for suite in dict.fromkeys(suites):
        items.extend(generate(suite, args.n, seed))
    for path in args.file or ():
        items.extend(load_file(path))
    ids = [i.id for i in items]
    if len(set(ids)) != len(ids):
        raise UsageError("two --file arguments name files with the same name; rename one")
    return items


def _loader(args: argparse.Namespace) -> Callable[[Any, Any], Any]:
    from reflectchat.cli.scripted_hook import scripted_backend_from_env  # tests, benchmarks
    from reflectchat.core.engine.llama import LLAMA_LOG
    from reflectchat.core.eval.runner import Loaded, load_model

    LLAMA_LOG.echo = bool(args.debug)

    def load(options: Any, progress: Any = None) -> Any:
        scripted = scripted_backend_from_env()
        if scripted is not None:
            return Loaded(scripted, None, options.model or "scripted")
        return load_model(options, progress)

    return load


def _open_store() -> Any:
    from reflectchat.core.chat.store import Store

    try:
        return Store()
    except ReflectchatError as exc:
        raise ReflectchatError(f"{exc} (or run without --save)") from exc


# -- files -----------------------------------------------------------------------------------

_RECORD_KEYS = ("model", "condition", "suite", "id", "correct", "extracted", "reflections",
                "thinking_tokens", "completion_tokens", "seconds", "tokens_per_second",
                "changed_by_reflection")  # fmt: skip


def read_records(path: Path) -> list[dict[str, Any]]:
    """The scored items of an earlier run's --out file. A last line cut short (the run was
    killed while writing it) is dropped; any other bad line is an error naming it."""
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        raise UsageError(
            f"--resume {path}: no such file (start the run with --out {path})"
        ) from None
    except OSError as exc:
        raise UsageError(f"--resume {path}: cannot read it: {exc.strerror or exc}") from None
    lines = text.split("\n")
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not all(k in record for k in _RECORD_KEYS):
                raise ValueError("not an eval record")
        except ValueError:
            if number == len(lines):  # the unfinished last line: redone
                break
            raise UsageError(f"--resume {path} line {number} is not a record of "
                             "`reflectchat eval --out`") from None  # fmt: skip
        records.append(record)
    return records


@contextmanager
def _out_file(path: Path | None, earlier: list[dict[str, Any]]) -> Iterator[IO[str] | None]:
    """The --out file, starting with the records of the run resumed (all of them, so the
    file stays whole; a line cut short by a kill is left out). Resuming in place rewrites the
    file first, atomically, so a crash now loses nothing that was scored."""
    if path is None:
        yield None
        return
    try:
        partial = path.with_name(path.name + ".partial")
        with partial.open("w", encoding="utf-8") as f:
            for record in earlier:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(partial, path)
        out = path.open("a", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    with out:
        yield out


# -- progress and results ----------------------------------------------------------------------


class _Progress:
    """A progress bar with ETA on stderr when it is a terminal; nothing otherwise."""

    def __init__(self, total: int, done: int) -> None:
        self.total, self.done = total, done
        self._bar: Any = None
        self._task: Any = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            console = Console(stderr=True, highlight=False, markup=False, emoji=False)
            self._bar = Progress(
                TextColumn("{task.description}", markup=False),  # model names are untrusted
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self._task = self._bar.add_task("starting", total=total, completed=done)

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def loading(self, model: str) -> None:
        self._describe(f"loading {model}")

    def advance(self, record: dict[str, Any]) -> None:
        self.done += 1
        if self._bar is not None:
            self._describe(f"{record['model']} · {record['condition']} · {record['suite']}")
            self._bar.advance(self._task)

    def _describe(self, text: str) -> None:
        from reflectchat.core.reply.sanitize import strip_controls

        if self._bar is not None:
            self._bar.update(self._task, description=" ".join(strip_controls(text).split()))


def _progress(total: int, done: int) -> _Progress:
    return _Progress(total, done)


def _report(
    args: argparse.Namespace,
    records: list[dict[str, Any]],
    *,
    interrupted: bool,
    out_path: Path | None,
) -> None:
    from reflectchat.core.eval.stats import ALL_SUITES, compare, summarize

    rows = summarize(records)
    comparisons = compare(rows)
    if args.json:
        from reflectchat.core.chat.export import to_json

        print(
            to_json(
                {
                    "conditions": [r.to_dict() for r in rows],
                    "comparisons": [c.to_dict() for c in comparisons],
                    "items_scored": len(records),
                    "seed": args.seed if args.seed is not None else DEFAULT_SEED,
                    "interrupted": interrupted,
                    "out": str(out_path) if out_path else None,
                }
            )
        )
        return
    from reflectchat.cli.tables import Column, print_table

    # Short headers, so the table fits 100 columns (the README explains each one).
    columns = [
        Column("model", wrap=True, overflow="fold"),
        Column("condition"),
        Column("suite"),
        *(Column(name, right=True) for name in
          ("n", "acc", "95% CI", "think", "refl", "changed", "unparsed", "s", "tok/s")),
    ]  # fmt: skip
    print_table(columns, [table_row(r) for r in rows])
    if sys.stdout.isatty():  # (a pipe gets the table alone, tab-separated; --json has them)
        suites = {c.suite for c in comparisons}
        for c in comparisons:
            if ALL_SUITES in suites and c.suite != ALL_SUITES:
                continue  # several suites: the overall differences only
            print(comparison_line(c))
    if interrupted:
        print("(partial: the run was interrupted)")


def comparison_line(c: Any) -> str:
    """ "reflect − plain on smollm2, all suites: −5 points (95% CI −20 to +10)"."""
    from reflectchat.core.reply.sanitize import strip_controls

    if c.model == c.versus_model:
        what = f"{c.condition} − {c.versus_condition} on {c.model}"
    else:
        what = f"{c.model} − {c.versus_model} under {c.condition}"
    suite = "all suites" if c.suite == "all" else c.suite
    low, high = (round(x * 100) for x in c.ci95)
    line = (
        f"{what}, {suite}: {_signed(round(c.difference * 100))} points "
        f"(95% CI {_signed(low)} to {_signed(high)})"
    )
    return " ".join(strip_controls(line).split())  # model names come from servers too


def _signed(points: int) -> str:
    return f"+{points}" if points > 0 else f"−{-points}" if points < 0 else "0"


def table_row(s: Any) -> list[str]:
    changed = "–" if s.changed_by_reflection is None else f"{s.changed_by_reflection:.0%}"
    return [
        s.model,
        s.condition,
        s.suite,
        str(s.n),
        f"{s.accuracy:.0%}",
        f"{s.ci95[0] * 100:.0f}–{s.ci95[1]:.0%}",
        f"{s.mean_thinking_tokens:.0f}",
        f"{s.mean_reflections:.2f}",
        changed,
        str(s.unparsed),
        f"{s.mean_seconds:.1f}",
        f"{s.tokens_per_second:.0f}",
    ]
