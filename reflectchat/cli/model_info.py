"""`reflectchat models info`, `models default` and `models list --endpoint`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from reflectchat.cli.errors import CliError
from reflectchat.core.chat.export import to_json
from reflectchat.core.errors import EXIT_USAGE
from reflectchat.core.units import format_bytes


def _gb(n: int | None) -> str:
    return "unknown" if n is None else format_bytes(n, "GB", digits=2)


def run_info(args: argparse.Namespace) -> int:
    from reflectchat.core.models.gguf import GGUFError
    from reflectchat.core.models.info import model_info
    from reflectchat.core.models.resolve import ModelNotFoundError, resolve_model

    try:
        info = model_info(resolve_model(args.spec), args.ctx)
    except (ModelNotFoundError, GGUFError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    if args.json:
        print(to_json(info))
        return 0
    params = info["parameters"]
    mem, fit = info["memory"], info["fit"]
    rows = [
        (
            "file",
            info["path"]
            + (f" (+{len(info['parts']) - 1} parts)" if len(info["parts"]) > 1 else ""),
        ),
        ("size", _gb(info["file_size_bytes"])),
        ("architecture", info["architecture"] or "unknown"),
        ("name", info["name"] or ""),
        ("parameters", f"{params / 1e9:.2f} B" if params >= 1e9 else f"{params / 1e6:.1f} M"),
        ("quantization", info["quantization"] or "unknown"),
        ("context length", f"{info['context_length'] or 'unknown'} tokens (trained)"),
        ("chat template", "yes" if info["chat_template"] else "no (ChatML is assumed)"),
        ("special-token tags", ", ".join(info["special_tags"]) or "none (tags are plain text)"),
        (
            "reasoning format",
            f"{info['reasoning_format']['name']} ({info['reasoning_format']['reason']})",
        ),
        ("catalog entry", info["catalog"] or "none"),
        (
            f"memory at {mem['context']} tokens",
            f"{_gb(mem['total_bytes'])} = {_gb(mem['weights_bytes'])} weights + "
            f"{_gb(mem['kv_cache_bytes'])} KV cache + {_gb(mem['compute_bytes'])} compute",
        ),
        (
            "fits this machine",
            ("yes" if fit["fits"] else "no")
            + f" — {_gb(fit['ram_available_bytes'])} RAM available"
            + (f", {_gb(fit['vram_free_bytes'])} VRAM free" if fit["vram_free_bytes"] else "")
            + f"; GPU layers: {fit['gpu_layers']}",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    from reflectchat.core.reply.sanitize import strip_controls

    for key, value in rows:  # the name and paths come from the file: keep them inert
        print(f"{key.ljust(width)}  {strip_controls(str(value))}")
    return 0


def run_default(args: argparse.Namespace) -> int:
    from reflectchat.core.config import ConfigError, set_value
    from reflectchat.core.models.resolve import ModelNotFoundError, parse_spec, resolve_model

    try:
        parse_spec(args.spec)
        try:
            resolve_model(args.spec)
            note = ""
        except ModelNotFoundError as exc:  # allowed: it may be pulled later
            note = f" (note: {exc})"
        path = set_value("model", args.spec)
    except (ModelNotFoundError, ConfigError, ValueError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    print(f"default model: {args.spec} (in {path}){note}", file=sys.stderr)
    return 0


def run_endpoint_list(args: argparse.Namespace) -> int:
    from reflectchat.cli.options import endpoint_from
    from reflectchat.core.config import ConfigError, load_config
    from reflectchat.core.engine.remote import RemoteBackend, RemoteError

    try:
        config = load_config()
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    ns: Any = argparse.Namespace(
        endpoint=args.endpoint,
        model=None,
        api_key_env=args.api_key_env,
        endpoint_profiles=config.endpoints,
    )
    endpoint = endpoint_from(ns)
    try:
        names = RemoteBackend(endpoint, retries=1).list_models()
    except RemoteError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print(to_json({"endpoint": endpoint.display_url, "models": names}))
    else:
        for name in names:
            print(name)
    return 0
