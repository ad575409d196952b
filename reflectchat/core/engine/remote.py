"""A remote engine: any OpenAI-compatible `/v1/chat/completions` with streaming (vLLM,
llama.cpp's llama-server, llama-cpp-python's server, Ollama, hosted APIs) through the `openai`
client — no home-made HTTP.

- Servers with a reasoning parser send `reasoning_content` (or `reasoning`) deltas apart from
  `content`; they go out as reasoning deltas, straight into the thinking section as text (never
  re-wrapped in tags, so a `</think>` inside them is just text). Markers inside `content`
  (harmony, `<think>`) go through the format parser, chosen from the served model's name.
- Every wait is bounded: `connect_timeout` for each TCP connect, `read_timeout` for the whole wait
  until the server starts answering (retries included) and for any silence mid-stream. Defaults
  5 s and 30 s; an endpoint profile sets its own, REFLECTCHAT_REMOTE_TIMEOUT overrides both.
- Retries with backoff on connection errors, 429 and 5xx happen before the first token only, and
  only while the time allows (a stream already under way is never replayed, so no text is ever
  duplicated). A stream that breaks mid-way keeps the partial reply, finished as "error".
- The stream is read in a worker thread; the caller waits on a queue in short steps, so a cancel
  (from a signal handler or another thread) ends the reply at once even while the server is
  silent, and closes the connection.
- `max_tokens` is enforced here too (a server that ignores it cannot stream forever).
- The API key is read from an environment variable and never appears in messages or history;
  passwords in the URL and keys in its query string are masked wherever the URL is shown.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from reflectchat.core.chat.thinking import REMOTE_THINKING_FIELDS, remote_thinking_body
from reflectchat.core.engine.base import (
    CancelToken,
    Delta,
    EngineError,
    Finished,
    FinishReason,
    GenerationParams,
    GenerationStats,
    Message,
    Started,
    StatsClock,
    StreamEvent,
)
from reflectchat.core.errors import NetworkError
from reflectchat.core.reply.detect import Detection, format_for_name
from reflectchat.core.reply.format_catalog import AUTO

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
TIMEOUT_ENV = "REFLECTCHAT_REMOTE_TIMEOUT"
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_READ_TIMEOUT_S = 30.0
_POLL_S = 0.05  # how often a waiting caller looks at its cancel token
_SECRET_PARAM = re.compile(r"key|token|secret|password|passwd|auth|sig|credential", re.I)

T = TypeVar("T")


def redact_url(url: str) -> str:
    """The URL as it may be shown: no user:password, no api keys or tokens in the query."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = "***@" + netloc.rsplit("@", 1)[1]
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode(
                [(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*"
            )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:  # not parseable: show nothing that might be a secret
        return re.sub(r"//[^/@]*@", "//***@", url).split("?", 1)[0]


@dataclass(frozen=True)
class Endpoint:
    url: str  # base URL, e.g. http://127.0.0.1:8000/v1 (a trailing /v1 is added if missing)
    model: str | None = None  # None: the first model the server lists
    api_key_env: str | None = None  # the variable holding the key, never the key itself
    headers: dict[str, str] = field(default_factory=dict)
    name: str | None = None  # a profile name from the config
    # Extra request fields a server understands, e.g. vLLM's {"skip_special_tokens": false}:
    # without it vLLM drops Reflection 70B's tags, which are special tokens.
    extra_body: dict[str, Any] = field(default_factory=dict)
    connect_timeout: float | None = None  # seconds; None: the default
    read_timeout: float | None = None  # seconds; None: the default
    # Which thinking-control fields this server takes (core/chat/thinking.py); () for a hosted
    # API that refuses unknown fields. The budget is also enforced here, client-side.
    thinking_fields: tuple[str, ...] = REMOTE_THINKING_FIELDS

    @property
    def base_url(self) -> str:
        """The URL without its query (that is sent with every request, see `query`)."""
        parts = urlsplit(self.url)
        path = parts.path.rstrip("/")
        path = path if path.endswith("/v1") else path + "/v1"
        return urlunsplit((parts.scheme, parts.netloc, path, "", ""))

    @property
    def query(self) -> dict[str, str]:
        """Query parameters in the URL, e.g. Azure-style ?api-version=…&api-key=…"""
        return dict(parse_qsl(urlsplit(self.url).query, keep_blank_values=True))

    @property
    def display_url(self) -> str:
        """base_url for messages and history: secrets masked."""
        return redact_url(self.base_url)

    @property
    def key_env(self) -> str:
        return self.api_key_env or DEFAULT_KEY_ENV


class RemoteError(NetworkError, EngineError):
    """A remote failure, said for people, with no secrets in it."""


@dataclass(frozen=True)
class Timeouts:
    connect: float
    read: float


class _Cancelled(Exception):
    pass


_END = object()


class _Reader:
    """Opens the request and reads the stream in a daemon thread; the consumer takes items from
    a bounded queue and may abandon it at any moment (`abort`), which shuts the socket down so
    the thread's blocked read returns at once."""

    def __init__(self, open_stream: Callable[[threading.Event], Any]) -> None:
        self._open = open_stream
        self.items: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=256)
        self.stop = threading.Event()
        self._lock = threading.RLock()  # abort() may run in a signal handler on this thread
        self._stream: Any = None
        self._thread = threading.Thread(target=self._run, name="reflectchat-remote", daemon=True)
        self._thread.start()

    def _put(self, kind: str, value: Any = None) -> bool:
        while not self.stop.is_set():
            try:
                self.items.put((kind, value), timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            stream = self._open(self.stop)
        except BaseException as exc:  # handed to the consumer, which says it for people
            self._put("error", exc)
            return
        with self._lock:
            self._stream = stream
            stopped = self.stop.is_set()
        if stopped:
            _close_quietly(stream)
            return
        try:
            if not self._put("open", stream):
                return
            for chunk in stream:
                if not self._put("chunk", chunk):
                    return
            self._put("end")
        except BaseException as exc:
            self._put("broken", exc)
        finally:
            _close_quietly(stream)

    def abort(self) -> None:
        """Stop now, from any thread (also a signal handler): the connection is shut down."""
        self.stop.set()
        with self._lock:
            stream = self._stream
        if stream is None:
            return
        sock = None
        with contextlib.suppress(Exception):
            sock = stream.response.extensions["network_stream"].get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the reader's blocked recv
        else:
            _close_quietly(stream)

    def next(self, cancel: CancelToken | None, deadline: float) -> tuple[str, Any]:
        """The next item; ("cancelled", None) or ("timeout", None) when that comes first."""
        while True:
            if cancel is not None and cancel.cancelled:
                return "cancelled", None
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout", None
            try:
                return self.items.get(timeout=min(_POLL_S, left))
            except queue.Empty:
                continue


def _close_quietly(stream: Any) -> None:
    with contextlib.suppress(Exception):
        stream.close()


def _seconds(value: object, what: str) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = -1.0
    if isinstance(value, bool) or not seconds > 0 or seconds == float("inf"):
        raise RemoteError(f"{what} must be a number of seconds above 0, not {value!r}")
    return seconds


class RemoteBackend:
    def __init__(
        self,
        endpoint: Endpoint,
        *,
        connect_timeout_s: float | None = None,
        read_timeout_s: float | None = None,
        retries: int = 3,
    ) -> None:
        import openai

        self.endpoint = endpoint
        self._openai = openai
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._retries = retries
        key = os.environ.get(endpoint.key_env) or "none"  # local servers accept any key
        self._client = openai.OpenAI(
            api_key=key,
            base_url=endpoint.base_url,
            max_retries=0,  # retried here, within the time bound (see _with_retries)
            timeout=openai.Timeout(DEFAULT_READ_TIMEOUT_S, connect=DEFAULT_CONNECT_TIMEOUT_S),
            default_headers=endpoint.headers or None,
            default_query=endpoint.query or None,
        )
        self._model = endpoint.model

    @property
    def model_name(self) -> str:
        return self._model or self.endpoint.name or self.endpoint.display_url

    def timeouts(self) -> Timeouts:
        """Arguments, then REFLECTCHAT_REMOTE_TIMEOUT, then the endpoint profile, then defaults.
        Checked when used, so a bad value is an error message where requests are made."""
        read: float = DEFAULT_READ_TIMEOUT_S
        connect: float = DEFAULT_CONNECT_TIMEOUT_S
        ep = self.endpoint
        if ep.read_timeout is not None:
            read = _seconds(ep.read_timeout, "read_timeout")
        if ep.connect_timeout is not None:
            connect = _seconds(ep.connect_timeout, "connect_timeout")
        env = os.environ.get(TIMEOUT_ENV, "").strip()
        if env:
            read = _seconds(env, TIMEOUT_ENV)
            connect = min(connect, read)
        if self._read_timeout_s is not None:
            read = self._read_timeout_s
        if self._connect_timeout_s is not None:
            connect = self._connect_timeout_s
        return Timeouts(connect=connect, read=read)

    def list_models(self) -> list[str]:
        limits = self.timeouts()
        deadline = time.monotonic() + limits.read
        try:
            page = self._with_retries(
                lambda t: self._client.models.list(timeout=t), limits, deadline
            )
            return sorted(m.id for m in page)
        except self._openai.OpenAIError as exc:
            raise self._error(exc, limits) from None

    def resolve_model_name(self) -> str:
        if self._model is None:
            models = self.list_models()
            if not models:
                raise RemoteError(f"{self.endpoint.display_url} lists no models; pass --model-name")
            self._model = models[0]
        return self._model

    def _with_retries(
        self,
        call: Callable[[Any], T],
        limits: Timeouts,
        deadline: float,
        stop: threading.Event | None = None,
    ) -> T:
        """Call, retrying connection errors, 408/409/429 and 5xx with backoff while time is
        left before `deadline`; each try's timeouts are cut to what is left. With `stop` (a
        stream read in a thread, whose consumer keeps the deadline itself) the read timeout
        stays whole: it also bounds each silence later in the stream."""
        o = self._openai
        attempt = 0
        while True:
            left = max(deadline - time.monotonic(), 0.01)
            read = limits.read if stop is not None else left
            timeout = o.Timeout(read, connect=min(limits.connect, left))
            try:
                return call(timeout)
            except o.OpenAIError as exc:
                if isinstance(exc, o.APIStatusError):
                    status = exc.status_code
                    retryable = status in (408, 409, 429) or status >= 500
                else:
                    retryable = isinstance(exc, o.APIConnectionError)
                delay = _retry_after(exc) if retryable else None
                if delay is None:
                    delay = min(0.5 * 2**attempt, 4.0)
                if not retryable or attempt >= self._retries:
                    raise
                if time.monotonic() + delay >= deadline - 0.05:
                    raise  # no time left for another try
                if stop is None:
                    time.sleep(delay)
                elif stop.wait(delay):
                    raise _Cancelled() from None
                attempt += 1

    def stream(
        self, messages: list[Message], params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[StreamEvent]:
        limits = self.timeouts()
        clock = StatsClock()
        model = self.resolve_model_name()
        request: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if params.seed is not None:
            request["seed"] = params.seed
        thinking = remote_thinking_body(
            think=params.think,
            effort=params.effort,
            budget=params.think_budget,
            allowed=self.endpoint.thinking_fields,
        )
        if self.endpoint.extra_body or thinking:
            request["extra_body"] = {**thinking, **self.endpoint.extra_body}
        # The whole wait for the first chunk (connects, retries, the server's prompt
        # processing) fits in one read_timeout from here.
        deadline = time.monotonic() + limits.read

        def open_stream(stop: threading.Event) -> Any:
            return self._with_retries(
                lambda t: self._client.chat.completions.create(**request, timeout=t),
                limits,
                deadline,
                stop,
            )

        reader = _Reader(open_stream)
        unhook = cancel.on_cancel(reader.abort) if cancel is not None else None
        try:
            yield from self._events(reader, cancel, params, limits, clock, deadline)
        finally:
            if unhook is not None:
                unhook()
            reader.abort()

    def _events(
        self,
        reader: _Reader,
        cancel: CancelToken | None,
        params: GenerationParams,
        limits: Timeouts,
        clock: StatsClock,
        deadline: float,
    ) -> Iterator[StreamEvent]:
        where = self.endpoint.display_url
        # A little grace, so that the thread's own precise error (connect timeout, 5xx after
        # retries) wins over the plain "did not answer in time".
        kind, value = reader.next(cancel, deadline + 0.5)
        if kind == "cancelled" or (kind == "error" and isinstance(value, _Cancelled)):
            yield Started(format=self.reasoning.format.name)
            yield Finished("cancelled", GenerationStats(total_s=clock.elapsed()))
            return
        if kind == "timeout":
            raise self._timeout_error(limits)
        if kind == "error":
            if isinstance(value, self._openai.OpenAIError):
                raise self._error(value, limits) from None
            raise RemoteError(f"the request to {where} failed ({type(value).__name__})")
        yield Started(format=self.reasoning.format.name)
        limit = params.max_tokens if params.max_tokens and params.max_tokens > 0 else None
        reason: FinishReason = "stop"
        got_chunk = False
        usage = None
        error: str | None = None
        finished_by_server = False
        while True:
            kind, chunk = reader.next(cancel, deadline)
            if kind == "cancelled":
                reason = "cancelled"
                break
            if kind == "timeout":
                if not got_chunk:
                    raise RemoteError(
                        f"{where} accepted the request but sent nothing in {limits.read:g} s; "
                        f"is the server overloaded? ({_raise_hint()})"
                    )
                reason = "error"
                error = (
                    f"the stream from {where} stalled (nothing for {limits.read:g} s); "
                    "the partial reply is kept"
                )
                break
            if kind == "broken":
                # A stream that breaks mid-way (or that a cancel closed) keeps what arrived.
                if cancel is not None and cancel.cancelled:
                    reason = "cancelled"
                else:
                    reason = "error"
                    error = (
                        f"the stream from {where} broke off mid-reply "
                        f"({type(chunk).__name__}); the partial reply is kept"
                    )
                break
            if kind == "end":
                if not finished_by_server:
                    # The connection ended without the server saying the reply was done.
                    reason = "error"
                    error = (
                        f"the stream from {where} ended before the reply was finished; "
                        "the partial reply is kept"
                    )
                break
            got_chunk = True
            deadline = time.monotonic() + limits.read  # from now on: the longest silence
            # Tokens before this chunk (usage may count this chunk's own already).
            counted = usage.completion_tokens if usage else 0
            if getattr(chunk, "usage", None):
                usage = chunk.usage
            stop_here = False
            for choice in chunk.choices or ():
                delta = choice.delta
                extra = delta.model_extra or {}
                reasoning = extra.get("reasoning_content") or extra.get("reasoning")
                if (reasoning or delta.content) and limit is not None:
                    used = max(clock.tokens, counted or 0)
                    if used >= limit:
                        # The server went past max_tokens: stop reading, as a local model does.
                        stop_here = True
                        break
                if reasoning or delta.content:
                    clock.token()  # a chunk stands for a token when the server sends no usage
                if reasoning:
                    yield Delta(reasoning, reasoning=True)
                if delta.content:
                    yield Delta(delta.content)
                if choice.finish_reason:
                    finished_by_server = True
                if choice.finish_reason == "length":
                    reason = "length"
            if stop_here:
                reason = "length"
                break
        reader.abort()
        stats = clock.stats(
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else None,
        )
        yield Finished(reason, stats, error)

    @property
    def reasoning(self) -> Detection:
        """The reasoning format, from the served model's name (`auto` then detects it from
        the stream itself)."""
        return format_for_name(self.model_name) or Detection(
            AUTO, "the served model's name names no format: detected from the stream"
        )

    def _timeout_error(self, limits: Timeouts) -> RemoteError:
        return RemoteError(
            f"{self.endpoint.display_url} did not answer in time (nothing in {limits.read:g} s); "
            f"is the server up and loaded? ({_raise_hint()})"
        )

    def _error(self, exc: Exception, limits: Timeouts | None = None) -> RemoteError:
        o = self._openai
        where = self.endpoint.display_url
        limits = limits or self.timeouts()
        if isinstance(exc, (o.AuthenticationError, o.PermissionDeniedError)):
            return RemoteError(
                f"{where} refused the request ({exc.status_code}): the API key is missing or "
                f"wrong — set {self.endpoint.key_env}"
            )
        if isinstance(exc, o.NotFoundError):
            return RemoteError(
                f"{where} answered 404: the model '{self._model}' or the path is wrong — check "
                "the endpoint URL (it should end in /v1) and `reflectchat models list --endpoint`"
            )
        if isinstance(exc, o.RateLimitError):
            return RemoteError(
                f"{where} is rate-limiting requests (429) even after retries; wait and try again"
            )
        if isinstance(exc, o.APITimeoutError):
            # By name: the transport is httpx or a fork of it, depending on the openai version.
            if type(exc.__cause__).__name__ == "ConnectTimeout":
                return RemoteError(
                    f"cannot connect to {where} (no connection in {limits.connect:g} s); is the "
                    f"server running there and reachable? ({_raise_hint('connect_timeout')})"
                )
            return self._timeout_error(limits)
        if isinstance(exc, o.APIConnectionError):
            return RemoteError(f"cannot connect to {where}; is the server running there?")
        if isinstance(exc, o.APIStatusError):
            return RemoteError(
                f"{where} answered {exc.status_code} after retries; see the server's log"
            )
        return RemoteError(f"the request to {where} failed ({type(exc).__name__})")


def _raise_hint(key: str = "read_timeout") -> str:
    return f"to wait longer set {key} in the endpoint profile or {TIMEOUT_ENV}"


def _retry_after(exc: Exception) -> float | None:
    """The server's Retry-After, in seconds, when it gives a short one."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 < seconds <= 60 else None
