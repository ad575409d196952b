"""A remote engine: any OpenAI-compatible `/v1/chat/completions` with streaming (vLLM,
llama.cpp's llama-server, llama-cpp-python's server, Ollama, hosted APIs) through the `openai`
client — no home-made HTTP.

- Servers with a reasoning parser send `reasoning_content` (or `reasoning`) deltas apart from
  `content`; they are wrapped in `<think>…</think>` so the section parser, the history and the
  display treat them exactly like a local model's thinking. Tags inside `content` go through the
  parser as usual.
- Retries with backoff on connection errors, 429 and 5xx happen before the first token only
  (the client retries the request; a stream already under way is never replayed, so no text is
  ever duplicated). A stream that breaks mid-way keeps the partial reply, finished as "error".
- Cancelling closes the HTTP stream at once.
- The API key is read from an environment variable and never appears in messages or history.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from reflectchat.core.engine import (
    CancelToken,
    Delta,
    EngineError,
    Finished,
    GenerationParams,
    GenerationStats,
    Message,
    Started,
    StreamEvent,
)

DEFAULT_KEY_ENV = "OPENAI_API_KEY"


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

    @property
    def base_url(self) -> str:
        url = self.url.rstrip("/")
        return url if url.endswith("/v1") else url + "/v1"

    @property
    def key_env(self) -> str:
        return self.api_key_env or DEFAULT_KEY_ENV


class RemoteError(EngineError):
    """A remote failure, said for people, with no secrets in it."""


class RemoteBackend:
    def __init__(
        self,
        endpoint: Endpoint,
        *,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 120.0,
        retries: int = 3,
    ) -> None:
        import openai

        self.endpoint = endpoint
        self._openai = openai
        key = os.environ.get(endpoint.key_env) or "none"  # local servers accept any key
        self._client = openai.OpenAI(
            api_key=key,
            base_url=endpoint.base_url,
            max_retries=retries,
            timeout=openai.Timeout(read_timeout_s, connect=connect_timeout_s),
            default_headers=endpoint.headers or None,
        )
        self._model = endpoint.model

    @property
    def model_name(self) -> str:
        return self._model or self.endpoint.name or self.endpoint.base_url

    def list_models(self) -> list[str]:
        try:
            return sorted(m.id for m in self._client.models.list())
        except self._openai.OpenAIError as exc:
            raise self._error(exc) from None

    def resolve_model_name(self) -> str:
        if self._model is None:
            models = self.list_models()
            if not models:
                raise RemoteError(f"{self.endpoint.base_url} lists no models; pass --model-name")
            self._model = models[0]
        return self._model

    def stream(
        self, messages: list[Message], params: GenerationParams, cancel: CancelToken | None = None
    ) -> Iterator[StreamEvent]:
        start = time.perf_counter()
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
        if self.endpoint.extra_body:
            request["extra_body"] = dict(self.endpoint.extra_body)
        try:
            response = self._client.chat.completions.create(**request)
        except self._openai.OpenAIError as exc:
            raise self._error(exc) from None
        unhook = cancel.on_cancel(response.close) if cancel is not None else None
        yield Started()
        reason = "stop"
        n_chunks = 0
        first = 0.0
        thinking = False
        usage = None
        error: str | None = None
        finished_by_server = False
        try:
            for chunk in response:
                if cancel is not None and cancel.cancelled:
                    reason = "cancelled"
                    break
                if getattr(chunk, "usage", None):
                    usage = chunk.usage
                for choice in chunk.choices or ():
                    delta = choice.delta
                    extra = delta.model_extra or {}
                    reasoning = extra.get("reasoning_content") or extra.get("reasoning")
                    text = ""
                    if reasoning:
                        if not thinking:
                            text, thinking = "<think>", True
                        text += reasoning
                    if delta.content:
                        if thinking:
                            text, thinking = text + "</think>", False
                        text += delta.content
                    if text:
                        if not first:
                            first = time.perf_counter()
                        n_chunks += 1
                        yield Delta(text)
                    if choice.finish_reason:
                        finished_by_server = True
                    if choice.finish_reason == "length":
                        reason = "length"
        except Exception as exc:  # the transport's read errors are not all OpenAIError
            # A stream that breaks mid-way (or that a cancel closed) keeps what arrived.
            if cancel is not None and cancel.cancelled:
                reason = "cancelled"
            else:
                reason = "error"
                error = (
                    f"the stream from {self.endpoint.base_url} broke off mid-reply "
                    f"({type(exc).__name__}); the partial reply is kept"
                )
        else:
            if reason == "stop" and not finished_by_server:
                # The connection ended without the server saying the reply was done.
                reason = "error"
                error = (
                    f"the stream from {self.endpoint.base_url} ended before the reply was "
                    "finished; the partial reply is kept"
                )
        finally:
            if unhook is not None:
                unhook()
            response.close()
        if thinking:
            yield Delta("</think>")
        end = time.perf_counter()
        completion = usage.completion_tokens if usage else n_chunks
        decode = end - (first or end)
        yield Finished(
            reason,  # type: ignore[arg-type]
            GenerationStats(
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=completion,
                ttft_s=(first or end) - start,
                tokens_per_second=completion / decode if completion > 1 and decode > 0 else 0.0,
                total_s=end - start,
            ),
            error,
        )

    def _error(self, exc: Exception) -> RemoteError:
        o = self._openai
        where = self.endpoint.base_url
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
            return RemoteError(f"{where} did not answer in time; is the server up and loaded?")
        if isinstance(exc, o.APIConnectionError):
            return RemoteError(f"cannot connect to {where}; is the server running there?")
        if isinstance(exc, o.APIStatusError):
            return RemoteError(
                f"{where} answered {exc.status_code} after retries; see the server's log"
            )
        return RemoteError(f"the request to {where} failed ({type(exc).__name__})")
