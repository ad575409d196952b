"""The multi-machine path for real: llama.cpp's own `rpc-server` (built from the llama.cpp that
llama-cpp-python vendors, by .ci/build_llama.sh) runs on 127.0.0.1, and `reflectchat ask --rpc`
puts the demo model's layers on it. Same seed, same tokens as a local run.

Needs an RPC-enabled llama-cpp-python and the rpc-server binary (REFLECTCHAT_RPC_SERVER); CI
builds both and sets REFLECTCHAT_REQUIRE_RPC=1, so there a missing part fails instead of
skipping."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import pytest

from tests.conftest import cli, run_env

RPC_SERVER = os.environ.get("REFLECTCHAT_RPC_SERVER", "")


def _missing() -> str | None:
    if not RPC_SERVER or not Path(RPC_SERVER).is_file():
        return "no rpc-server (REFLECTCHAT_RPC_SERVER; .ci/build_llama.sh builds one)"
    if not llama_cpp.llama_supports_rpc():
        return "llama-cpp-python was built without RPC (.ci/build_llama.sh builds one with it)"
    return None


@pytest.fixture(scope="module")
def rpc_endpoint() -> Iterator[str]:
    missing = _missing()
    if missing:
        if os.environ.get("REFLECTCHAT_REQUIRE_RPC") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(os.devnull, "wb")  # noqa: SIM115  (closed below)
    server = subprocess.Popen(
        [RPC_SERVER, "-H", "127.0.0.1", "-p", str(port), "-t", "1"], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"rpc-server did not start (exit {server.poll()})")
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def ask(*flags: str, debug: bool = False) -> tuple[dict, str]:
    done = subprocess.run(
        cli(*(["--debug"] if debug else []), "ask", "Name three colours.", "--seed", "11",
            "--max-tokens", "24", "--threads", "1", "--no-save", "--json", *flags),
        capture_output=True, text=True, env=run_env(), timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_ask_over_rpc_gives_the_local_runs_tokens(rpc_endpoint: str) -> None:
    local, _ = ask()
    remote, log = ask("--rpc", rpc_endpoint, debug=True)  # --debug: llama.cpp's own log
    assert remote["stats"]["completion_tokens"] == local["stats"]["completion_tokens"] > 0
    assert remote["sections"] == local["sections"]
    # the layers really went to the server: llama.cpp names the device it put them on
    assert f"RPC0[{rpc_endpoint}]" in log or f"RPC[{rpc_endpoint}]" in log, log[-3000:]


def test_an_unreachable_rpc_server_is_one_line(rpc_endpoint: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    done = subprocess.run(
        cli("ask", "hi", "--rpc", f"127.0.0.1:{free}", "--max-tokens", "2", "--no-save"),
        capture_output=True, text=True, env=run_env(), timeout=120,
    )  # fmt: skip
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "rpc-server" in done.stderr, done.stderr
