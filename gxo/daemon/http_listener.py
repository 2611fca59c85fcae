"""The daemon's HTTP listener (``gxo daemon --http HOST:PORT``): the ``webhook:`` sources.

asyncio streams + h11 (the sans-I/O HTTP/1.1 state machine httpx is built on, already a
dependency of ``test:mock_http_server``): h11 does the protocol — framing, keep-alive,
chunked bodies, malformed requests — and this file routes each request to the
:class:`~gxo.daemon.sources.webhook.WebhookSource` that owns its path.

Answers (JSON bodies): 404 for a path no applied workload serves, 405 for a method the
source does not accept (with ``Allow``), 413 for a body over the source's ``max_body``
(refused from ``Content-Length`` before reading it, or while reading a chunked body),
400 for a malformed request, 408 when a request is not received within
:data:`READ_TIMEOUT`; the rest is the source's answer (202, 401, 429, 503).

There is no TLS and no authentication beyond the per-source HMAC signature: bind a
loopback address, or put a TLS-terminating proxy in front.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    import h11

    from gxo.daemon.sources.webhook import WebhookRouter

__all__ = ["HttpListener", "parse_address", "start_listener"]

log = logging.getLogger("gxo.daemon")

READ_SIZE = 65536
READ_TIMEOUT = 30.0  # a whole request (headers and body) must arrive within this
MAX_HEADERS = 64 * 1024


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) → (host, port); a ValueError names --http."""
    value = (text or "").strip()
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text:
        raise ValueError(f"--http {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"--http {text!r}: an IPv6 address is written [ADDR]:PORT")
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"--http {text!r}: {host!r} is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"--http {text!r}: write an IPv6 address as [ADDR]:PORT")
    if not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ValueError(
            f"--http {text!r}: the port must be a number from 0 (any free port) to 65535"
        )
    return host, int(port_text)


async def start_listener(hub: Any, address: str) -> HttpListener:
    """``gxo daemon --http ADDRESS``: listen, and route to the hub's webhook sources.

    A ValueError names --http: a malformed address, or one the daemon cannot bind."""
    from gxo.daemon.sources.webhook import WebhookRouter

    host, port = parse_address(address)
    router = WebhookRouter()
    listener = HttpListener(router, host, port)
    try:
        await listener.start()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ValueError(f"--http {address}: cannot listen on {host}:{port}: {reason}") from None
    hub.webhooks, hub.listener = router, listener
    log.info("webhook listener on http://%s (webhook: event sources)", listener.address)
    return listener


class HttpListener:
    def __init__(self, router: WebhookRouter, host: str, port: int) -> None:
        self.router = router
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def start(self) -> None:
        """Listen now; an OSError (address in use, unknown host) propagates."""
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, reuse_address=True, limit=MAX_HEADERS
        )
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]
        self.router.address = self.address

    async def close(self) -> None:
        """Stop listening; open connections are cancelled (waiting requests get no answer)."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await server.wait_closed()

    # -- one connection -----------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import h11

        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        peer = writer.get_extra_info("peername")
        remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else ""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADERS)
        try:
            while True:
                try:
                    async with asyncio.timeout(READ_TIMEOUT):
                        keep = await self._one(conn, reader, writer, remote)
                except TimeoutError:
                    await self._error(conn, writer, 408, "request not received in time")
                    break
                except h11.RemoteProtocolError as exc:
                    await self._error(conn, writer, exc.error_status_hint, f"bad request: {exc}")
                    break
                if not keep or conn.our_state is h11.MUST_CLOSE:
                    break
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        except asyncio.CancelledError:
            pass  # close(): end normally (3.11 logs a cancelled connection task)
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def _next(self, conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
        import h11

        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            conn.receive_data(await reader.read(READ_SIZE))

    async def _one(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        remote: str,
    ) -> bool:
        """Read and answer one request; False when the connection must close."""
        import h11

        from gxo.daemon.sources.webhook import Request

        event = await self._next(conn, reader)
        if not isinstance(event, h11.Request):
            return False  # ConnectionClosed or PAUSED: nothing more on this connection
        method = event.method.decode("ascii", "replace").upper()
        split = urlsplit(event.target.decode("utf-8", "replace"))
        path = unquote(split.path) or "/"
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in event.headers]
        source = self.router.lookup(path)
        if source is None:
            await self._error(conn, writer, 404, f"no webhook source serves {path}")
            return False
        if not source.allows(method):
            allow = ", ".join(sorted(source.methods))
            await self._error(
                conn, writer, 405, f"method {method} not allowed on {path}", {"allow": allow}
            )
            return False
        length = next((v for k, v in headers if k == "content-length"), None)
        too_large = f"request body larger than {source.max_body} bytes"
        if length is not None and length.strip().isdigit() and int(length) > source.max_body:
            await self._error(conn, writer, 413, too_large)
            return False
        body = bytearray()
        while True:
            part = await self._next(conn, reader)
            if isinstance(part, h11.Data):
                body += part.data
                if len(body) > source.max_body:
                    await self._error(conn, writer, 413, too_large)
                    return False
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                return False  # the client closed mid-body
        request = Request(method, path, split.query, headers, bytes(body), remote)
        reply = await source.submit(request)
        await self._send(conn, writer, reply.status, reply.body, reply.headers)
        return True

    async def _send(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        import h11

        payload = json.dumps(body).encode()
        out = [(k, v) for k, v in (headers or {}).items()]
        out += [
            ("content-type", "application/json"),
            ("content-length", str(len(payload))),
            ("server", "gxo-daemon"),
        ]
        writer.write(conn.send(h11.Response(status_code=status, headers=out)))
        writer.write(conn.send(h11.Data(data=payload)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()

    async def _error(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        """An answer after which the connection closes (the body may be left unread)."""
        import h11

        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        with contextlib.suppress(h11.LocalProtocolError, ConnectionError):
            await self._send(
                conn, writer, status, {"error": message}, {**(headers or {}), "connection": "close"}
            )
