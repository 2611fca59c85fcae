"""``connection:open``: open an outbound TCP, TLS or UDP connection and keep it by id."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import Field

from gxo.config.durations import Duration
from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, ModuleParams, register
from gxo.modules.connection._streams import TcpStream, UdpPeer, socket_error, split_address


@register("connection:open", layer="connection")
class ConnectionOpen(Module):
    """Open a TCP, TLS or UDP connection and register it in the run's connection manager.

    The summary's ``connection_id`` is what ``connection:read``, ``connection:write``
    and ``connection:close`` (and ``http:listen``) take. The connection stays open
    until ``connection:close`` or the end of the run, which closes it in any case.

    ``tls: true`` wraps the TCP connection in TLS; the server certificate is
    verified against the system CAs (or ``ca``, a PEM file) and ``server_hostname``
    (default: the host) unless ``verify: false``, which is explicit and logged as a
    warning. For UDP, ``connection:write`` sends datagrams to the address and
    ``connection:read`` returns the datagrams that come back.

    Example:
        - name: conn
          process:
            module: connection:open
            params: { address: "127.0.0.1:6380", timeout: 5s }
          register: conn
        - name: ping
          process:
            module: connection:write
            params: { connection_id: "{{ conn.connection_id }}", data: "PING\\n" }
    """

    class Params(ModuleParams):
        network: Literal["tcp", "udp"] = Field("tcp", description="tcp (also TLS) or udp")
        address: str = Field(
            ..., min_length=1, description="Where to connect: host:port, or a host with port"
        )
        port: int | None = Field(
            None, ge=1, le=65535, description="Port (when address has none; wins over it)"
        )
        tls: bool = Field(False, description="Wrap the TCP connection in TLS")
        verify: bool = Field(
            True, description="Verify the TLS server certificate and host name (default on)"
        )
        ca: str | None = Field(
            None, description="PEM file of the CA(s) to trust instead of the system ones"
        )
        server_hostname: str | None = Field(
            None, description="Name the certificate must match (default: the host)"
        )
        timeout: Duration = Field(10.0, description="How long connecting may take (10s)")

    path_params = ("ca",)
    summary = {
        "connection_id": "the handle for connection:read/write/close",
        "remote_addr": "the remote address and port",
        "local_addr": "the local address and port",
        "network": "tcp or udp",
        "tls": "whether the connection is TLS",
    }

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        try:
            host, port = split_address(params.address, params.port, default_host="127.0.0.1")
        except ValueError as exc:
            raise ctx.fail(f"address: {exc}") from None
        if port is None or port == 0:
            raise ctx.fail(f"address: no port in {params.address!r} (give host:port or port)")
        if params.tls and params.network == "udp":
            raise ctx.fail("tls: TLS is for tcp, not udp")
        where = f"{host}:{port}/{'tls' if params.tls else params.network}"
        handle: TcpStream | UdpPeer
        try:
            async with asyncio.timeout(params.timeout or None):
                if params.network == "udp":
                    handle = await _open_udp(host, port)
                else:
                    tls = _client_tls(ctx, params) if params.tls else None
                    reader, writer = await asyncio.open_connection(
                        host,
                        port,
                        ssl=tls,
                        server_hostname=(params.server_hostname or host) if tls else None,
                        limit=1024 * 1024,
                    )
                    handle = TcpStream(reader, writer)
        except TimeoutError:
            raise ctx.fail(
                f"cannot connect to {where}: timed out after {params.timeout}s"
            ) from None
        except OSError as exc:  # ssl.SSLError is an OSError
            reason = getattr(exc, "reason", None) or socket_error(exc)
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                reason = f"certificate verification failed: {getattr(exc, 'verify_message', exc)}"
            raise ctx.fail(f"cannot connect to {where}: {reason}") from None

        async def close() -> None:
            await handle.aclose()

        try:
            connection_id = ctx.connections.add(
                params.network,
                handle,
                close,
                info={"remote_addr": handle.remote_addr, "local_addr": handle.local_addr},
            )
        except Exception:
            await handle.aclose()
            raise
        ctx.log(f"connected to {where} from {handle.local_addr} as {connection_id}")
        return {
            "connection_id": connection_id,
            "remote_addr": handle.remote_addr,
            "local_addr": handle.local_addr,
            "network": params.network,
            "tls": params.tls,
        }


def _client_tls(ctx: ModuleContext, params: ConnectionOpen.Params) -> Any:
    import ssl

    cafile = str(ctx.resolve_path(params.ca, param="ca")) if params.ca else None
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise ctx.fail(f"ca: cannot load {cafile}: {reason}") from None
    if not params.verify:
        ctx.log(
            "verify: false: the server certificate is NOT verified (anyone in the path can "
            "read and change this connection)",
            level="warning",
        )
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def _open_udp(host: str, port: int) -> UdpPeer:
    loop = asyncio.get_running_loop()
    holder: list[UdpPeer] = []

    class Protocol(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            if holder:
                holder[0].deliver(data)

    transport, _ = await loop.create_datagram_endpoint(Protocol, remote_addr=(host, port))
    peer = UdpPeer(transport, transport.get_extra_info("peername"), owned=True)
    holder.append(peer)
    return peer
