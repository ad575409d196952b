"""`reflectchat ask`: one prompt, one streamed answer."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reflectchat.cli.errors import CliError, SignalExit
from reflectchat.cli.jsonout import to_json
from reflectchat.core.chat.prompts import PROMPT_STYLES
from reflectchat.core.chat.session import ChatSession, HistoryTurn
from reflectchat.core.chat.store import Conversation, ConversationNotFound, Store, StoreError
from reflectchat.core.config import Config, ConfigError, load_config
from reflectchat.core.engine.base import CancelToken, EngineError, GenerationParams
from reflectchat.core.engine.remote import Endpoint
from reflectchat.core.models.fit import ModelTooBigError
from reflectchat.core.models.gguf import GGUFError
from reflectchat.core.models.resolve import (
    CatalogEntry,
    ModelNotFoundError,
    ResolvedModel,
    entry_for_file,
    resolve_model,
)
from reflectchat.core.reply.stream import ReplyResult

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


# SQLite's integers are 64-bit: a bigger conversation id cannot exist.
MAX_CONVERSATION_ID = 2**63 - 1


def read_prompt(args: argparse.Namespace) -> str:
    prompt = args.prompt
    if prompt is None and (sys.stdin is None or sys.stdin.isatty()):
        raise CliError('no prompt given: reflectchat ask "PROMPT" (or pipe it in)', EXIT_USAGE)
    if prompt is None or prompt == "-":
        try:
            prompt = sys.stdin.read()
        except UnicodeDecodeError as exc:
            raise CliError(_not_utf8("the prompt", exc.object[exc.start]), EXIT_USAGE) from None
    check_utf8(prompt, "the prompt")
    if not prompt.strip():
        raise CliError("the prompt is empty: give some text to answer", EXIT_USAGE)
    return prompt


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
        raise CliError(_not_utf8(what, byte), EXIT_USAGE) from None


def _not_utf8(what: str, byte: int | None) -> str:
    at = f" (byte 0x{byte:02x})" if byte is not None else ""
    return f"{what} is not valid UTF-8{at}; convert it first, e.g. with iconv -t UTF-8"


def system_prompt(args: argparse.Namespace, entry: CatalogEntry | None) -> str | None:
    if args.no_system:
        return None
    if args.system is not None:
        return args.system
    style = entry.prompt_style if entry else "none"
    return PROMPT_STYLES.get(style)


def generation_params(args: argparse.Namespace, entry: CatalogEntry | None) -> GenerationParams:
    strict = args.strict_format
    if strict is None:
        strict = bool(entry and entry.strict_format)
    return GenerationParams(
        temperature=args.temperature
        if args.temperature is not None
        else (entry.temperature if entry else 0.7),
        top_p=args.top_p if args.top_p is not None else (entry.top_p if entry else 0.95),
        seed=args.seed,
        max_tokens=args.max_tokens,
        strict_format=strict,
    )


def load_backend(args: argparse.Namespace, model: ResolvedModel) -> Any:
    from reflectchat.core.engine.llama import LLAMA_LOG, LlamaBackend, LoadOptions, ModelLoadError

    LLAMA_LOG.echo = bool(args.debug)
    options = LoadOptions(
        n_ctx=args.ctx,
        n_threads=args.threads,
        gpu_layers=args.gpu_layers,
        seed=args.seed,
        force=args.force,
        rpc_servers=tuple(s.strip() for s in (args.rpc or "").split(",") if s.strip()),
    )
    try:
        return LlamaBackend(model, options)
    except (GGUFError, ModelLoadError, ModelTooBigError) as exc:
        if args.debug:
            sys.stderr.write("".join(LLAMA_LOG.lines))
        raise CliError(str(exc), EXIT_USAGE) from exc
    except ValueError as exc:  # e.g. a --gpu-layers value
        raise CliError(str(exc), EXIT_USAGE) from exc


# Signals that stop a reply the way Ctrl+C does: what was written is kept (stored, marked
# cancelled) and the exit status says which one came (128 + its number: 130, 143, 129).
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@dataclass
class StopSignal:
    """Which stop signal arrived, if any."""

    signum: int | None = None

    @property
    def exit_code(self) -> int:
        return 128 + self.signum if self.signum is not None else 0

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""


@contextmanager
def cancel_on_signals(cancel: CancelToken) -> Iterator[StopSignal]:
    """The first Ctrl+C, SIGTERM or SIGHUP stops generation at the next token (what was shown
    stays, and is saved); a second one interrupts at once."""
    got = StopSignal()

    def handler(signum: int, frame: object) -> None:
        if cancel.cancelled:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SignalExit(signum)
        got.signum = signum
        if signum == getattr(signal, "SIGHUP", None):
            _drop_terminal()
        cancel.cancel()

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield got
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _drop_terminal() -> None:
    """The terminal hung up: writing to it would fail (EIO) before the reply is saved and the
    exit status set, so what still goes to it goes nowhere. Files and pipes are kept."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        try:
            if os.isatty(fd):
                os.dup2(devnull, fd)
        except OSError:
            pass
    os.close(devnull)


