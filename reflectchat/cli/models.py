"""`reflectchat models`: list the catalog and the GGUF files on this machine, pull, rm."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reflectchat.cli.errors import CliError
from reflectchat.cli.tables import Column, print_table
from reflectchat.core.chat.export import to_json
from reflectchat.core.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from reflectchat.core.models.hub import HubError, PullPlan
from reflectchat.core.models.naming import guess_quant
from reflectchat.core.reply.sanitize import strip_controls
from reflectchat.core.units import format_bytes

SPEC_HELP = (
    "a catalog alias[:QUANT] (reflection-70b:q4_k_m), owner/repo:QUANT, "
    "or hf:owner/repo/path/file.gguf"
)


def add_models_parser(commands: Any, parser_class: type) -> None:
    models = commands.add_parser(
        "models",
        help="list, download and delete models",
        description="The model catalog, what is downloaded, and GGUF files other tools have.",
    )
    sub = models.add_subparsers(dest="models_command", metavar="ACTION", parser_class=parser_class)
    listing = sub.add_parser(
        "list",
        help="the catalog, what is downloaded, and GGUF files from other tools",
        description="The catalog with each quantization's size and whether it is downloaded, "
        "then GGUF files already on this machine (Hugging Face cache, LM Studio, Ollama, "
        "llama.cpp). Never touches the network.",
    )
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.add_argument(
        "--endpoint", metavar="URL|NAME", help="list a remote OpenAI-compatible server's models"
    )
    listing.add_argument("--api-key-env", metavar="VAR", help="the endpoint's API-key variable")
    pull = sub.add_parser(
        "pull",
        help="download a model into the Hugging Face cache",
        description="Download every file of a model (all parts of a split model) into the "
        "Hugging Face cache, checked against the Hub's sha256. An interrupted pull continues "
        "where it stopped. Gated models need HF_TOKEN.",
    )
    pull.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    rm = sub.add_parser(
        "rm",
        help="delete a downloaded model",
        description="Delete a model's files from the Hugging Face cache.",
    )
    rm.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    info = sub.add_parser(
        "info",
        help="what a GGUF is and whether it fits, from its header (weights are not loaded)",
        description="Architecture, parameters, quantization, context length, chat template, "
        "file size, and the memory it needs at a context size (KV cache included) against "
        "this machine.",
    )
    info.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    info.add_argument("--ctx", type=int, metavar="N", help="context size for the estimate")
    info.add_argument("--json", action="store_true")
    default = sub.add_parser("default", help="make SPEC the default model (in the config file)")
    default.add_argument("spec", metavar="SPEC", help=SPEC_HELP)


def run_models(args: argparse.Namespace) -> int:
    action = getattr(args, "models_command", None)
    try:
        if action in ("info", "default") or (action == "list" and args.endpoint):
            from reflectchat.cli.model_info import run_default, run_endpoint_list, run_info

            runner = {"info": run_info, "default": run_default, "list": run_endpoint_list}
            return runner[action](args)
        if action == "list":
            return _list(args)
        if action == "pull":
            return _pull(args)
        if action == "rm":
            return _rm(args)
    except HubError as exc:
        code = EXIT_USAGE if exc.kind in ("spec", "not_found") else EXIT_FAILURE
        raise CliError(str(exc), code) from exc
    raise CliError("say what to do: reflectchat models list|pull|rm|info|default", EXIT_USAGE)


# --- list -----------------------------------------------------------------------------------------


def catalog_rows() -> list[dict[str, Any]]:
    """Every catalog quantization, and where it is on disk (the cache only; no network)."""
    from reflectchat.core.models.resolve import (
        EMBEDDED_FILE,
        ModelNotFoundError,
        embedded_model_path,
        load_catalog,
        resolve_model,
        split_parts,
    )

    rows: list[dict[str, Any]] = []
    for entry in load_catalog().values():
        if entry.embedded:
            path = embedded_model_path()
            size = path.stat().st_size if path else None
            rows.append(
                _row(entry, guess_quant(EMBEDDED_FILE), True, size, None, path, embedded=True)
            )
            continue
        for quant in entry.quants.values():
            try:
                path = resolve_model(f"{entry.alias}:{quant.name}").path
            except ModelNotFoundError:
                path = None
            parts = split_parts(path) if path else []
            size_gb = int(quant.size_gb * 1e9) if quant.size_gb else None
            on_disk = sum(p.stat().st_size for p in parts) if parts else None
            default = quant.name == (entry.default_quant or "").upper()
            row = _row(entry, quant.name, default, size_gb, on_disk, path)
            row["repo"] = quant.repo or entry.repo
            row["parts"] = [str(p) for p in parts]
            rows.append(row)
    return rows


def _row(
    entry: Any,
    quant: str | None,
    default: bool,
    size: int | None,
    on_disk: int | None,
    path: Path | None,
    *,
    embedded: bool = False,
) -> dict[str, Any]:
    return {
        "alias": entry.alias,
        "name": entry.name,
        "quant": quant,
        "default": default,
        "size_bytes": size,
        "downloaded": path is not None,
        "embedded": embedded,
        "size_on_disk": size if embedded and path else on_disk,
        "path": str(path) if path else None,
        "repo": None,
        "parts": [str(path)] if embedded and path else [],
    }


def found_rows(catalog: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """GGUF files from other tools (and other Hugging Face repos), minus the catalog's own."""
    from reflectchat.core.models.discovery import discover

    known = {os.path.realpath(p) for row in catalog for p in row["parts"]}
    return [
        {
            "source": m.source,
            "name": m.name,
            "quant": guess_quant(m.path.name) or guess_quant(m.name.replace(":", "-") + ".gguf"),
            "path": str(m.path),
            "size_bytes": m.size_bytes,
            "parts": m.parts,
        }
        for m in discover()
        if os.path.realpath(m.path) not in known
    ]


