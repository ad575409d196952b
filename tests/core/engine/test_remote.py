"""Remote OpenAI-compatible engines: a real llama-cpp-python server, and a fake for the rest."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from reflectchat.core.chat.session import ChatSession
from reflectchat.core.engine.base import CancelToken, GenerationParams, Message
from reflectchat.core.engine.remote import Endpoint, RemoteBackend, RemoteError, redact_url
from reflectchat.core.reply.stream import ReplyStream
from tests.conftest import cli, run_env
from tests.support.fake_openai import FakeOpenAI, fake_openai
from tests.support.gguf_fixtures import embedded_model_path

USER = [Message("user", "Is 9.11 bigger than 9.9?")]
T = TypeVar("T")


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with fake_openai() as server:
        yield server


def backend_for(fake: FakeOpenAI, **kwargs: float) -> RemoteBackend:
    return RemoteBackend(Endpoint(fake.url, "fake-reflection", api_key_env="FAKE_KEY"), **kwargs)


def test_reasoning_content_becomes_the_thinking_section(fake: FakeOpenAI) -> None:
    fake.mode = "reasoning"
    result = ReplyStream(backend_for(fake), USER, GenerationParams()).run()
    assert result.raw_text == "Hello there."  # the content; the reasoning is its own section
    assert result.parsed.thinking == "Let me think."
    assert result.parsed.answer == "Hello there."
    assert [s.kind for s in result.parsed.sections] == ["thinking", "text"]
    assert result.finish_reason == "stop"


def test_markers_inside_reasoning_content_are_text(fake: FakeOpenAI) -> None:
    # issue 10: a reasoning chunk holding </think> or <output> used to end the thinking early,
    # because reasoning was re-wrapped in <think> tags and parsed again.
    fake.mode = "reasoning"
    fake.reasoning = ["Should I write </think> here", " or <output>?", " No."]
    fake.reply = ["<|im_end|> is not shown", " either"]
    result = ReplyStream(backend_for(fake), USER, GenerationParams()).run()
    assert result.parsed.thinking == "Should I write </think> here or <output>? No."
    assert result.parsed.answer == ""  # the leaked end of turn ends the reply at once
    assert result.finish_reason == "stop"


def test_harmony_in_content_parses_by_the_served_name(fake: FakeOpenAI) -> None:
    fake.reply = [
        "<|channel|>analysis<|message|>Think </think> more<|end|>",
        "<|start|>assistant<|channel|>final<|message|>4<|return|>",
    ]
    fake.models = ["openai/gpt-oss-20b"]
    backend = RemoteBackend(Endpoint(fake.url, "openai/gpt-oss-20b", api_key_env="FAKE_KEY"))
    result = ReplyStream(backend, USER, GenerationParams()).run()
    assert result.parsed.format == "harmony"
    assert result.parsed.thinking == "Think </think> more"
    assert result.parsed.answer == "4"


def test_tags_inside_content_still_parse(fake: FakeOpenAI) -> None:
    fake.reply = ["<thinking>a<reflection>b</reflection></thin", "king><output>c</output>"]
    result = ReplyStream(backend_for(fake), USER, GenerationParams()).run()
    assert result.parsed.reflections == ["b"]
    assert result.parsed.answer == "c"


def test_request_carries_params_key_and_headers(fake: FakeOpenAI, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "sk-secret-123")
    endpoint = Endpoint(
        fake.url, "fake-reflection", api_key_env="FAKE_KEY", headers={"X-Team": "blue"}
    )
    ReplyStream(RemoteBackend(endpoint), USER, GenerationParams(seed=5, max_tokens=7)).run()
    request = fake.requests[-1]
    assert request["body"]["seed"] == 5 and request["body"]["max_tokens"] == 7
    assert request["body"]["stream"] is True
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["authorization"] == "Bearer sk-secret-123"
    assert headers["x-team"] == "blue"


def test_endpoint_profile_from_the_config(fake: FakeOpenAI, isolated_home: Path) -> None:
    config = isolated_home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        f'endpoint = "team"\n[endpoints.team]\nurl = "{fake.url}"\n'
        'model = "fake-reflection"\napi_key_env = "TEAM_KEY"\n'
        'headers = { X-Team = "blue" }\nextra_body = { skip_special_tokens = false }\n'
    )
    proc = subprocess.run(
        cli("ask", "hi", "--json", "--no-save"),
        capture_output=True,
        text=True,
        env=run_env(REFLECTCHAT_HOME=str(isolated_home), TEAM_KEY="k1"),
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["answer"] == "Hello there."
    request = fake.requests[-1]
    assert request["body"]["skip_special_tokens"] is False
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["x-team"] == "blue" and headers["authorization"] == "Bearer k1"


def test_401_names_the_variable_and_never_the_key(fake: FakeOpenAI, monkeypatch) -> None:
    fake.mode = "401"
    monkeypatch.setenv("FAKE_KEY", "sk-secret-123")
    with pytest.raises(RemoteError) as err:
        ReplyStream(backend_for(fake), USER, GenerationParams()).run()
    assert "FAKE_KEY" in str(err.value) and "sk-secret" not in str(err.value)


def test_404_says_model_or_path(fake: FakeOpenAI) -> None:
    endpoint = Endpoint(fake.url, "no-such-model")
    with pytest.raises(RemoteError, match=r"404.*model 'no-such-model' or the path"):
        ReplyStream(RemoteBackend(endpoint), USER, GenerationParams()).run()


@pytest.mark.parametrize("mode", ["429-then-ok", "500-then-ok"])
def test_retries_before_the_first_token(fake: FakeOpenAI, mode: str) -> None:
    fake.mode, fake.failures_left = mode, 2
    result = ReplyStream(backend_for(fake), USER, GenerationParams()).run()
    assert result.parsed.answer == "Hello there."
    assert len(fake.requests) == 3  # two refusals, then the stream — text exactly once


def test_a_stream_cut_mid_way_keeps_the_partial_reply(fake: FakeOpenAI) -> None:
    fake.mode = "cut"
    result = ReplyStream(backend_for(fake), USER, GenerationParams()).run()
    assert result.finish_reason == "error"
    assert result.raw_text == "Hello there"
    assert "before the reply was finished" in result.error or "broke off" in result.error
    assert len(fake.requests) == 1  # never retried after text arrived


def test_a_server_that_never_answers_times_out(fake: FakeOpenAI) -> None:
    fake.mode = "hang"
    start = time.monotonic()
    with pytest.raises(RemoteError, match="did not answer in time"):
        ReplyStream(
            backend_for(fake, read_timeout_s=0.5, retries=0), USER, GenerationParams()
        ).run()
    assert time.monotonic() - start < 5


def test_nothing_listening_fails_fast(fake: FakeOpenAI) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = RemoteBackend(Endpoint(f"http://127.0.0.1:{port}", "m"), retries=1)
    start = time.monotonic()
    with pytest.raises(RemoteError, match="cannot connect"):
        ReplyStream(backend, USER, GenerationParams()).run()
    assert time.monotonic() - start < 10


def test_cancel_closes_the_stream_at_once(fake: FakeOpenAI) -> None:
    fake.mode = "slow"
    fake.reply = ["word "] * 50
    cancel = CancelToken()
    stream = ReplyStream(backend_for(fake), USER, GenerationParams(), cancel)
    threading.Timer(0.8, cancel.cancel).start()
    start = time.monotonic()
    result = stream.run()
    assert time.monotonic() - start < 2
    assert result.finish_reason == "cancelled"
    assert 0 < result.raw_text.count("word") < 50


# -- bounded waits, immediate cancel, max_tokens, secrets (issue 13) ---------------------------


def within(seconds: float, fn: Callable[[], T]) -> T:
    """fn's result (or its exception), failing the test if it takes longer than `seconds`
    instead of hanging it."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def host_of(fake: FakeOpenAI) -> str:
    return f"127.0.0.1:{fake.server.server_address[1]}"


