"""Errors for people: one line on stderr saying what happened and what to do."""

from __future__ import annotations

import signal
import sys
import traceback

from reflectchat.core.reply.sanitize import strip_controls


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class SignalExit(KeyboardInterrupt):
    """A second SIGINT/SIGTERM/SIGHUP while a reply was being stopped: leave now, with the
    shell's exit status for that signal (128 + its number)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


def report_error(message: str, *, debug: bool = False) -> None:
    if debug:
        traceback.print_exc()
    # File names and model text can carry anything: keep the line one line, and inert.
    line = " ".join(strip_controls(message).split())
    print(f"reflectchat: error: {line}", file=sys.stderr)
