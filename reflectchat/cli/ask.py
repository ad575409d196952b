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

from reflectchat.cli.errors import SignalExit
from reflectchat.cli.options import apply_config, check_utf8, not_utf8, session_options
from reflectchat.core.chat.attachments import (
    MAX_ATTACHMENT_BYTES,
    STDIN_NAME,
    Attachment,
    decode_text,
    read_attachments,
    stdin_is_data,
)
from reflectchat.core.chat.export import to_json
from reflectchat.core.chat.session import ChatSession
from reflectchat.core.chat.setup import SessionOptions, load_local, load_remote, open_session
from reflectchat.core.chat.store import Conversation, ConversationNotFound, Store, StoreError
from reflectchat.core.engine.base import CancelToken
from reflectchat.core.errors import (
    EXIT_INTERRUPTED,
    ModelError,
    ReflectchatError,
    UsageError,
    signal_exit_code,
)
from reflectchat.core.models.resolve import ResolvedModel, entry_for_file, resolve_model
from reflectchat.core.reply.stream import ReplyResult


def read_prompt(args: argparse.Namespace) -> tuple[str, tuple[Attachment, ...]]:
    """The prompt, and what joins it: text piped in along with a prompt (`cat f | ask "…"`),
    then each --attach FILE, in order. Files are checked before stdin is read, so a typo in
    a path fails at once."""
    files = read_attachments(args.attach or ())
    prompt = args.prompt
    piped: list[Attachment] = []
    if prompt is None and (sys.stdin is None or sys.stdin.isatty()):
        raise UsageError('no prompt given: reflectchat ask "PROMPT" (or pipe it in)')
    if prompt is None or prompt == "-":
        try:
            prompt = sys.stdin.read()
        except UnicodeDecodeError as exc:
            raise UsageError(not_utf8("the prompt", exc.object[exc.start])) from None
    elif sys.stdin is not None and stdin_is_data(_fileno(sys.stdin)):
        # Only a pipe or a file: a terminal or /dev/null is never waited on.
        text = read_piped_text()
        if text.strip():
            piped.append(Attachment(STDIN_NAME, text))
    check_utf8(prompt, "the prompt")
    if not prompt.strip():
        raise UsageError("the prompt is empty: give some text to answer")
    return prompt, (*piped, *files)


def _fileno(stream: Any) -> int:
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError):  # replaced by a test or a library
        return -1


def read_piped_text() -> str:
    """Piped text, bounded and checked like an attached file."""
    where = "cannot add the piped text"
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        return str(sys.stdin.read())
    data = buffer.read(MAX_ATTACHMENT_BYTES + 1)
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise UsageError(
            f"{where}: it is more than {MAX_ATTACHMENT_BYTES >> 20} MiB; an attachment can be "
            f"at most {MAX_ATTACHMENT_BYTES >> 20} MiB"
        )
    return decode_text(data, where)


def load_backend(args: argparse.Namespace, options: SessionOptions, model: ResolvedModel) -> Any:
    from reflectchat.core.engine.llama import LLAMA_LOG

    LLAMA_LOG.echo = bool(args.debug)
    try:
        return load_local(model, options)
    except ModelError:
        if args.debug:
            sys.stderr.write("".join(LLAMA_LOG.lines))
        raise


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
        return signal_exit_code(self.signum) if self.signum is not None else 0

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


