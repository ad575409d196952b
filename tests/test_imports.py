"""The boundary: core never imports UI libraries; light commands never load llama.cpp."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import reflectchat.core
from tests.conftest import REPO, cli, run_env

CORE_MODULES = sorted(
    m.name for m in pkgutil.walk_packages(reflectchat.core.__path__, "reflectchat.core.")
)


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=run_env(), check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_imports_no_ui_library(module: str) -> None:
    loaded = _loaded_after(f"import {module}")
    assert not {"textual", "rich"} & {name.split(".")[0] for name in loaded}


def test_core_sources_do_not_mention_ui_imports() -> None:
    for path in (REPO / "reflectchat" / "core").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            assert not stripped.startswith(
                ("import textual", "from textual", "import rich", "from rich")
            ), f"{path.name}: {line}"


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["ask", "--help"], ["view", "--help"]])
def test_light_commands_do_not_load_llama_cpp_or_textual(args: list[str]) -> None:
    code = (
        "import sys, json, runpy\n"
        f"sys.argv = ['reflectchat', *{args!r}]\n"
        "try:\n    runpy.run_module('reflectchat', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
    )
    loaded = _loaded_after(code)
    assert "llama_cpp" not in loaded
    assert "textual" not in loaded


def test_view_does_not_load_llama_cpp(tmp_path) -> None:
    sample = tmp_path / "reply.txt"
    sample.write_text("<thinking>hm</thinking><output>ok</output>")
    code = (
        "import sys, json, runpy\n"
        f"sys.argv = ['reflectchat', 'view', {str(sample)!r}]\n"
        "try:\n    runpy.run_module('reflectchat', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
    )
    loaded = _loaded_after(code)
    assert "llama_cpp" not in loaded
    assert "textual" not in loaded


def test_version_command() -> None:
    out = subprocess.run(cli("--version"), capture_output=True, text=True, env=run_env())
    assert out.returncode == 0
    assert out.stdout.startswith("reflectchat ")
