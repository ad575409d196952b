"""Flags to session options, once for `ask`, `chat` and `bench`: the config file fills what
the flags leave unset, and the result is a core SessionOptions (core/chat/setup.py)."""

from __future__ import annotations

import argparse
from typing import Any

from reflectchat.core.chat.presets import find_preset
from reflectchat.core.chat.setup import DEFAULT_MAX_TOKENS, SessionOptions
from reflectchat.core.chat.store import ConversationNotFound
from reflectchat.core.chat.thinking import REMOTE_THINKING_FIELDS
from reflectchat.core.config import Config, ConfigError, load_config
from reflectchat.core.engine.remote import Endpoint
from reflectchat.core.errors import UsageError

# SQLite's integers are 64-bit: a bigger conversation id cannot exist.
MAX_CONVERSATION_ID = 2**63 - 1


def apply_config(args: argparse.Namespace) -> Config:
    """Fill unset options from the config file; REFLECTCHAT_* variables override everything.
    `ask` and `chat` share this, so a setting means the same in both."""
    try:
        config = load_config()
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    args.endpoint_profiles = config.endpoints
    args.endpoint = config.get("endpoint", args.endpoint)
    if args.endpoint is None:  # the configured default model is a local one
        args.model = config.get("model", args.model)
    args.gpu_layers = config.get("gpu_layers", args.gpu_layers, "auto")
    args.ctx = config.get("context", args.ctx)
    args.threads = config.get("threads", args.threads)
    args.max_tokens = config.get("max_tokens", args.max_tokens, DEFAULT_MAX_TOKENS)
    # A preset's sampling sits between the flags (and REFLECTCHAT_*) and the config file's.
    preset_name = getattr(args, "preset", None)
    args.preset_obj = find_preset(preset_name, config.presets) if preset_name else None
    for key in ("temperature", "top_p"):
        flag = getattr(args, key)
        if flag is None and args.preset_obj is not None:
            flag = getattr(args.preset_obj, key)
        setattr(args, key, config.get(key, flag))
    args.reasoning = config.get("reasoning", args.reasoning)
    args.keep_reasoning = bool(config.get("keep_reasoning", args.keep_reasoning, False))
    args.think_budget = config.get("think_budget", getattr(args, "think_budget", None))
    args.think = config.get("think", getattr(args, "think", None))
    args.effort = config.get("effort", getattr(args, "effort", None))
    if args.seed == -1:  # -1 asks for a random seed, as llama.cpp's tools do
        args.seed = None
    check_utf8(args.system, "--system")
    if args.conversation is not None and not 0 < args.conversation <= MAX_CONVERSATION_ID:
        # What the store says of any id it lacks, without asking SQLite (which overflows).
        raise UsageError(str(ConversationNotFound(args.conversation)))
    return config


def session_options(args: argparse.Namespace) -> SessionOptions:
    """The flags (after apply_config) as core options. Commands with fewer flags (`bench`)
    get the defaults for the ones they lack."""

    def flag(name: str, default: Any = None) -> Any:
        value = getattr(args, name, None)
        return default if value is None else value

    rpc = tuple(s.strip() for s in flag("rpc", "").split(",") if s.strip())
    return SessionOptions(
        model=flag("model"),
        endpoint=endpoint_from(args) if flag("endpoint") else None,
        system=flag("system"),
        no_system=bool(flag("no_system", False)),
        temperature=flag("temperature"),
        top_p=flag("top_p"),
        seed=flag("seed"),
        max_tokens=flag("max_tokens", DEFAULT_MAX_TOKENS),
        strict_format=flag("strict_format"),
        reasoning_format=flag("reasoning_format"),
        think_budget=flag("think_budget"),
        think={"on": True, "off": False}.get(flag("think") or ""),
        effort=flag("effort"),
        keep_reasoning=bool(flag("keep_reasoning", False)),
        preset=flag("preset_obj"),
        n_ctx=flag("ctx"),
        n_threads=flag("threads"),
        gpu_layers=flag("gpu_layers", "auto"),
        force=bool(flag("force", False)),
        rpc_servers=rpc,
        conversation_id=flag("conversation"),
        continue_last=bool(flag("continue_last", False)),
        no_save=bool(flag("no_save", False)),
    )


def endpoint_from(args: argparse.Namespace) -> Endpoint:
    """--endpoint is a URL or the name of an [endpoints.NAME] profile in the config."""
    profiles = getattr(args, "endpoint_profiles", {}) or {}
    if args.endpoint in profiles:
        p = profiles[args.endpoint]
        return Endpoint(
            url=p["url"],
            model=args.model or p.get("model"),
            api_key_env=p.get("api_key_env"),
            headers=p.get("headers", {}),
            name=args.endpoint,
            extra_body=p.get("extra_body", {}),
            connect_timeout=p.get("connect_timeout"),
            read_timeout=p.get("read_timeout"),
            thinking_fields=tuple(p.get("thinking_fields", REMOTE_THINKING_FIELDS)),
        )
    if "://" not in args.endpoint:
        known = ", ".join(profiles) or "none configured"
        from reflectchat.core.engine.remote import redact_url

        shown = redact_url(f"http://{args.endpoint}").removeprefix("http://")
        raise UsageError(
            f"--endpoint '{shown}' is neither a URL (http://host:port/v1) nor "
            f"an endpoint profile ({known})"
        )
    return Endpoint(url=args.endpoint, model=args.model, api_key_env=args.api_key_env)


def check_utf8(text: str | None, what: str) -> None:
    """Text from argv or stdin that was not UTF-8 arrives with its bad bytes as lone
    surrogates. It is refused rather than repaired (U+FFFD): the model, and the history,
    would get words the user never wrote, and the fix (the encoding it was written in)
    belongs where the text came from."""
    if text is None:
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ord(text[exc.start])
        byte = bad - 0xDC00 if 0xDC80 <= bad <= 0xDCFF else None
        raise UsageError(not_utf8(what, byte)) from None


def not_utf8(what: str, byte: int | None) -> str:
    at = f" (byte 0x{byte:02x})" if byte is not None else ""
    return f"{what} is not valid UTF-8{at}; convert it first, e.g. with iconv -t UTF-8"
