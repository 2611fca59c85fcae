"""The HTTP/1.1 server behind ``test:mock_http_server``: asyncio streams + h11.

h11 (the sans-I/O HTTP/1.1 state machine httpx is built on) does the protocol:
framing, keep-alive, chunked bodies, malformed input. This file matches
requests to handlers, records them, and answers. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    import h11

__all__ = ["HOST", "MockServer", "Route"]

HOST = "127.0.0.1"
MAX_BODY = 10 * 1024 * 1024  # a request body larger than this gets 413
READ_SIZE = 65536
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NO_BODY_STATUS = frozenset({204, 304})


@dataclass
class Route:
    """One configured handler, compiled."""

    index: int
    method: str  # upper case, or "*"
    path: str
    status_code: int
    headers: dict[str, str]
    body: bytes
    content_type: str | None
    delay: float
    times: int | None
    hits: int = 0
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        parts, pos = [], 0
        for m in _PLACEHOLDER.finditer(self.path):
            parts.append(re.escape(self.path[pos : m.start()]))
            parts.append(f"(?P<{m.group(1)}>[^/]+)")
            pos = m.end()
        parts.append(re.escape(self.path[pos:]))
        self.pattern = re.compile("".join(parts))

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.times is not None and self.hits >= self.times:
            return None
        # HEAD is answered by GET handlers (headers only), as web frameworks do.
        if self.method not in ("*", method) and not (method == "HEAD" and self.method == "GET"):
            return None
        m = self.pattern.fullmatch(path)
        return None if m is None else {k: unquote(v) for k, v in m.groupdict().items()}


class MockServer:
    """Serves ``routes`` on 127.0.0.1 and reports each request to ``on_request``."""

    def __init__(self, routes: list[Route], on_request: Callable[[dict[str, Any]], None]) -> None:
        self.routes = routes
        self.on_request = on_request
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def start(self, port: int = 0) -> None:
        """Listen now (connections are accepted as soon as this returns)."""
        self._server = await asyncio.start_server(self._serve, HOST, port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening, close every open connection, wait until all are gone."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    # -- one connection -------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import h11

        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                try:
                    received = await self._read_request(conn, reader)
                except h11.RemoteProtocolError as exc:
                    await self._send_error(
                        conn, writer, exc.error_status_hint, f"bad request: {exc}"
                    )
                    break
                except _TooLarge:
                    await self._send_error(
                        conn, writer, 413, f"request body larger than {MAX_BODY} bytes"
                    )
                    break
                if received is None:
                    break
                await self._answer(conn, writer, *received)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    break
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:  # the client did not finish its request
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        except asyncio.CancelledError:
            # close() cancels open connections. Ending normally matters: on 3.11
            # asyncio logs a cancelled connection task as an unhandled error.
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[h11.Request, bytes] | None:
        import h11

        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(READ_SIZE))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise _TooLarge
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    async def _answer(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, request: h11.Request, body: bytes
    ) -> None:
        method = request.method.decode("ascii", "replace").upper()
        target = request.target.decode("utf-8", "replace")
        split = urlsplit(target)
        path = unquote(split.path) or "/"
        route, path_params = None, {}
        for candidate in self.routes:
            found = candidate.match(method, path)
            if found is not None:
                route, path_params = candidate, found
                break
        record = _record(request, method, path, split.query, body)
        record["path_params"] = path_params
        if route is None:
            status = 404
            payload = json.dumps(
                {
                    "error": f"no handler matched {method} {path}",
                    "handlers": [
                        r.label
                        + (" (used up)" if r.times is not None and r.hits >= r.times else "")
                        for r in self.routes
                    ],
                }
            ).encode()
            headers = {"content-type": "application/json"}
        else:
            route.hits += 1
            status, payload, headers = route.status_code, route.body, dict(route.headers)
            if route.content_type and not any(k.lower() == "content-type" for k in headers):
                headers["content-type"] = route.content_type
        record.update(
            matched=route is not None,
            handler=None if route is None else route.index,
            status_code=status,
        )
        self.on_request(record)
        if route is not None and route.delay:
            await asyncio.sleep(route.delay)
        await self._send(conn, writer, status, headers, payload, head=method == "HEAD")

    async def _send(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        status: int,
        headers: dict[str, str],
        payload: bytes,
        *,
        head: bool = False,
    ) -> None:
        import h11

        has_body = status not in _NO_BODY_STATUS and status >= 200
        out = [
            (k, v)
            for k, v in headers.items()
            if k.lower() not in ("content-length", "transfer-encoding")
        ]
        if has_body:
            out.append(("content-length", str(len(payload))))
        out.append(("server", "gxo-mock"))
        writer.write(conn.send(h11.Response(status_code=status, headers=out)))
        if has_body and not head and payload:
            writer.write(conn.send(h11.Data(data=payload)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()

    async def _send_error(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int, message: str
    ) -> None:
        import h11

        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        with contextlib.suppress(h11.LocalProtocolError, ConnectionError):
            await self._send(
                conn,
                writer,
                status,
                {"content-type": "text/plain; charset=utf-8", "connection": "close"},
                message.encode(),
            )


class _TooLarge(Exception):
    pass


def _record(
    request: h11.Request, method: str, path: str, query: str, body: bytes
) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for name, value in request.headers:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    parsed_query: dict[str, Any] = {
        k: v[0] if len(v) == 1 else v for k, v in parse_qs(query, keep_blank_values=True).items()
    }
    text = body.decode("utf-8", "replace")
    parsed_json = None
    if text.strip():
        with contextlib.suppress(ValueError):
            parsed_json = json.loads(text)
    return {
        "method": method,
        "path": path,
        "query": parsed_query,
        "query_string": query,
        "headers": headers,
        "body": text,
        "json": parsed_json,
    }
