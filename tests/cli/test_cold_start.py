"""Cold start (issue 12): a command imports only its own parser's module, so `ask` doesn't pay
for the history, models and config commands; every command still parses, and help and the
usage error still list them all. The speed itself is benchmarks/bench_ask.py's."""

from __future__ import annotations

import subprocess

import pytest

from reflectchat.cli.main import build_parser
from tests.conftest import cli, run_env
from tests.test_imports import _loaded_after

OTHER_COMMANDS = {
    "reflectchat.cli.history",
    "reflectchat.cli.models",
    "reflectchat.cli.config_cmd",
    "reflectchat.cli.tools",
    "reflectchat.core.models.hub",
}


def test_ask_does_not_import_the_other_commands() -> None:
    code = (
        "import sys, runpy\n"
        "sys.argv = ['reflectchat', '--debug', 'ask', '--help']\n"
        "try:\n    runpy.run_module('reflectchat', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
    )
    assert not OTHER_COMMANDS & _loaded_after(code)


@pytest.mark.parametrize(
    "words",
    [
        ["history", "list"],
        ["models", "list", "--json"],
        ["config", "path"],
        ["doctor", "--json"],
        ["bench", "-n", "8"],
        ["chat", "--no-save"],
        ["--debug", "ask", "hi", "--seed", "3"],
    ],
)
def test_the_parser_built_for_a_command_parses_it_as_the_full_one(words: list[str]) -> None:
    assert vars(build_parser(words).parse_args(words)) == vars(build_parser().parse_args(words))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args), capture_output=True, text=True, env=run_env(), timeout=60)


def test_help_and_a_wrong_command_still_list_every_command() -> None:
    out = run("--help").stdout
    for name in ("ask", "chat", "history", "models", "config", "doctor", "bench", "view"):
        assert name in out
    wrong = run("histroy")
    assert wrong.returncode == 2
    assert "history" in wrong.stderr and "models" in wrong.stderr
