"""A small stand-in for the Hugging Face Hub on 127.0.0.1, for the real huggingface-hub code.

Two HTTP servers, as on the real Hub: the Hub itself (the model API and ``/resolve/``) and a
CDN on another port that serves LFS files by sha256 (so the Hub's 302 leaves the Hub's origin
and the token stays behind). What is answered, and how, follows huggingface_hub 2.x:

- ``GET /api/models/{owner}/{name}[/revision/{rev}]?blobs=True`` (``HfApi.model_info(...,
  files_metadata=True)``): ``sha``, ``gated`` and ``siblings`` with ``size`` and, for LFS files,
  ``lfs: {sha256, size, pointerSize}``.
- ``HEAD``/``GET /{owner}/{name}/resolve/{rev}/{path}`` (``get_hf_file_metadata``): an LFS file
  gets a 302 to the CDN with ``X-Repo-Commit``, ``X-Linked-Etag`` (the sha256) and
  ``X-Linked-Size``; a small file is served directly with its git ``ETag``.
- ``GET /{sha256}`` on the CDN (``http_get``): the bytes, with ``Range: bytes=N-`` answered 206.
- Errors carry ``X-Error-Code`` (RepoNotFound, GatedRepo, EntryNotFound, RevisionNotFound) and
  ``X-Error-Message`` as the Hub sends them; ``hf_raise_for_status`` maps them.

Xet headers are sent only when asked for (``xet``).

Knobs: ``token`` (a gated repository needs ``Authorization: Bearer <token>``; any other token
is refused with 401), ``corrupt`` (paths whose served bytes are altered: a checksum mismatch),
``drop_after`` (path -> N: the next GET of that file sends N bytes, then drops the connection),
``ignore_range`` (answer every GET with the whole file, as some proxies do), ``range_status``
(answer Range requests with this error status instead), ``xet`` (advertise Xet storage in
``/resolve/`` answers, as the Hub does for most files today: huggingface-hub's Xet client is
then expected to stay unused, and the plain download to follow the 302 itself), ``endless``
(paths whose GET streams the file's bytes and then garbage without end, with no
Content-Length, as a broken or hostile server might; ``sent`` counts what went out),
``stall_after`` (path -> N: the next GET of that file sends N bytes, then nothing until the
server stops), ``redirect_loop`` ("hub" or "cdn": that server answers every request with a 302
back to itself).
Every request is recorded in ``requests``.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass
class FakeFile:
    data: bytes
    lfs: bool = True

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def git_oid(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, FakeFile] = field(default_factory=dict)
    gated: bool = False
    commit: str = COMMIT


@dataclass
class Seen:
    server: str  # "hub" or "cdn"
    method: str
    path: str
    headers: dict[str, str]  # lower-case names


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.token: str | None = None
        self.corrupt: set[str] = set()
        self.drop_after: dict[str, int] = {}
        self.ignore_range = False
        self.range_status: int | None = None
        self.xet = False
        self.endless: set[str] = set()
        self.sent: dict[str, int] = {}
        self.stall_after: dict[str, int] = {}
        self.redirect_loop: str | None = None
        self.stopped = threading.Event()
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []

    # --- content ------------------------------------------------------------------------------

    def add_repo(
        self, repo_id: str, files: dict[str, bytes | Path], *, gated: bool = False
    ) -> None:
        repo = FakeRepo(repo_id, gated=gated)
        for path, content in files.items():
            data = content.read_bytes() if isinstance(content, Path) else content
            repo.files[path] = FakeFile(data, lfs=not path.endswith((".md", ".json")))
        self.repos[repo_id] = repo

    def file(self, repo_id: str, path: str) -> FakeFile:
        return self.repos[repo_id].files[path]

    def seen(self, server: str | None = None, method: str | None = None) -> list[Seen]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (server is None or r.server == server) and (method is None or r.method == method)
            ]

    # --- serving ------------------------------------------------------------------------------

    def start(self) -> FakeHub:
        self._hub = self._serve(_HubHandler)
        self._cdn = self._serve(_CdnHandler)
        return self

    def stop(self) -> None:
        self.stopped.set()  # releases stalled and endless answers
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def _serve(self, handler: type[_Handler]) -> ThreadingHTTPServer:
        server = _Server(("127.0.0.1", 0), handler)
        server.fake = self  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        self._servers.append(server)
        return server

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def _find_blob(self, sha: str) -> tuple[str, FakeFile] | None:
        for repo in self.repos.values():
            for path, f in repo.files.items():
                if f.sha256 == sha:
                    return path, f
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up is fine
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_name = "hub"

    @property
    def fake(self) -> FakeHub:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet

    def do_GET(self) -> None:
        self._record()
        if not self.loop():
            self.handle_request(head=False)

    def do_HEAD(self) -> None:
        self._record()
        if not self.loop():
            self.handle_request(head=True)

    def loop(self) -> bool:
        """In redirect-loop mode, send the client back to where it came from."""
        if self.fake.redirect_loop != self.server_name:
            return False
        self.reply(302, b"", {"Location": self.path}, head=True)
        return True

    def _record(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.fake._record(Seen(self.server_name, self.command, self.path, headers))

    def handle_request(self, head: bool) -> None:
        raise NotImplementedError

    def reply(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        head: bool = False,
        length: int | None = None,
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def error(
        self, status: int, code: str | None, message: str, extra: dict[str, str] | None = None
    ) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        headers.update(extra or {})
        body = json.dumps({"error": message}).encode()
        self.reply(status, body, headers, head=self.command == "HEAD")

    def auth_problem(self, repo: FakeRepo) -> bool:
        """Answer 401 when the token is wrong, or missing for a gated repository."""
        sent = self.headers.get("Authorization")
        valid = f"Bearer {self.fake.token}" if self.fake.token else None
        if sent is not None and sent != valid:
            self.error(401, None, "Invalid credentials in Authorization header")
            return True
        if repo.gated and sent is None:
            self.error(
                401,
                "GatedRepo",
                f"Access to model {repo.repo_id} is restricted. You must have access to it and "
                "be authenticated to access it. Please log in.",
            )
            return True
        return False


class _HubHandler(_Handler):
    server_name = "hub"

    def handle_request(self, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", path)
        if m and not head:
            return self.model_info(m.group(1), m.group(2))
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m:
            return self.resolve(m.group(1), m.group(2), m.group(3), head)
        self.error(404, None, "Not Found")

    def repo_or_404(self, repo_id: str) -> FakeRepo | None:
        repo = self.fake.repos.get(repo_id)
        if repo is None:
            self.error(404, "RepoNotFound", "Repository not found")
        return repo

    def model_info(self, repo_id: str, revision: str | None) -> None:
        repo = self.repo_or_404(repo_id)
        if repo is None:
            return
        sent = self.headers.get("Authorization")
        if sent is not None and sent != f"Bearer {self.fake.token}":
            return self.error(401, None, "Invalid credentials in Authorization header")
        if revision not in (None, "main", repo.commit):
            return self.error(404, "RevisionNotFound", "Invalid rev id")
        siblings = []
        for name, f in sorted(repo.files.items()):
            item: dict[str, Any] = {"rfilename": name, "size": len(f.data), "blobId": f.git_oid}
            if f.lfs:
                item["lfs"] = {"sha256": f.sha256, "size": len(f.data), "pointerSize": 134}
            siblings.append(item)
        body = {
            "_id": "fake",
            "id": repo_id,
            "modelId": repo_id,
            "sha": repo.commit,
            "private": False,
            "gated": "manual" if repo.gated else False,
            "disabled": False,
            "tags": ["gguf"],
            "siblings": siblings,
        }
        self.reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def resolve(self, repo_id: str, revision: str, name: str, head: bool) -> None:
        repo = self.repo_or_404(repo_id)
        if repo is None or self.auth_problem(repo):
            return
        if revision not in ("main", repo.commit):
            return self.error(404, "RevisionNotFound", "Invalid rev id")
        f = repo.files.get(name)
        commit = {"X-Repo-Commit": repo.commit}
        if f is None:
            return self.error(404, "EntryNotFound", "Entry not found", commit)
        if not f.lfs:
            headers = {**commit, "ETag": f'"{f.git_oid}"', "Content-Type": "text/plain"}
            return self.reply(200, f.data, headers, head=head)
        headers = {
            **commit,
            "ETag": '"pointer-etag-0000"',
            "X-Linked-Etag": f'"{f.sha256}"',
            "X-Linked-Size": str(len(f.data)),
            "Location": f"{self.fake.cdn}/{f.sha256}?name={name}",
        }
        if self.fake.xet:
            headers["X-Xet-Hash"] = hashlib.sha256(b"xet" + f.data).hexdigest()
            headers["X-Xet-Refresh-Route"] = f"/api/models/{repo_id}/xet-read-token/{repo.commit}"
        self.reply(302, b"", headers, head=True)


class _CdnHandler(_Handler):
    server_name = "cdn"

    def handle_request(self, head: bool) -> None:
        sha = urlsplit(self.path).path.strip("/")
        found = self.fake._find_blob(sha)
        if found is None:
            return self.error(404, None, "NoSuchKey")
        name, f = found
        data = f.data
        if name in self.fake.corrupt:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        total = len(data)
        start, end = 0, total - 1
        status = 200
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        m = None if self.fake.ignore_range else _RANGE.match(self.headers.get("Range", ""))
        if m and self.fake.range_status:
            return self.error(self.fake.range_status, None, "Service Unavailable")
        if m:
            start = int(m.group(1))
            end = min(int(m.group(2)), total - 1) if m.group(2) else total - 1
            if start >= total:
                headers["Content-Range"] = f"bytes */{total}"
                return self.reply(416, b"", headers, head=head)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{total}"
        body = data[start : end + 1]
        if not head and name in self.fake.endless:
            return self.stream_without_end(name, status, headers, body)
        stall = None if head else self.fake.stall_after.pop(name, None)
        if stall is not None:
            self.reply(status, body[:stall], headers, length=len(body))
            self.wfile.flush()
            self.fake.stopped.wait(120)  # silent, the connection open
            self.close_connection = True
            return
        drop = None if head else self.fake.drop_after.pop(name, None)
        if drop is None:
            return self.reply(status, body, headers, head=head)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:drop])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def stream_without_end(
        self, name: str, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        """The file, then more and more bytes, until the client hangs up (no Content-Length:
        the body ends only when the connection does)."""
        self.send_response(status)
        for key, value in headers.items():
            if key != "Content-Range":
                self.send_header(key, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        chunk = b"\0" * 65536
        try:
            self.wfile.write(body)
            self.fake.sent[name] = len(body)
            while not self.fake.stopped.is_set():
                self.wfile.write(chunk)
                self.fake.sent[name] += len(chunk)
        except OSError:  # the client hung up: what the test wants
            pass


def silent_server() -> tuple[socket.socket, str]:
    """A socket that accepts connections and never answers: a Hub that hangs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


def closed_port() -> str:
    """An address where nothing listens: connections are refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"
