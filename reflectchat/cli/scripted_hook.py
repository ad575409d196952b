"""A test and benchmark hook: `REFLECTCHAT_SCRIPTED_REPLY=FILE reflectchat ask …` streams the
reply scripted in FILE instead of loading a model, so the terminal rendering can be measured
and tested on a real pty without llama.cpp.

FILE is JSON: a list of strings, each streamed as one token. Nothing else changes: the prompt,
the history and the rendering go through the ordinary `ask` path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from reflectchat.cli.errors import CliError
from reflectchat.testing.scripted_backend import ScriptedBackend

ENV = "REFLECTCHAT_SCRIPTED_REPLY"


def scripted_backend_from_env() -> ScriptedBackend | None:
    path = os.environ.get(ENV)
    if not path:
        return None
    try:
        chunks = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CliError(f"{ENV}={path} is not a readable JSON list of tokens: {exc}", 2) from exc
    if not isinstance(chunks, list) or not all(isinstance(c, str) for c in chunks):
        raise CliError(f"{ENV}={path} must hold a JSON list of strings (the tokens)", 2)
    return ScriptedBackend([chunks])
