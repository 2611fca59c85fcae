"""``connection:listen``: accept TCP/TLS connections or UDP peers and stream their handles."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Literal

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, ModuleParams, register
from gxo.modules.connection._streams import (
    TcpStream,
    TlsFiles,
    UdpPeer,
    announce_listening,
    server_tls,
    socket_error,
    split_address,
)


@register("connection:listen", layer="connection")
class ConnectionListen(Module):
    """Listen on a port and emit a record per accepted connection; runs until cancelled.

    TCP (optionally TLS with ``tls: {cert, key}``) or UDP. Each accepted connection
    is registered in the run's connection manager and streamed as a record
    ``{connection_id, remote_addr, local_addr}``; downstream workloads
    (``connection:read``/``write``/``close`` with ``stream_inputs``, or
    ``http:listen``) work with it by ``connection_id``. For UDP, each new remote
    address is one connection; its datagrams are read with ``connection:read``.

    ``port: 0`` binds a free port: the bound port is in the summary (published as
    soon as the socket listens) and in a ``listening`` log event, both before the
    first record. ``max_connections`` bounds the connections of this listener open
    at once: a client beyond it is closed at once (counted as ``refused``). The
    workload never completes by itself: it is a natural ``supervise`` workload, and
    under ``gxo run`` it ends when the run is cancelled or times out. Its open
    connections are closed when it stops.

    Example:
        - name: listener
          lifecycle: { policy: supervise }
          process:
            module: connection:listen
            params: { address: 127.0.0.1, port: 6380, max_connections: 200 }
    """

    class Params(ModuleParams):
        network: Literal["tcp", "udp"] = Field("tcp", description="tcp (also TLS) or udp")
        address: str = Field(
            "127.0.0.1",
            min_length=1,
            description="Local address to bind: a host or IP, or host:port / :port (upstream form)",
        )
        port: int | None = Field(
            None, ge=0, le=65535, description="Port to bind; 0 = a free one (default 0)"
        )
        tls: TlsFiles | None = Field(
            None, description="Serve TLS with this certificate and key ({cert, key}; tcp only)"
        )
        max_connections: int = Field(
            100, ge=1, le=100_000, description="Connections of this listener open at once"
        )
        backlog: int = Field(128, ge=1, le=65535, description="Pending connections the OS queues")

    produces = True
    path_params = ("tls.cert", "tls.key")
    summary = {
        "address": "the bound address",
        "port": "the bound port (the real one when port is 0)",
        "network": "tcp or udp",
        "tls": "whether connections are TLS",
        "accepted": "connections accepted so far",
        "refused": "connections closed at once because max_connections were open",
    }

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        try:
            host, port = split_address(params.address, params.port, default_host="0.0.0.0")
        except ValueError as exc:
            raise ctx.fail(f"address: {exc}") from None
        if params.tls is not None and params.network == "udp":
            raise ctx.fail("tls: TLS is for tcp, not udp")
        listener = _Listener(ctx, params)
        try:
            if params.network == "udp":
                await listener.bind_udp(host, port or 0)
            else:
                await listener.bind_tcp(host, port or 0)
        except OSError as exc:
            raise ctx.fail(
                f"cannot listen on {host}:{port or 0}/{params.network}: {socket_error(exc)}"
            ) from None
        try:
            listener.announce()
            await listener.serve()
        finally:
            await listener.aclose()
            ctx.publish(listener.snapshot())
        return listener.snapshot()  # pragma: no cover - serve() only ends by cancellation


class _Listener:
    def __init__(self, ctx: ModuleContext, params: ConnectionListen.Params) -> None:
        self.ctx = ctx
        self.params = params
        self.host = ""
        self.port = 0
        self.accepted = 0
        self.refused = 0
        self.mine: set[str] = set()  # open connection ids accepted here
        self.server: asyncio.Server | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.peers: dict[Any, tuple[str, UdpPeer]] = {}
        self.pending: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.handlers: set[asyncio.Task[None]] = set()

    def snapshot(self) -> dict[str, Any]:
        return {
            "address": self.host,
            "port": self.port,
            "network": self.params.network,
            "tls": self.params.tls is not None,
            "accepted": self.accepted,
            "refused": self.refused,
        }

    # -- binding -------------------------------------------------------------------------

    async def bind_tcp(self, host: str, port: int) -> None:
        tls = server_tls(self.ctx, self.params.tls) if self.params.tls is not None else None
        self.server = await asyncio.start_server(
            self._accept,
            host,
            port,
            ssl=tls,
            backlog=self.params.backlog,
            reuse_address=True,
            limit=1024 * 1024,
        )
        sockname = self.server.sockets[0].getsockname()
        self.host, self.port = sockname[0], sockname[1]

    async def bind_udp(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        listener = self

        class Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                listener._datagram(data, addr)

        transport, _ = await loop.create_datagram_endpoint(Protocol, local_addr=(host, port))
        self.transport = transport
        sockname = transport.get_extra_info("sockname")
        self.host, self.port = sockname[0], sockname[1]

    def announce(self) -> None:
        ctx = self.ctx
        where = f"{self.host}:{self.port}"
        kind = "tls" if self.params.tls is not None else self.params.network
        line = f"listening on {where} ({kind}, max {self.params.max_connections} connections)"
        announce_listening(ctx, line, self.host, self.port)
        ctx.publish(self.snapshot())

    # -- accepting -----------------------------------------------------------------------

    def _admit(self, kind: str, handle: Any) -> str | None:
        """Register ``handle``; None (and counted) when this listener or the run is full."""
        self._forget_closed()
        if len(self.mine) >= self.params.max_connections:
            self.refused += 1
            self.ctx.count("refused")
            return None
        try:
            connection_id = self.ctx.connections.add(
                kind,
                handle,
                self._closer(handle),
                info={"remote_addr": handle.remote_addr, "local_addr": handle.local_addr},
            )
        except Exception as exc:  # the run's connection limit
            self.refused += 1
            self.ctx.count("refused")
            self.ctx.log(f"refused {handle.remote_addr}: {exc}", level="warning")
            return None
        self.mine.add(connection_id)
        self.accepted += 1
        self.ctx.count("accepted")
        return connection_id

    def _closer(self, handle: Any) -> Any:
        async def close() -> None:
            await handle.aclose()

        return close

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = TcpStream(reader, writer)
        connection_id = self._admit("tcp", stream)
        if connection_id is None:
            with contextlib.suppress(asyncio.CancelledError):  # 3.11 logs it otherwise
                await stream.aclose()
            return
        self.pending.put_nowait((connection_id, self._record(connection_id, stream)))

    def _datagram(self, data: bytes, addr: Any) -> None:
        known = self.peers.get(addr)
        if known is not None and known[0] in self.ctx.connections:
            known[1].deliver(data)
            return
        assert self.transport is not None
        peer = UdpPeer(
            self.transport, addr, owned=False, on_close=lambda: self.peers.pop(addr, None)
        )
        connection_id = self._admit("udp", peer)
        if connection_id is None:
            return
        self.peers[addr] = (connection_id, peer)
        peer.deliver(data)
        self.pending.put_nowait((connection_id, self._record(connection_id, peer)))

    @staticmethod
    def _record(connection_id: str, handle: Any) -> dict[str, Any]:
        return {
            "connection_id": connection_id,
            "remote_addr": handle.remote_addr,
            "local_addr": handle.local_addr,
        }

    async def serve(self) -> None:
        """Emit accepted connections (in accept order) until cancelled."""
        ctx = self.ctx
        while True:
            connection_id, record = await self.pending.get()
            if connection_id not in ctx.connections:
                continue  # closed before anyone saw it
            ctx.log(f"accepted {record['remote_addr']} as {connection_id}", level="debug")
            if ctx.has_output:
                await ctx.emit(record)
            ctx.publish(self.snapshot())

    def _forget_closed(self) -> None:
        connections = self.ctx.connections
        self.mine = {cid for cid in self.mine if cid in connections}

    async def aclose(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.transport is not None:
            self.transport.close()
        for connection_id in list(self.mine):
            with contextlib.suppress(Exception):
                await self.ctx.connections.close(connection_id)
        self.mine.clear()
        while not self.pending.empty():
            self.pending.get_nowait()
        if self.server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self.server.wait_closed()
