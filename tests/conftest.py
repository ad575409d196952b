from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.support.gguf_fixtures import write_70b_shaped_gguf
from tests.support.paths import REPO


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point config/data/cache at a temp folder so tests never touch the real home."""
    home = tmp_path / "reflectchat-home"
    monkeypatch.setenv("REFLECTCHAT_HOME", str(home))
    return home


def run_env(**extra: str) -> dict[str, str]:
    """Environment for running the CLI in a subprocess."""
    env = dict(os.environ)
    env.update(extra)
    env.setdefault("PYTHONPATH", str(REPO))
    env["COLUMNS"] = "100"
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "reflectchat", *args]


@pytest.fixture(scope="session")
def synth_70b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 70B-shaped Q4_K_M GGUF: 42.5 GB apparent size, a few MB on disk (sparse), zeros.
    Named like the catalog's file so `models info` recognises it."""
    path = tmp_path_factory.mktemp("synth") / "Reflection-Llama-3.1-70B-Q4_K_M.gguf"
    return write_70b_shaped_gguf(path)