def run_ask(args: argparse.Namespace) -> int:
    apply_config(args)
    prompt, attachments = read_prompt(args)
    options = session_options(args)
    store, stored = _open_history(args)
    on_terminal = sys.stdout.isatty() and not args.json
    show_reasoning = (args.reasoning or ("show" if on_terminal else "hide")) == "show"
    if stored is not None:
        options.conversation_id = stored.summary.id
    stored_model = stored.summary.model if stored else None
    if options.endpoint is not None:
        endpoint = options.endpoint
        if endpoint.model is None and stored_model:
            endpoint = dataclasses.replace(endpoint, model=stored_model)
        backend = load_remote(endpoint)
        spec = backend.resolve_model_name()  # asked already: the name the server gave
        # A served Reflection model gets its prompt and sampling like a local one.
        entry = entry_for_file(Path(spec))
    else:
        model = resolve_model(options.model or stored_model)
        entry, spec = model.entry, model.spec
        backend = _load_with_status(args, options, model)
    try:  # a conversation to continue is read again, whole, by the session
        session = open_session(
            backend,
            options,
            store=store,
            entry=entry,
            model_spec=options.model or stored_model or spec,
        )
    except ConversationNotFound as exc:  # deleted since: as if it never was
        raise UsageError(str(exc)) from exc
    except StoreError as exc:
        raise ReflectchatError(f"{exc} (or run with --no-save)") from exc

    cancel = CancelToken()
    # From before the user's message is stored: a TERM from here on keeps the exchange whole.
    with cancel_on_signals(cancel) as stopped:
        return _stream_reply(
            args,
            session,
            (prompt, attachments),
            cancel,
            stopped,
            backend,
            on_terminal,
            show_reasoning,
        )


def _stream_reply(
    args: argparse.Namespace,
    session: ChatSession,
    message: tuple[str, tuple[Attachment, ...]],
    cancel: CancelToken,
    stopped: StopSignal,
    backend: Any,
    on_terminal: bool,
    show_reasoning: bool,
) -> int:
    try:
        stream = session.send(message[0], cancel, message[1])
    except StoreError as exc:
        raise ReflectchatError(f"{exc} (or run with --no-save)") from exc
    plan = session.last_plan
    if plan and plan.dropped_turns:
        n = plan.dropped_turns
        print(
            f"reflectchat: left out the {n} oldest turn{'s' if n != 1 else ''} to fit the "
            f"context ({backend.n_ctx} tokens)",
            file=sys.stderr,
        )

    switch = getattr(backend, "thinking_switch", None)
    if callable(switch):  # what --think/--effort could not do for this model, said plainly
        for note in switch(stream.params).notes:
            print(f"reflectchat: note: {note}", file=sys.stderr)

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
    except StoreError as exc:  # the reply is on screen or below; say it wasn't saved
        save_error = exc
    result = stream.result
    assert result is not None
    _write_result(args, result, session, on_terminal=on_terminal, show_reasoning=show_reasoning)
    if save_error is not None:
        raise ReflectchatError(f"the reply was not saved: {save_error}")
    if result.finish_reason == "error":
        raise ReflectchatError(result.error or "generation failed; the partial reply is kept")
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
                raise UsageError("there is no conversation to continue yet; ask without -c")
        return store, store.get_conversation(conversation_id)
    except ConversationNotFound as exc:
        raise UsageError(str(exc)) from exc
    except StoreError as exc:
        raise ReflectchatError(f"{exc} (or run with --no-save)") from exc


def _load_with_status(
    args: argparse.Namespace, options: SessionOptions, model: ResolvedModel
) -> Any:
    from reflectchat.cli.scripted_hook import scripted_backend_from_env  # tests, benchmarks

    if (scripted := scripted_backend_from_env()) is not None:
        return scripted
    if not sys.stderr.isatty():
        return load_backend(args, options, model)
    from rich.console import Console
    from rich.text import Text

    console = Console(stderr=True, highlight=False, markup=False)
    with console.status(Text(f"Loading {model.display_name}…")):
        return load_backend(args, options, model)


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
        if not result.parsed.answer.strip():
            # Piped output is the answer alone: say why there is none, rather than print nothing.
            if result.parsed.thinking_incomplete and result.finish_reason == "length":
                why = (
                    "the reply reached --max-tokens while still thinking; raise --max-tokens "
                    "or set --think-budget N"
                )
            elif result.parsed.thinking_incomplete:
                why = "the reply ended inside its thinking"
            else:
                why = "the model wrote no answer"
            print(f"reflectchat: no answer: {why}", file=sys.stderr)
