"""``http:listen``: an HTTP/1.1 server that streams each request as a record."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from pydantic import Field

from gxo.config.durations import Duration
from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, ModuleParams, StreamRole, register
from gxo.modules.connection._streams import (
    TcpStream,
    TlsFiles,
    announce_listening,
    server_tls,
    socket_error,
    split_address,
)


@register("http:listen", layer="protocol")
class HttpListen(Module):
    """Serve HTTP/1.1 and stream every request as a record for ``http:respond``.

    It binds ``address``/``port`` itself (``port: 0`` = a free one; the URL is in
    the summary as soon as it listens), or, with ``stream_inputs``, serves the
    connections ``connection:listen`` streams (records holding a
    ``connection_id``). HTTP/1.1 is parsed by h11: keep-alive, chunked bodies and
    many concurrent connections work; malformed requests get 400, bodies over
    ``max_body`` 413.

    Each request becomes a record ``{request_id, method, path, query_params,
    headers, body, json, remote_addr}`` (header names in lower case; ``json`` is
    the parsed body when it is JSON, else null). A workload that answers it --
    ``http:respond`` with ``stream_inputs: [this workload]`` -- sends the
    response; a request with no response within ``response_timeout`` is answered
    504. Without a stream consumer, each request waits for an ``http:respond``
    that names its ``request_id``.

    The workload runs until cancelled when it binds itself (a ``supervise``
    workload under ``gxo daemon``), or until its input stream ends and its
    connections close.

    Example:
        - name: web
          lifecycle: { policy: supervise }
          process: { module: http:listen, params: { address: 127.0.0.1, port: 8080 } }
        - name: reply
          stream_inputs: [web]
          process:
            module: http:respond
            params: { request_id: "{{ record.request_id }}", json: { echo: "{{ record.json.msg }}" } }
    """

    class Params(ModuleParams):
        address: str = Field(
            "127.0.0.1",
            min_length=1,
            description="Address to bind (host, host:port or :port); ignored with stream_inputs",
        )
        port: int | None = Field(
            None, ge=0, le=65535, description="Port to bind; 0 = a free one (default 0)"
        )
        tls: TlsFiles | None = Field(None, description="Serve HTTPS with this {cert, key}")
        response_timeout: Duration = Field(
            30.0, description="Answer 504 when no response comes within this (30s)"
        )
        max_connections: int = Field(
            256, ge=1, le=100_000, description="Client connections served at once"
        )
        idle_timeout: Duration = Field(
            60.0,
            gt=0,
            description="Close a connection idle this long between requests, or answer 408 "
            "when a request takes longer to arrive (60s)",
        )
        max_body: int = Field(
            10 * 1024 * 1024, ge=0, description="Largest request body in bytes (413 beyond)"
        )

    consumes = StreamRole.optional
    produces = True
    path_params = ("tls.cert", "tls.key")
    summary = {
        "url": "http(s)://address:port (when it binds itself)",
        "address": "the bound address",
        "port": "the bound port",
        "requests": "requests received",
        "timeouts": "requests answered 504 after response_timeout",
        "rejected": "requests answered 503 because the run held too many connections",
        "connections": "connections served",
    }

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        from gxo.modules.protocol._http_server import Counters

        server = _Server(ctx, params, Counters())
        try:
            if ctx.has_input:
                await server.serve_stream()
            else:
                await server.bind()
                await asyncio.Event().wait()  # serve until cancelled
        finally:
            await server.aclose()
            # A service ends by cancellation: its last counts are published here.
            ctx.publish(server.snapshot())
        return server.snapshot()


class _Server:
    def __init__(self, ctx: ModuleContext, params: HttpListen.Params, counters: Any) -> None:
        self.ctx = ctx
        self.params = params
        self.counters = counters
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.connections = 0
        self.host = ""
        self.port = 0
        self.slots = asyncio.Semaphore(params.max_connections)
        self.emit = ctx.output.send if ctx.has_output else None

    def snapshot(self) -> dict[str, Any]:
        c = self.counters
        out: dict[str, Any] = {}
        if self.server is not None or self.port:
            scheme = "https" if self.params.tls is not None else "http"
            host = f"[{self.host}]" if ":" in self.host else self.host
            out.update(url=f"{scheme}://{host}:{self.port}", address=self.host, port=self.port)
        out.update(
            requests=c.requests,
            timeouts=c.timeouts,
            rejected=c.rejected,
            connections=self.connections,
        )
        return out

    async def bind(self) -> None:
        ctx, params = self.ctx, self.params
        try:
            host, port = split_address(params.address, params.port, default_host="0.0.0.0")
        except ValueError as exc:
            raise ctx.fail(f"address: {exc}") from None
        tls = server_tls(ctx, params.tls) if params.tls is not None else None
        try:
            self.server = await asyncio.start_server(
                self._accept, host, port or 0, ssl=tls, reuse_address=True, backlog=1024
            )
        except OSError as exc:
            raise ctx.fail(f"cannot listen on {host}:{port or 0}: {socket_error(exc)}") from None
        sockname = self.server.sockets[0].getsockname()
        self.host, self.port = sockname[0], sockname[1]
        summary = self.snapshot()
        announce_listening(ctx, f"listening on {summary['url']}", self.host, self.port)
        ctx.publish(summary)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = TcpStream(reader, writer)
        if self.slots.locked():
            self.counters.rejected += 1
            self.ctx.count("rejected")
            await stream.aclose()
            return
        try:
            connection_id = self.ctx.connections.add(
                "tcp", stream, stream.aclose, info={"remote_addr": stream.remote_addr}
            )
        except Exception:
            self.counters.rejected += 1
            self.ctx.count("rejected")
            await stream.aclose()
            return
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self._serve(connection_id, stream)
        except asyncio.CancelledError:
            pass  # stopped: on 3.11 asyncio logs a cancelled connection callback as an error
        finally:
            self.tasks.discard(task)

    async def _serve(self, connection_id: str, stream: TcpStream) -> None:
        from gxo.modules.protocol._http_server import serve_connection

        async with self.slots:
            self.connections += 1
            try:
                await serve_connection(
                    self.ctx,
                    stream,
                    emit=self.emit,
                    response_timeout=self.params.response_timeout,
                    max_body=self.params.max_body,
                    idle_timeout=self.params.idle_timeout,
                    counters=self.counters,
                )
            finally:
                await self.ctx.connections.close(connection_id)

    async def serve_stream(self) -> None:
        """Serve every connection streamed in; return when the stream ends and they close."""
        ctx = self.ctx
        async for record in ctx.records():
            connection_id = str(record.get("connection_id", ""))
            try:
                stream = ctx.connections.get(connection_id, "tcp")
            except Exception as exc:
                ctx.count("errors")
                ctx.log(f"skipped a record: {exc}", level="warning")
                continue
            task = asyncio.create_task(self._serve(connection_id, stream))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        if self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def aclose(self) -> None:
        if self.server is not None:
            self.server.close()
        tasks = [t for t in self.tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self.server.wait_closed()