def apply_config(args: argparse.Namespace) -> Config:
    """Fill unset options from the config file; REFLECTCHAT_* variables override everything.
    `ask` and `chat` share this, so a setting means the same in both."""
    try:
        config = load_config()
    except ConfigError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    args.endpoint_profiles = config.endpoints
    args.endpoint = config.get("endpoint", args.endpoint)
    if args.endpoint is None:  # the configured default model is a local one
        args.model = config.get("model", args.model)
    args.gpu_layers = config.get("gpu_layers", args.gpu_layers, "auto")
    args.ctx = config.get("context", args.ctx)
    args.threads = config.get("threads", args.threads)
    args.max_tokens = config.get("max_tokens", args.max_tokens, 1024)
    args.temperature = config.get("temperature", args.temperature)
    args.top_p = config.get("top_p", args.top_p)
    args.reasoning = config.get("reasoning", args.reasoning)
    args.keep_reasoning = bool(config.get("keep_reasoning", args.keep_reasoning, False))
    if args.seed == -1:  # -1 asks for a random seed, as llama.cpp's tools do
        args.seed = None
    check_utf8(args.system, "--system")
    if args.conversation is not None and not 0 < args.conversation <= MAX_CONVERSATION_ID:
        # What the store says of any id it lacks, without asking SQLite (which overflows).
        raise CliError(str(ConversationNotFound(args.conversation)), EXIT_USAGE)
    return config


def run_ask(args: argparse.Namespace) -> int:
    apply_config(args)
    prompt = read_prompt(args)
    store, stored = _open_history(args)
    on_terminal = sys.stdout.isatty() and not args.json
    show_reasoning = (args.reasoning or ("show" if on_terminal else "hide")) == "show"
    if args.endpoint:
        backend, entry, spec = _remote_backend(args, stored)
    else:
        try:
            model = resolve_model(args.model or (stored.summary.model if stored else None))
        except ModelNotFoundError as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc
        entry, spec = model.entry, model.spec
        backend = _load_with_status(args, model)
    params = generation_params(args, entry)

    explicit_system = args.no_system or args.system is not None
    session = ChatSession(
        backend,
        params,
        system_prompt=system_prompt(args, entry),
        store=None if args.no_save else store,
        model_spec=args.model or (stored.summary.model if stored else spec),
        keep_reasoning=args.keep_reasoning,
    )
    if stored is not None:
        session.conversation_id = stored.summary.id
        session.history = [HistoryTurn(m.role, m.content, m.answer) for m in stored.messages]
        if not explicit_system:
            session.system_prompt = stored.system_prompt

    cancel = CancelToken()
    # From before the user's message is stored: a TERM from here on keeps the exchange whole.
    with cancel_on_signals(cancel) as stopped:
        return _stream_reply(
            args, session, prompt, cancel, stopped, backend, on_terminal, show_reasoning
        )


