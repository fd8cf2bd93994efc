"""A tiny HTTP server on 127.0.0.1, used by ``aggregator demo`` and by the tests.

Standard library only, so the demo needs nothing beyond the package itself. Static resources answer
conditional GETs like a well-behaved web server; routes let a caller script any other behaviour
(redirects, errors, slow bodies) by writing the whole response themselves.
"""

from __future__ import annotations

import collections
import hashlib
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

# Fixed so that If-Modified-Since round trips are reproducible across runs.
LAST_MODIFIED = "Mon, 01 Jan 2024 00:00:00 GMT"

RouteHandler = Callable[[BaseHTTPRequestHandler], None]


class RequestHeaders(dict[str, str]):
    """Request headers as recorded by :class:`LocalSite`: keys stored lower-case, lookups case-insensitive."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass(frozen=True)
class _Resource:
    body: bytes
    headers: dict[str, str]  # Content-Type, ETag, Last-Modified and any extras, as sent

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


def _merge_headers(defaults: dict[str, str], extra: dict[str, str | None]) -> dict[str, str]:
    """Extra headers replace defaults case-insensitively; a value of None drops the header."""
    merged = dict(defaults)
    for name, value in extra.items():
        for existing in [k for k in merged if k.lower() == name.lower()]:
            del merged[existing]
        if value is not None:
            merged[name] = value
    return merged


def _not_modified(request: RequestHeaders, resource: _Resource) -> bool:
    """RFC 9110 precedence: If-None-Match decides when present, If-Modified-Since only otherwise."""
    if_none_match = request.get("If-None-Match")
    if if_none_match is not None:
        tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return "*" in tags or resource.header("ETag") in tags
    since, modified = request.get("If-Modified-Since"), resource.header("Last-Modified")
    if not since or not modified:
        return False
    try:
        return parsedate_to_datetime(since) >= parsedate_to_datetime(modified)
    except (TypeError, ValueError):
        return False


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so route handlers may end a body by closing.
    protocol_version = "HTTP/1.0"
    server_version = "LocalSite/1.0"

    def do_GET(self) -> None:
        self.server.site._serve(self, head=False)  # type: ignore[attr-defined]

    def do_HEAD(self) -> None:
        self.server.site._serve(self, head=True)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: test output and the demo's console stay readable


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, site: LocalSite) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.site = site

    def process_request(self, request: Any, client_address: Any) -> None:
        self.site._accepted()
        super().process_request(request, client_address)

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients hanging up mid-response is expected (deadlines, size caps); anything else is a bug.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class LocalSite:
    """HTTP server on 127.0.0.1 with an OS-chosen port, serving from a daemon thread."""

    def __init__(self) -> None:
        self.hits: collections.Counter[str] = collections.Counter()  # path -> GET count
        self.requests: list[tuple[str, RequestHeaders]] = []  # (path, headers), GET and HEAD
        self.connections = 0  # TCP connections accepted, whether or not a request followed
        self._paths: dict[str, _Resource | RouteHandler] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LocalSite:
        if self._server is None:
            self._server = _Server(self)
            # A short poll interval keeps stop() fast; the default 0.5 s adds up across many tests.
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> LocalSite:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalSite is not running; call start() first")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def put(
        self,
        path: str,
        body: bytes | str,
        content_type: str = "text/html; charset=utf-8",
        headers: dict[str, str | None] | None = None,
    ) -> None:
        """Serve ``body`` at ``path`` with a strong ETag and a fixed Last-Modified.

        ``headers`` adds or replaces response headers (e.g. ``Content-Encoding``); None drops one.
        """
        data = body.encode("utf-8") if isinstance(body, str) else body
        defaults = {
            "Content-Type": content_type,
            "ETag": '"' + hashlib.sha256(data).hexdigest()[:32] + '"',
            "Last-Modified": LAST_MODIFIED,
        }
        with self._lock:
            self._paths[path] = _Resource(data, _merge_headers(defaults, headers or {}))

    def route(self, path: str, handler: RouteHandler) -> None:
        """Answer GETs for ``path`` by calling ``handler``, which writes the whole response."""
        with self._lock:
            self._paths[path] = handler

    def remove(self, path: str) -> None:
        with self._lock:
            self._paths.pop(path, None)

    def _accepted(self) -> None:
        with self._lock:
            self.connections += 1

    def _serve(self, handler: BaseHTTPRequestHandler, head: bool) -> None:
        path = urlsplit(handler.path).path
        headers = RequestHeaders((k.lower(), v) for k, v in handler.headers.items())
        with self._lock:
            if not head:
                self.hits[path] += 1
            self.requests.append((path, headers))
            target = self._paths.get(path)
        if target is None:
            _send(handler, 404, {"Content-Type": "text/plain; charset=utf-8"}, b"not found\n", head)
        elif isinstance(target, _Resource):
            self._serve_resource(handler, target, headers, head)
        else:
            target(handler)

    @staticmethod
    def _serve_resource(
        handler: BaseHTTPRequestHandler, resource: _Resource, request: RequestHeaders, head: bool
    ) -> None:
        if _not_modified(request, resource):
            validators = {k: v for k, v in resource.headers.items() if k.lower() in ("etag", "last-modified")}
            _send(handler, 304, validators, b"", head=True)
        else:
            _send(handler, 200, resource.headers, resource.body, head)


def _send(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes, head: bool) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        if name.lower() != "content-length":  # always computed below, so it cannot disagree with the body
            handler.send_header(name, value)
    if status != 304:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if not head:
        handler.wfile.write(body)


def respond(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> RouteHandler:
    """A route handler answering with a fixed status, headers and body."""

    def handler(request: BaseHTTPRequestHandler) -> None:
        request.send_response(status)
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    return handler
