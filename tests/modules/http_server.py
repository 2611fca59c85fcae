"""A real HTTP(S) server on 127.0.0.1 for module tests (stdlib, in a thread).

Routes (all answer JSON unless said otherwise):

    /json                    {"hello": "world", "items": [1, 2, 3]}
    /echo                    the request: method, path, query, headers, body
    /status/<code>           that status, with a text body "status <code> body"
    /redirect?to=/json       302 to ``to`` (/redirect/loop redirects to itself)
    /slow?delay=2            answers after ``delay`` seconds (woken early on shutdown)
    /pages?page=N&size=S     items of page N (total: ?total=7), with "next" (relative URL or null)
    /link-pages?page=N       items, with an RFC 8288 Link header rel="next"
    /auth/bearer             200 if "Authorization: Bearer <token>", else 401
    /auth/basic              200 if Basic <username>:<password>, else 401
    /auth/header             200 if "X-API-Key: <token>", else 401
    /text                    text/plain, /notjson: application/json with a broken body
    /big?size=N              N bytes of "x" (?length=no: no Content-Length, ends at close;
                             ?gzip=1: gzip-encoded, so it is small on the wire)

``server.requests`` records (method, path, headers) of every request.
"""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "s3cr3t-t0ken-value"
USER, PASSWORD = "ada", "lovelace-pw"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class LocalServer:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    ca_file: Path | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stopping: threading.Event
    record: LocalServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is expected here; stay quiet.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.server.record.requests.append(
            Recorded(self.command, self.path, dict(self.headers.items()), body)
        )
        route = parts.path
        if route == "/json":
            return self._json(200, {"hello": "world", "items": [1, 2, 3]})
        if route == "/echo":
            return self._json(
                200,
                {
                    "method": self.command,
                    "path": parts.path,
                    "query": query,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8", "replace"),
                },
            )
        if route.startswith("/status/"):
            code = int(route.rsplit("/", 1)[1])
            return self._send(code, f"status {code} body".encode(), "text/plain")
        if route == "/redirect/loop":
            return self._send(302, b"", "text/plain", {"Location": "/redirect/loop"})
        if route == "/redirect":
            return self._send(302, b"", "text/plain", {"Location": query.get("to", "/json")})
        if route == "/slow":
            self.server.stopping.wait(float(query.get("delay", "2")))
            return self._json(200, {"slow": True})
        if route in ("/pages", "/link-pages"):
            return self._page(route, query)
        if route.startswith("/auth/"):
            return self._auth(route.rsplit("/", 1)[1])
        if route == "/text":
            return self._send(200, "plain ünïcode text".encode(), "text/plain; charset=utf-8")
        if route == "/big":
            return self._big(query)
        if route == "/notjson":
            return self._send(200, b"{not json", "application/json")
        return self._json(404, {"error": "not found", "path": route})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _page(self, route: str, query: dict[str, str]) -> None:
        page = int(query.get("page", "1"))
        size = int(query.get("size", "3"))
        total = int(query.get("total", "7"))
        start = (page - 1) * size
        items = [
            {"id": i, "name": f"user{i}"} for i in range(start + 1, min(start + size, total) + 1)
        ]
        more = start + size < total
        next_url = f"{route}?page={page + 1}&size={size}&total={total}" if more else None
        if route == "/pages":
            return self._json(200, {"page": page, "items": items, "next": next_url})
        headers = {"Link": f'<{next_url}>; rel="next"'} if more else {}
        return self._json(200, items, headers)

    def _big(self, query: dict[str, str]) -> None:
        import gzip

        body = b"x" * int(query.get("size", "1000"))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if query.get("gzip"):
            body = gzip.compress(body)
            self.send_header("Content-Encoding", "gzip")
        if query.get("length") != "no":
            self.send_header("Content-Length", str(len(body)))
        else:
            self.close_connection = True  # HTTP/1.0: the body ends when the connection does
        self.end_headers()
        with contextlib.suppress(OSError):  # the client may hang up once it has seen enough
            for start in range(0, len(body), 65536):
                self.wfile.write(body[start : start + 65536])

    def _auth(self, kind: str) -> None:
        given = self.headers.get("X-API-Key" if kind == "header" else "Authorization", "")
        wanted = {
            "bearer": f"Bearer {TOKEN}",
            "basic": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
            "header": TOKEN,
        }[kind]
        if given == wanted:
            return self._json(200, {"authenticated": kind})
        return self._json(401, {"error": "unauthorized"})

    def _json(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(code, json.dumps(payload).encode(), "application/json", headers)

    def _send(
        self, code: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


@contextlib.contextmanager
def serve(tls: ssl.SSLContext | None = None) -> Iterator[LocalServer]:
    """Run the server on 127.0.0.1 (a free port) until the block ends."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.stopping = threading.Event()
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    server.record = LocalServer(url=f"{'https' if tls else 'http'}://127.0.0.1:{port}")
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server.record
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
