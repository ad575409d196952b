"""`reflectchat config path|show|edit`."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from typing import Any

from reflectchat.core.config import (
    SETTINGS,
    ConfigError,
    config_path,
    read_env,
    read_file,
    template,
)
from reflectchat.core.errors import ReflectchatError, UsageError


def add_config_parser(commands: Any, parser_class: type) -> None:
    config = commands.add_parser(
        "config",
        help="where the settings live, what they are, and editing them",
        description="Settings file (TOML). Flags override it; REFLECTCHAT_* variables override "
        "both.",
    )
    sub = config.add_subparsers(dest="config_command", metavar="ACTION", parser_class=parser_class)
    sub.add_parser("path", help="print the config file's path")
    sub.add_parser("show", help="the effective settings and where each comes from")
    sub.add_parser("edit", help="open the file in $VISUAL/$EDITOR (created if missing)")


def run_config(args: argparse.Namespace) -> int:
    path = config_path()
    action = args.config_command
    if action == "path":
        print(path)
        return 0
    if action == "show":
        file_values, env_values = read_file(path), read_env()  # ConfigError: a usage error
        print(f"# {path}" + ("" if path.exists() else " (not created yet)"))
        for key in SETTINGS:
            if key in env_values:
                print(f"{key} = {env_values[key]!r}  # from REFLECTCHAT_{key.upper()}")
            elif key in file_values:
                print(f"{key} = {file_values[key]!r}  # from the file")
        return 0
    if action == "edit":
        return _edit(path)
    raise UsageError("say what to do: reflectchat config path|show|edit")


def _edit(path: Any) -> int:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(template(), encoding="utf-8")
        except OSError as exc:
            raise ReflectchatError(f"cannot create {path}: {exc.strerror}") from exc
    try:
        subprocess.run([*shlex.split(editor), str(path)], check=False)
    except OSError as exc:
        raise ReflectchatError(
            f"cannot start the editor '{editor}' ({exc.strerror}); set $EDITOR"
        ) from exc
    try:
        read_file(path)
    except ConfigError as exc:  # tell them now, not at the next ask
        print(f"reflectchat: warning: {exc}", file=sys.stderr)
        return 1
    return 0