def _list(args: argparse.Namespace) -> int:
    catalog = catalog_rows()
    found = found_rows(catalog)
    if args.json:
        print(to_json({"catalog": catalog, "found": found}))
        return EXIT_OK
    size = _size_text
    rows = [
        [
            r["alias"],
            r["quant"] or "",
            size(r["size_bytes"]),
            size(r["size_on_disk"]),
            "embedded" if r["embedded"] else "catalog",
            r["path"] or "",
        ]
        for r in catalog
    ]
    rows += [
        [f["name"], f["quant"] or "", "-", size(f["size_bytes"]), f["source"], f["path"]]
        for f in found
    ]
    print_table(LIST_COLUMNS, rows, row_style=_dim_if_not_on_disk)
    return EXIT_OK


def _size_text(n: int | None) -> str:
    return format_bytes(n) if n is not None else "-"


LIST_COLUMNS = [
    Column("model", overflow="fold"),
    Column("quant", overflow="fold"),
    Column("size", overflow="fold", right=True),
    Column("on disk", overflow="fold", right=True),
    Column("source", overflow="fold"),
    Column("path", wrap=True),
]


def _dim_if_not_on_disk(row: list[str]) -> str | None:
    return "dim" if row[3] == "-" else None


# --- pull -----------------------------------------------------------------------------------------


def _pull(args: argparse.Namespace) -> int:
    from reflectchat.core.models.hub import cached_paths, plan_pull, pull

    plan = plan_pull(args.spec)
    name = strip_controls(plan.display)
    have = cached_paths(plan)
    if have is not None:
        print(f"{name} is already downloaded", file=sys.stderr)
        print(have[0])
        return EXIT_OK
    count = len(plan.files)
    files = f"{count} files" if count > 1 else "1 file"
    print(
        f"pulling {name} from {strip_controls(plan.repo)}: {files}, "
        f"{format_bytes(plan.total_bytes)}",
        file=sys.stderr,
        flush=True,
    )
    try:
        with _progress(plan) as report:
            paths = pull(plan, progress=report)
    except KeyboardInterrupt:
        print(
            f"\nreflectchat: interrupted; run reflectchat models pull "
            f"{strip_controls(args.spec)} again to continue where it stopped",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(f"downloaded {name}, checked against the Hub's sha256", file=sys.stderr)
    print(paths[0])
    return EXIT_OK


@contextmanager
def _progress(plan: PullPlan) -> Iterator[Callable[[int, int], None]]:
    """A Rich bar with speed and time left on a terminal; a line per 10 % otherwise."""
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        bar = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True, highlight=False, emoji=False),
        )
        task: Any = None

        def report(done: int, total: int) -> None:
            nonlocal task
            if task is None:
                description = strip_controls(plan.display)
                task = bar.add_task(description, total=total or None, completed=done)
            else:
                bar.update(task, completed=done, total=total or None)

        with bar:
            yield report
        return

    last = -1

    def plain(done: int, total: int) -> None:
        nonlocal last
        percent = 100 if not total else min(100, done * 100 // total)
        if percent // 10 > last:
            last = percent // 10
            print(
                f"{percent:3d}%  {format_bytes(done)} of {format_bytes(total)}",
                file=sys.stderr,
                flush=True,
            )

    yield plain


# --- rm -------------------------------------------------------------------------------------------


def _rm(args: argparse.Namespace) -> int:
    from reflectchat.core.models.hub import remove

    removed = remove(args.spec)
    count = sum(1 for p in removed if "snapshots" in p.parts)
    files = f"{count} files" if count != 1 else "1 file"
    print(
        f"removed {strip_controls(args.spec)} from the Hugging Face cache ({files})",
        file=sys.stderr,
    )
    return EXIT_OK
