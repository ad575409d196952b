"""A small OpenAI-compatible server for what a real one won't do on demand: reasoning_content
deltas, 401, 404, 429-then-success, a stream cut mid-way, a server that never answers (or sends
headers and then nothing, or streams forever)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self) -> None:
        # ok | reasoning | 401 | 404 | 429-then-ok | 500-then-ok | cut | slow | hang
        # | silent (reads the request, never answers) | headers-only (200 and headers, then
        # nothing) | forever (content chunks without end, never a finish)
        self.mode = "ok"
        self.requests: list[dict[str, Any]] = []
        self.failures_left = 0
        self.models = ["fake-reflection"]
        self.reply = ["Hello", " there", "."]
        self.reasoning = ["Let me ", "think."]
        self.release = threading.Event()  # set on stop: silent handlers end
        self.chunks_sent = 0  # in forever mode
        self.disconnected = threading.Event()  # forever mode: the client closed the stream

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    if fake.mode == "401":
                        return self._error(401, "invalid_api_key")
                    data = [{"id": m, "object": "model", "owned_by": "test"} for m in fake.models]
                    return self._json(200, {"object": "list", "data": data})
                return self._error(404, "not_found")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._error(404, "not_found")
                mode = fake.mode
                if mode == "401":
                    return self._error(401, "invalid_api_key")
                if mode == "404" or body.get("model") not in fake.models:
                    return self._error(404, "model_not_found")
                if mode in ("429-then-ok", "500-then-ok") and fake.failures_left > 0:
                    fake.failures_left -= 1
                    status = 429 if mode.startswith("429") else 500
                    return self._error(status, "try again", retry_after="0")
                if mode == "hang":
                    time.sleep(30)
                    return
                if mode == "silent":
                    fake.release.wait(120)
                    return
                self._stream(body, mode)

            def _stream(self, body: dict, mode: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                self.wfile.flush()
                if mode == "headers-only":
                    fake.release.wait(120)
                    return
                if mode == "forever":
                    return self._forever(body)
                deltas: list[dict] = []
                if mode == "reasoning":
                    deltas += [{"reasoning_content": r} for r in fake.reasoning]
                deltas += [{"content": c} for c in fake.reply]
                for i, delta in enumerate(deltas):
                    if mode == "cut" and i == 2:
                        self.wfile.flush()
                        self.connection.shutdown(2)  # the network goes away mid-reply
                        return
                    if mode == "slow":
                        time.sleep(0.3)
                    self._event(self._chunk(body, delta, None))
                self._event(self._chunk(body, {}, "stop"))
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def _forever(self, body: dict) -> None:
                try:
                    while not fake.release.is_set():
                        self._event(self._chunk(body, {"content": "word "}, None))
                        fake.chunks_sent += 1
                        time.sleep(0.002)
                except OSError:  # the client closed the stream
                    fake.disconnected.set()

            def _chunk(self, body: dict, delta: dict, finish: str | None) -> dict:
                return {
                    "id": "c1",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": body.get("model"),
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }

            def _event(self, data: dict) -> None:
                self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()

            def _json(self, status: int, data: dict, **headers: str) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in headers.items():
                    self.send_header(key.replace("_", "-"), value)
                self.end_headers()
                self.wfile.write(raw)

            def _error(self, status: int, code: str, **headers: str) -> None:
                self._json(
                    status, {"error": {"message": code, "type": code, "code": code}}, **headers
                )

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