def test_default_bounds() -> None:
    limits = RemoteBackend(Endpoint("http://127.0.0.1:9/v1", "m")).timeouts()
    assert (limits.connect, limits.read) == (5.0, 30.0)  # all tries fit in ~30 s by default


def test_a_silent_server_fails_within_the_bound_retries_included(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.mode = "silent"  # accepts the request, never answers
    monkeypatch.setenv("REFLECTCHAT_REMOTE_TIMEOUT", "1")
    start = time.monotonic()
    with pytest.raises(RemoteError) as err:
        within(6, lambda: ReplyStream(backend_for(fake), USER, GenerationParams()).run())
    assert time.monotonic() - start < 3
    message = str(err.value)
    assert host_of(fake) in message and "1 s" in message and "did not answer" in message
    assert "REFLECTCHAT_REMOTE_TIMEOUT" in message and "\n" not in message
    assert len(fake.requests) == 1  # a timeout is not retried past the bound


def test_headers_then_nothing_fails_within_the_profile_bound(fake: FakeOpenAI) -> None:
    fake.mode = "headers-only"
    endpoint = Endpoint(fake.url, "fake-reflection", read_timeout=1, connect_timeout=1)
    start = time.monotonic()
    with pytest.raises(RemoteError, match=r"sent nothing in 1 s") as err:
        within(6, lambda: ReplyStream(RemoteBackend(endpoint), USER, GenerationParams()).run())
    assert time.monotonic() - start < 3
    assert host_of(fake) in str(err.value)


def test_retries_stop_at_the_bound(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.mode, fake.failures_left = "500-then-ok", 1000
    monkeypatch.setenv("REFLECTCHAT_REMOTE_TIMEOUT", "1.5")
    start = time.monotonic()
    with pytest.raises(RemoteError, match="answered 500 after retries"):
        backend = backend_for(fake, retries=100)
        within(8, lambda: ReplyStream(backend, USER, GenerationParams()).run())
    assert time.monotonic() - start < 3


@pytest.mark.parametrize("mode", ["silent", "headers-only"])
def test_a_cancel_from_another_thread_ends_a_stalled_stream(fake: FakeOpenAI, mode: str) -> None:
    fake.mode = mode
    cancel = CancelToken()
    stream = ReplyStream(backend_for(fake, read_timeout_s=60), USER, GenerationParams(), cancel)
    threading.Timer(0.5, cancel.cancel).start()
    start = time.monotonic()
    result = within(5, stream.run)
    assert time.monotonic() - start < 1.5
    assert result.finish_reason == "cancelled" and result.raw_text == ""


def test_an_endless_stream_stops_at_max_tokens(fake: FakeOpenAI) -> None:
    fake.mode = "forever"
    stream = ReplyStream(backend_for(fake), USER, GenerationParams(max_tokens=20))
    result = within(10, stream.run)
    assert result.finish_reason == "length"
    assert result.raw_text == "word " * 20
    assert result.stats.completion_tokens == 20
    assert fake.disconnected.wait(3)  # the stream was closed, not left running


def test_cli_a_silent_server_is_one_line_and_exit_1(fake: FakeOpenAI) -> None:
    fake.mode = "silent"
    start = time.monotonic()
    proc = subprocess.run(
        cli("ask", "--endpoint", fake.url, "-m", "fake-reflection", "hi", "--no-save"),
        capture_output=True,
        text=True,
        env=run_env(REFLECTCHAT_REMOTE_TIMEOUT="1"),
        timeout=30,
    )
    assert time.monotonic() - start < 15
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert host_of(fake) in proc.stderr and "1 s" in proc.stderr


def test_cli_profile_timeouts(fake: FakeOpenAI, isolated_home: Path) -> None:
    fake.mode = "headers-only"
    config = isolated_home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        f'[endpoints.slow]\nurl = "{fake.url}"\nmodel = "fake-reflection"\n'
        "connect_timeout = 1\nread_timeout = 1.5\n"
    )
    env = run_env(REFLECTCHAT_HOME=str(isolated_home))
    proc = subprocess.run(
        cli("ask", "--endpoint", "slow", "hi", "--no-save"),
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "sent nothing in 1.5 s" in proc.stderr
    assert host_of(fake) in proc.stderr
    # a bad value: in the file, a usage error naming the key; in the variable, one line
    config.write_text(f'[endpoints.slow]\nurl = "{fake.url}"\nread_timeout = -1\n')
    proc = subprocess.run(
        cli("ask", "--endpoint", "slow", "hi"), capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2 and "'read_timeout' must be a number of seconds" in proc.stderr
    config.unlink()
    proc = subprocess.run(
        cli("ask", "--endpoint", fake.url, "hi"),
        capture_output=True,
        text=True,
        env=run_env(REFLECTCHAT_HOME=str(isolated_home), REFLECTCHAT_REMOTE_TIMEOUT="soon"),
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "REFLECTCHAT_REMOTE_TIMEOUT must be a number of seconds" in proc.stderr


@pytest.mark.parametrize("mode", ["silent", "headers-only"])
def test_cli_ctrl_c_ends_a_stalled_stream_at_once(fake: FakeOpenAI, mode: str) -> None:
    fake.mode = mode
    proc = subprocess.Popen(
        cli("ask", "--endpoint", fake.url, "-m", "fake-reflection", "hi", "--no-save"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=run_env(),
    )
    try:
        deadline = time.monotonic() + 20
        while not fake.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake.requests, "the request never arrived"
        time.sleep(0.5)  # waiting for the headers, or (headers out) for the first chunk
        proc.send_signal(signal.SIGINT)  # once: the first Ctrl+C must do it
        start = time.monotonic()
        _, stderr = proc.communicate(timeout=5)
        assert time.monotonic() - start < 1.5
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, stderr
    assert "cancelled" in stderr and "Traceback" not in stderr


def test_redact_url() -> None:
    assert redact_url("http://user:pw@host:8000/v1") == "http://***@host:8000/v1"
    assert redact_url("https://h/v1?api-version=2&api_key=s3&token=t4") == (
        "https://h/v1?api-version=2&api_key=***&token=***"
    )
    assert redact_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"


def test_secrets_in_the_url_never_appear_in_messages(fake: FakeOpenAI) -> None:
    port = fake.server.server_address[1]
    url = f"http://alice:hunter2@127.0.0.1:{port}/v1?api-version=7&api_key=sekrit"
    fake.mode = "401"
    with pytest.raises(RemoteError) as err:
        ReplyStream(RemoteBackend(Endpoint(url, "fake-reflection")), USER, GenerationParams()).run()
    message = str(err.value)
    assert "hunter2" not in message and "sekrit" not in message
    assert f"***@127.0.0.1:{port}/v1" in message
    backend = RemoteBackend(Endpoint(url), retries=0)
    assert "hunter2" not in backend.model_name and "sekrit" not in backend.model_name
    fake.mode = "headers-only"
    with pytest.raises(RemoteError) as err:
        ReplyStream(
            RemoteBackend(Endpoint(url, "fake-reflection"), read_timeout_s=0.5),
            USER,
            GenerationParams(),
        ).run()
    assert "hunter2" not in str(err.value) and "sekrit" not in str(err.value)
    # the query still goes with every request
    assert "api-version=7" in fake.requests[-1]["path"]
    free = _free_port()
    proc = subprocess.run(
        cli("ask", "--endpoint", f"http://bob:pa55w0rd@127.0.0.1:{free}/v1?token=tok3n", "hi"),
        capture_output=True,
        text=True,
        env=run_env(),
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "cannot connect" in proc.stderr
    assert "pa55w0rd" not in proc.stderr and "tok3n" not in proc.stderr


def test_model_listing(fake: FakeOpenAI) -> None:
    fake.models = ["b-model", "a-model"]
    backend = RemoteBackend(Endpoint(fake.url))
    assert backend.list_models() == ["a-model", "b-model"]
    assert backend.resolve_model_name() == "a-model"


def test_cli_errors_are_one_line(fake: FakeOpenAI) -> None:
    fake.mode = "401"
    proc = subprocess.run(
        cli(
            "ask", "--endpoint", fake.url, "-m", "fake-reflection", "hi", "--api-key-env", "MY_KEY"
        ),
        capture_output=True,
        text=True,
        env=run_env(MY_KEY="sk-xyz"),
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "MY_KEY" in proc.stderr
    assert "sk-xyz" not in proc.stderr
    proc = subprocess.run(
        cli("ask", "--endpoint", "nonsense", "hi"), capture_output=True, text=True, env=run_env()
    )
    assert proc.returncode == 2 and "neither a URL" in proc.stderr


# -- a real server: llama-cpp-python's own OpenAI-compatible server on the demo model ------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def real_server() -> Iterator[str]:
    model = embedded_model_path()
    port = _free_port()
    args = [
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--model_alias",
        "smollm2-served",
    ]
    # The real server, run with the model parameters reflectchat itself loads with (on llama.cpp
    # builds with AMX kernels, which crash on some Xeon VMs, that means no extra buffer types).
    code = (
        "import runpy, sys\n"
        "from reflectchat.core.engine.llama_glue import extra_buffers_allowed, model_params\n"
        f"sys.argv = ['llama_cpp.server', *{args!r}]\n"
        "with model_params(None, extra_buffers=extra_buffers_allowed()):\n"
        "    runpy.run_module('llama_cpp.server', run_name='__main__')\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=run_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("llama_cpp.server did not start")
    try:
        RemoteBackend(Endpoint(url)).list_models()  # wait until it answers HTTP
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_real_server_ask_and_history(real_server: str, isolated_home: Path) -> None:
    env = run_env(REFLECTCHAT_HOME=str(isolated_home))
    first = subprocess.run(
        cli("ask", "--endpoint", real_server, "Name a fruit.", "--max-tokens", "16", "--json"),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["model"] == "smollm2-served" and data["answer"]
    second = subprocess.run(
        cli(
            "ask",
            "--endpoint",
            real_server,
            "-c",
            "And a vegetable?",
            "--max-tokens",
            "16",
            "--json",
        ),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["conversation_id"] == data["conversation_id"]
    shown = subprocess.run(
        cli("history", "export", str(data["conversation_id"]), "--format", "json"),
        capture_output=True,
        text=True,
        env=env,
    )
    messages = json.loads(shown.stdout)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]


def test_real_server_multi_turn_sends_answers_only(real_server: str) -> None:
    backend = RemoteBackend(Endpoint(real_server))
    session = ChatSession(
        backend, GenerationParams(max_tokens=12, seed=1), system_prompt="Be brief."
    )
    first = session.send("Say one word.").run()
    second = session.send("Another one.").run()
    assert first.finish_reason in ("stop", "length") and second.parsed.answer
    assert session.last_plan.messages[2] == Message("assistant", first.parsed.answer)


def test_real_server_cancel(real_server: str) -> None:
    backend = RemoteBackend(Endpoint(real_server))
    cancel = CancelToken()
    stream = ReplyStream(
        backend,
        [Message("user", "Tell a long story.")],
        GenerationParams(max_tokens=400, seed=2),
        cancel,
    )
    for i, _ in enumerate(stream):
        if i == 3:
            cancel.cancel()
    assert stream.result.finish_reason == "cancelled"
    assert stream.result.raw_text
    # the server is still fine afterwards
    again = ReplyStream(backend, USER, GenerationParams(max_tokens=4)).run()
    assert again.finish_reason in ("stop", "length")


def test_cli_secrets_stay_hidden_in_listings_and_bad_endpoints(fake: FakeOpenAI) -> None:
    port = fake.server.server_address[1]
    listed = subprocess.run(
        cli("models", "list", "--endpoint", f"http://u:hunter2@127.0.0.1:{port}/v1", "--json"),
        capture_output=True,
        text=True,
        env=run_env(),
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert "hunter2" not in listed.stdout and "***@127.0.0.1" in listed.stdout
    bad = subprocess.run(
        cli("ask", "--no-save", "--endpoint", "user:hunter2@host/v1", "hi"),
        capture_output=True,
        text=True,
        env=run_env(),
        timeout=60,
    )
    assert bad.returncode == 2 and "hunter2" not in bad.stderr and "neither a URL" in bad.stderr


# -- thinking control (issue 11) ----------------------------------------------------------------


def test_thinking_controls_go_out_as_the_server_takes_them(fake: FakeOpenAI) -> None:
    params = GenerationParams(think=False, effort=None, think_budget=None)
    ReplyStream(backend_for(fake), USER, params).run()
    body = fake.requests[-1]["body"]
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert body["reasoning_effort"] == "low"
    params = GenerationParams(effort="high", think_budget=64)
    ReplyStream(backend_for(fake), USER, params).run()
    body = fake.requests[-1]["body"]
    assert body["reasoning_effort"] == "high"
    assert body["reasoning_budget"] == 64
    assert body["chat_template_kwargs"] == {"thinking_budget": 64}
    # a hosted API that refuses unknown fields: the profile lists none
    endpoint = Endpoint(fake.url, "fake-reflection", api_key_env="FAKE_KEY", thinking_fields=())
    ReplyStream(RemoteBackend(endpoint), USER, GenerationParams(think=False)).run()
    body = fake.requests[-1]["body"]
    assert not {"chat_template_kwargs", "reasoning_effort", "reasoning_budget"} & set(body)


def test_a_budget_the_server_ignores_is_enforced_client_side(fake: FakeOpenAI) -> None:
    fake.mode = "reasoning"
    fake.reasoning = ["one ", "two ", "three ", "four ", "five "]
    stream = ReplyStream(backend_for(fake), USER, GenerationParams(think_budget=2))
    events = list(stream)
    result = stream.result
    assert result is not None and result.thinking_cut == "budget"
    assert result.parsed.thinking == "one two"  # the rest is not shown
    assert stream.hidden_thinking_tokens == 3
    assert result.stats.thinking_tokens == 5  # but it is counted
    assert result.parsed.answer == "Hello there."
    assert any(e.type == "cut" for e in events)


def test_real_server_takes_the_thinking_fields(real_server: str, isolated_home: Path) -> None:
    # llama-cpp-python's server must accept (or ignore) the thinking-control fields: a request
    # it refused would make --think unusable against it.
    env = run_env(REFLECTCHAT_HOME=str(isolated_home))
    out = subprocess.run(
        cli(
            "ask", "--endpoint", real_server, "Name a fruit.", "--max-tokens", "16", "--json",
            "--think", "off", "--effort", "low", "--think-budget", "8", "--no-save",
        ),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["answer"] and data["stats"]["answer_tokens"] > 0
