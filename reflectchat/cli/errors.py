"""Errors for people: one line on stderr saying what happened and what to do."""

from __future__ import annotations

import sys
import traceback

from reflectchat.core.sanitize import strip_controls


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def report_error(message: str, *, debug: bool = False) -> None:
    if debug:
        traceback.print_exc()
    # File names and model text can carry anything: keep the line one line, and inert.
    line = " ".join(strip_controls(message).split())
    print(f"reflectchat: error: {line}", file=sys.stderr)