def _stream_reply(
    args: argparse.Namespace,
    session: ChatSession,
    prompt: str,
    cancel: CancelToken,
    stopped: StopSignal,
    backend: Any,
    on_terminal: bool,
    show_reasoning: bool,
) -> int:
    try:
        stream = session.send(prompt, cancel)
    except EngineError as exc:
        raise CliError(str(exc)) from exc
    except StoreError as exc:
        raise CliError(f"{exc} (or run with --no-save)") from exc
    plan = session.last_plan
    if plan and plan.dropped_turns:
        n = plan.dropped_turns
        print(
            f"reflectchat: left out the {n} oldest turn{'s' if n != 1 else ''} to fit the "
            f"context ({backend.n_ctx} tokens)",
            file=sys.stderr,
        )

    renderer = None
    if on_terminal:
        from rich.console import Console

        from reflectchat.cli.render import TerminalRenderer

        console = Console(highlight=False, markup=False, emoji=False)
        renderer = TerminalRenderer(console, show_reasoning=show_reasoning)
    save_error: StoreError | None = None
    try:
        if renderer is not None:
            try:
                for event in stream:
                    renderer.handle(event)
            finally:
                renderer.finish(stream.result)
        else:
            stream.run()
    except EngineError as exc:
        raise CliError(str(exc)) from exc
    except StoreError as exc:  # the reply is on screen or below; say it wasn't saved
        save_error = exc
    result = stream.result
    assert result is not None
    _write_result(args, result, session, on_terminal=on_terminal, show_reasoning=show_reasoning)
    if save_error is not None:
        raise CliError(f"the reply was not saved: {save_error}")
    if result.finish_reason == "error":
        raise CliError(result.error or "generation failed; the partial reply is kept")
    if stopped.signum is not None and stopped.signum != signal.SIGINT:
        print(f"reflectchat: stopped by {stopped.name}; the partial reply is kept", file=sys.stderr)
        return stopped.exit_code
    if result.finish_reason == "cancelled":
        print("reflectchat: cancelled (Ctrl+C); the partial reply is kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _open_history(args: argparse.Namespace) -> tuple[Store | None, Conversation | None]:
    """The store (unless --no-save and nothing to continue) and the conversation to go on."""
    continuing = args.continue_last or args.conversation is not None
    if args.no_save and not continuing:
        return None, None
    try:
        store = Store()
        if not continuing:
            return store, None
        conversation_id = args.conversation
        if args.continue_last:
            conversation_id = store.latest_conversation_id()
            if conversation_id is None:
                raise CliError("there is no conversation to continue yet; ask without -c", 2)
        return store, store.get_conversation(conversation_id)
    except ConversationNotFound as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    except StoreError as exc:
        raise CliError(f"{exc} (or run with --no-save)") from exc


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
        )
    if "://" not in args.endpoint:
        known = ", ".join(profiles) or "none configured"
        from reflectchat.core.engine.remote import redact_url

        shown = redact_url(f"http://{args.endpoint}").removeprefix("http://")
        raise CliError(
            f"--endpoint '{shown}' is neither a URL (http://host:port/v1) nor "
            f"an endpoint profile ({known})",
            EXIT_USAGE,
        )
    return Endpoint(url=args.endpoint, model=args.model, api_key_env=args.api_key_env)


def _remote_backend(
    args: argparse.Namespace, stored: Conversation | None
) -> tuple[Any, CatalogEntry | None, str]:
    from reflectchat.core.engine.remote import RemoteBackend, RemoteError

    endpoint = endpoint_from(args)
    if endpoint.model is None and stored is not None and stored.summary.model:
        endpoint = dataclasses.replace(endpoint, model=stored.summary.model)
    backend = RemoteBackend(endpoint)
    try:
        name = backend.resolve_model_name()
    except RemoteError as exc:
        raise CliError(str(exc)) from exc
    # A served Reflection model gets its prompt and sampling like a local one.
    return backend, entry_for_file(Path(name)), name


def _load_with_status(args: argparse.Namespace, model: ResolvedModel) -> Any:
    from reflectchat.cli.scripted_hook import scripted_backend_from_env  # tests, benchmarks

    if (scripted := scripted_backend_from_env()) is not None:
        return scripted
    if not sys.stderr.isatty():
        return load_backend(args, model)
    from rich.console import Console
    from rich.text import Text

    console = Console(stderr=True, highlight=False, markup=False)
    with console.status(Text(f"Loading {model.display_name}…")):
        return load_backend(args, model)


def _write_result(
    args: argparse.Namespace,
    result: ReplyResult,
    session: ChatSession,
    *,
    on_terminal: bool,
    show_reasoning: bool,
) -> None:
    if args.json:
        data = result.to_dict()
        data["conversation_id"] = session.conversation_id
        data["dropped_turns"] = session.last_plan.dropped_turns if session.last_plan else 0
        print(to_json(data))
    elif not on_terminal:
        from reflectchat.cli.plain import write_plain

        write_plain(sys.stdout, result.parsed, show_reasoning=show_reasoning)
