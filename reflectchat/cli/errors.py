"""Errors for people: one line on stderr saying what happened and what to do."""

from __future__ import annotations

import signal
import sys
import traceback

from reflectchat.core.errors import EXIT_FAILURE, ReflectchatError, signal_exit_code
from reflectchat.core.reply.sanitize import strip_controls


class CliError(ReflectchatError):
    """The command line's older spelling of ReflectchatError(message, exit_code=…), kept for
    the commands not yet raising the core's errors directly."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message, exit_code=exit_code)


class SignalExit(KeyboardInterrupt):
    """A second SIGINT/SIGTERM/SIGHUP while a reply was being stopped: leave now, with the
    shell's exit status for that signal (128 + its number)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = signal_exit_code(signum)
        super().__init__(f"stopped by {signal.Signals(signum).name}")


def report_error(message: str, *, debug: bool = False) -> None:
    if debug:
        traceback.print_exc()
    # File names and model text can carry anything: keep the line one line, and inert.
    line = " ".join(strip_controls(message).split())
    print(f"reflectchat: error: {line}", file=sys.stderr)
