"""A loopback imitation of the model hub, for download tests that never leave 127.0.0.1.

It answers what huggingface_hub 2.4.0 asks of a hub when fetching one file:

- ``HEAD|GET /{repo}/resolve/{revision}/{filename}`` on the *hub* server. For an
  LFS file (the default, as every GGUF on the hub is) it answers ``302`` to a
  signed-looking URL on a second server (the *CDN*: another port, so another
  origin, as on the real hub), with ``X-Repo-Commit``, ``X-Linked-Etag`` (the
  quoted sha256 of the content), ``X-Linked-Size`` and an ``ETag``. With
  ``lfs=False`` it serves the bytes itself, ``ETag`` being the git blob sha1.
  Unknown repo -> 401 ``X-Error-Code: RepoNotFound``; unknown revision -> 404
  ``RevisionNotFound``; unknown file -> 404 ``EntryNotFound`` (the hub's codes).
- ``POST /api/models/{repo}/paths-info/{revision}`` (``HfApi.get_paths_info``): the
  file listing with each file's ``lfs.oid`` (sha256) and size.
- ``HEAD|GET /blobs/{sha256}`` on the CDN: the bytes, with ``Accept-Ranges``,
  ``Range: bytes=N-`` / ``N-M`` -> ``206`` + ``Content-Range``, 416 past the end.

No Xet headers (``X-Xet-Hash``, ``Link: rel=xet-auth``) are ever sent, so clients
use plain HTTP.

Knobs, settable per test: ``files`` (name -> bytes), ``cut_after_bytes`` (the
next GET body is cut after N bytes and the connection closed, once),
``corrupt`` (file names whose served bytes differ from the advertised sha256),
``stall_after_bytes`` + ``on_stall`` (the next GET body pauses after N bytes: the
server calls ``on_stall()``, sends one more block, then waits for ``release``),
``status`` (file name -> forced HTTP status), ``opaque_etag`` (the HEAD etag is
not a sha256, so clients must ask paths-info). ``requests`` logs every request with
its Range header and how many body bytes were sent.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_STALL_EXTRA = 64 * 1024  # bytes sent after on_stall(), so the client sees data after it
_STALL_MAX_WAIT = 10.0  # a stalled response never hangs a test run for longer


@dataclass
class Request:
    server: str  # "hub" or "cdn"
    method: str
    path: str
    range: str | None
    headers: dict[str, str]
    status: int = 0
    bytes_sent: int = 0


@dataclass
class FakeHub:
    files: dict[str, bytes] = field(default_factory=dict)
    repo: str = "test-org/tiny-gguf"
    revision: str = "main"
    commit: str = COMMIT
    lfs: bool = True
    cut_after_bytes: int | None = None
    corrupt: set[str] = field(default_factory=set)
    stall_after_bytes: int | None = None
    on_stall: Callable[[], None] | None = None
    status: dict[str, int] = field(default_factory=dict)
    opaque_etag: bool = False
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._hub: ThreadingHTTPServer | None = None
        self._cdn: ThreadingHTTPServer | None = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> FakeHub:
        self._hub = _server(self, "hub")
        self._cdn = _server(self, "cdn")
        for srv in (self._hub, self._cdn):
            threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                             daemon=True, name="fake-hub").start()
        return self

    def stop(self) -> None:
        self.release.set()
        for srv in (self._hub, self._cdn):
            if srv is not None:
                srv.shutdown()
                srv.server_close()
        self._hub = self._cdn = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._hub is not None, "FakeHub not started"
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        assert self._cdn is not None, "FakeHub not started"
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    # -- helpers for tests ---------------------------------------------------------
    @staticmethod
    def sha256(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    @staticmethod
    def git_sha1(data: bytes) -> str:
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    def gets(self, server: str | None = None) -> list[Request]:
        """The GET requests that carried a body (status 200 or 206)."""
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and r.status in (200, 206)
                    and (server is None or r.server == server)]

    def _blob(self, sha: str) -> tuple[str, bytes] | None:
        for name, data in self.files.items():
            if self.sha256(data) == sha:
                return name, data
        return None

    def _served(self, name: str, data: bytes) -> bytes:
        if name not in self.corrupt:
            return data
        mid = len(data) // 2
        return data[:mid] + bytes(b ^ 0xFF for b in data[mid:mid + 16]) + data[mid + 16:]


def _server(hub: FakeHub, role: str) -> ThreadingHTTPServer:
    handler = type(f"_{role.title()}Handler", (_Handler,), {"hub": hub, "role": role})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    return srv


_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    role: str
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._handle(body=False)

    def do_GET(self) -> None:
        self._handle(body=True)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        path = unquote(urlsplit(self.path).path)
        self.req = Request(self.role, "POST", path, None, {k.lower(): v for k, v in self.headers.items()})
        with self.hub._lock:
            self.hub.requests.append(self.req)
        hub = self.hub
        if path != f"/api/models/{hub.repo}/paths-info/{hub.commit}" and \
                path != f"/api/models/{hub.repo}/paths-info/{hub.revision}":
            self._error(404, "RepoNotFound", "Repository not found")
            return
        listing = [{"type": "file", "path": name, "size": len(data), "oid": hub.git_sha1(data),
                    "lfs": {"oid": hub.sha256(data), "size": len(data), "pointerSize": 134}}
                   for name, data in hub.files.items() if name in form.get("paths", [])]
        payload = json.dumps(listing).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.req.status = 200

    # -- routing -------------------------------------------------------------------
    def _handle(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.req = Request(self.role, self.command, path, self.headers.get("Range"),
                           {k.lower(): v for k, v in self.headers.items()})
        with self.hub._lock:
            self.hub.requests.append(self.req)
        try:
            if self.role == "hub":
                self._resolve(path, body)
            else:
                m = re.fullmatch(r"/blobs/([0-9a-f]{64})", path)
                found = self.hub._blob(m.group(1)) if m else None
                if found is None:
                    self._error(404, "EntryNotFound")
                else:
                    self._content(found[0], found[1], body, etag=m.group(1) if m else "")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _resolve(self, path: str, body: bool) -> None:
        hub = self.hub
        prefix = f"/{hub.repo}/resolve/"
        if not path.startswith(prefix):
            self._error(401, "RepoNotFound", "Repository not found")
            return
        revision, _, filename = path[len(prefix):].partition("/")
        if revision not in (hub.revision, hub.commit):
            self._error(404, "RevisionNotFound", "Invalid rev id")
            return
        if filename in hub.status:
            code = hub.status[filename]
            self._error(code, "GatedRepo" if code == 403 else None, "Access denied")
            return
        data = hub.files.get(filename)
        if data is None:
            self._error(404, "EntryNotFound", "Entry not found")
            return
        if not hub.lfs:
            self._content(filename, data, body, etag=hub.git_sha1(data))
            return
        sha = hub.sha256(data)
        self.send_response(302)
        self.send_header("Location", f"{hub.cdn_url}/blobs/{sha}?X-Signature=fake&Expires=9999999999")
        self.send_header("X-Repo-Commit", hub.commit)
        self.send_header("X-Linked-Etag", f'"{"opaque-" + sha[:12] if hub.opaque_etag else sha}"')
        self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("ETag", f'"{hub.git_sha1(data[:64])}"')  # the pointer file's oid, not ours
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.req.status = 302

    def _error(self, code: int, error_code: str | None, message: str = "") -> None:
        payload = f'{{"error": "{message or error_code}"}}'.encode()
        self.send_response(code)
        if error_code:
            self.send_header("X-Error-Code", error_code)
        if message:
            self.send_header("X-Error-Message", message)
        if self.role == "hub":
            self.send_header("X-Repo-Commit", self.hub.commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.req.status = code

    # -- bytes -----------------------------------------------------------------------
    def _content(self, name: str, data: bytes, body: bool, etag: str) -> None:
        hub = self.hub
        size = len(data)
        start, end = 0, size - 1
        status = 200
        rng = self.headers.get("Range")
        if rng:
            m = _RANGE.match(rng.strip())
            if m is None or int(m.group(1)) >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.req.status = 416
                return
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{etag}"')
        if self.role == "hub":
            self.send_header("X-Repo-Commit", hub.commit)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self.req.status = status
        if not body:
            return
        payload = memoryview(hub._served(name, data))[start:end + 1]
        with hub._lock:
            cut, hub.cut_after_bytes = hub.cut_after_bytes, None
            stall, hub.stall_after_bytes = hub.stall_after_bytes, None
        if cut is not None:
            self._send(payload[:cut])
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if stall is not None:
            self._send(payload[:stall])
            if hub.on_stall is not None:
                hub.on_stall()
            self._send(payload[stall:stall + _STALL_EXTRA])
            hub.release.wait(_STALL_MAX_WAIT)
            payload = payload[stall + _STALL_EXTRA:]
        self._send(payload)

    def _send(self, chunk: memoryview) -> None:
        step = 64 * 1024
        for i in range(0, len(chunk), step):
            part = chunk[i:i + step]
            self.wfile.write(part)
            self.req.bytes_sent += len(part)


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    """A started FakeHub with no files; tests fill ``files`` and set knobs."""
    with FakeHub() as hub:
        yield hub
