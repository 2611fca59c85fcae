"""What the ``connection:*`` modules share: socket handles, TLS contexts, per-record work.

A TCP (or TLS) connection is registered in the run's connection manager as kind
``tcp`` with a :class:`TcpStream` handle; a UDP peer as kind ``udp`` with a
:class:`UdpPeer`. ``connection:read``/``write``/``close`` and ``http:listen`` find
them by ``connection_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import Field

from gxo.modules.base import ModuleParams
from gxo.state.store import copy_record

if TYPE_CHECKING:
    import ssl

    from gxo.engine.context import ModuleContext

__all__ = [
    "KINDS",
    "MAX_READ",
    "TcpStream",
    "TlsFiles",
    "UdpPeer",
    "format_addr",
    "per_record",
    "split_address",
    "value_builder",
]

KINDS = ("tcp", "udp")
MAX_READ = 16 * 1024 * 1024  # the most one connection:read returns
CLOSE_TIMEOUT = 2.0
_RECORD_PATH = re.compile(r"\{\{\s*record((?:\.[A-Za-z_][A-Za-z0-9_]*)+)\s*\}\}")


class TlsFiles(ModuleParams):
    """A server certificate and its private key (PEM files)."""

    cert: str = Field(..., min_length=1, description="PEM certificate file (chain) of the server")
    key: str = Field(..., min_length=1, description="PEM private key file of the certificate")


def format_addr(addr: Any) -> str:
    """``host:port`` (``[v6]:port``) from a socket address tuple."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(addr) if addr else ""


def split_address(address: str, port: int | None, *, default_host: str) -> tuple[str, int | None]:
    """``(host, port)`` from ``address`` (``host``, ``host:port``, ``:port``, ``[v6]:port``) and ``port``.

    ``port`` wins when both name one. ValueError for a malformed address.
    """
    text = address.strip()
    host, found = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"malformed address {address!r}: missing ']'")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"malformed address {address!r}")
            found = rest[1:]
    elif text.count(":") == 1:
        host, found = text.split(":")
    if found is not None and (not found.isdigit() or not 0 <= int(found) <= 65535):
        raise ValueError(f"malformed port in address {address!r}")
    resolved = port if port is not None else (int(found) if found is not None else None)
    return host or default_host, resolved


def server_tls(ctx: ModuleContext, tls: TlsFiles, *, param: str = "tls") -> ssl.SSLContext:
    """A server-side TLS context from cert/key files (ModuleError naming the param)."""
    import ssl

    cert = ctx.resolve_path(tls.cert, param=f"{param}.cert")
    key = ctx.resolve_path(tls.key, param=f"{param}.key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        # The message names files, never their contents.
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise ctx.fail(f"{param}: cannot load certificate {cert} / key {key}: {reason}") from None
    return context


class TcpStream:
    """An open TCP or TLS stream: its reader, its writer and a write lock."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.write_lock = asyncio.Lock()
        self.read_lock = asyncio.Lock()
        self.buffer = bytearray()  # read from the socket, not yet returned
        self.remote_addr = format_addr(writer.get_extra_info("peername"))
        self.local_addr = format_addr(writer.get_extra_info("sockname"))
        self.closed = asyncio.Event()

    async def read(self, size: int | None, until: bytes | None, limit: int) -> tuple[bytes, bool]:
        """``(data, eof)``: up to and including ``until``, ``size`` bytes (whichever
        comes first when both are given), or everything until EOF (``limit`` at most)."""
        async with self.read_lock:
            buffer = self.buffer
            while True:
                if until is not None:
                    end = buffer.find(until)
                    if end >= 0 and (size is None or end + len(until) <= size):
                        return self._take(end + len(until)), False
                    if size is None and len(buffer) > limit:
                        raise ValueError(f"no delimiter within {limit} bytes")
                if size is not None and len(buffer) >= size:
                    return self._take(size), False
                if size is None and until is None and len(buffer) > limit:
                    raise ValueError(f"more than {limit} bytes before end of stream")
                chunk = await self.reader.read(65536)
                if not chunk:
                    return self._take(len(buffer)), True
                buffer += chunk

    def _take(self, count: int) -> bytes:
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    async def write(self, data: bytes) -> int:
        async with self.write_lock:
            if self.writer.is_closing():
                raise ConnectionResetError("the connection is closed")
            self.writer.write(data)
            await self.writer.drain()
        return len(data)

    async def aclose(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        writer = self.writer
        with contextlib.suppress(Exception):
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()
        writer.close()
        with contextlib.suppress(Exception):  # TimeoutError included
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await writer.wait_closed()


class UdpPeer:
    """One remote UDP address: datagrams it sent (a queue), and sending back to it."""

    def __init__(
        self,
        transport: asyncio.DatagramTransport,
        remote: Any,
        *,
        owned: bool,
        on_close: Callable[[], object] | None = None,
    ) -> None:
        self.transport = transport
        self.remote = remote
        self.owned = owned  # connection:open owns its transport; a listener's is shared
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(1024)
        self.remote_addr = format_addr(remote)
        self.local_addr = format_addr(transport.get_extra_info("sockname"))
        self._on_close = on_close
        self.closed = False

    def deliver(self, data: bytes) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # UDP: drop when nobody reads
            self.queue.put_nowait(data)

    async def read(self, size: int | None, until: bytes | None, limit: int) -> tuple[bytes, bool]:
        """One datagram (UDP keeps message boundaries; ``size``/``until`` cut it)."""
        if self.closed:
            return b"", True
        data = await self.queue.get()
        if data is None:
            return b"", True
        if until is not None and until in data:
            data = data[: data.index(until) + len(until)]
        if size is not None:
            data = data[:size]
        return data, False

    async def write(self, data: bytes) -> int:
        if self.closed or self.transport.is_closing():
            raise ConnectionResetError("the connection is closed")
        if self.owned:
            self.transport.sendto(data)
        else:
            self.transport.sendto(data, self.remote)
        return len(data)

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)
        if self._on_close is not None:
            self._on_close()
        if self.owned:
            self.transport.close()


def announce_listening(ctx: ModuleContext, line: str, address: str, port: int) -> None:
    """Log ``line`` as a ``listening`` event (``event``, ``address``, ``port`` in its data)."""
    import time

    from gxo.engine.events import EventKind

    line = ctx.run.secrets.redact_str(line)
    ctx.state.logs.append((time.time(), "log", line))
    ctx.run.bus.emit(
        EventKind.LOG,
        ctx.workload,
        stream="log",
        level="info",
        line=line,
        event="listening",
        address=address,
        port=port,
    )


def socket_error(exc: BaseException) -> str:
    """A short reason for a socket error (no traceback)."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host: {exc.strerror or exc}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# -- per-record work (stream mode) ------------------------------------------------------


def value_builder(ctx: ModuleContext, value: Any, path: str) -> Callable[[dict[str, Any]], Any]:
    """A function of ``record`` rendering ``value`` (a template, a constant, or a nest of them)."""
    from gxo.template.engine import is_template

    if isinstance(value, str):
        if not is_template(value):
            return lambda record: value
        render = ctx.compile(value)
        simple = _RECORD_PATH.fullmatch(value)
        if simple is None:
            return lambda record: render(path, record=record)
        # "{{ record.a.b }}", the common case, without a template evaluation; anything
        # missing goes through the template, so errors read the same.
        keys = simple.group(1).split(".")[1:]

        def lookup(record: dict[str, Any]) -> Any:
            current: Any = record
            for key in keys:
                if not isinstance(current, dict) or key not in current:
                    return render(path, record=record)
                current = current[key]
            return current

        return lookup
    if isinstance(value, dict):
        parts = [(k, value_builder(ctx, v, f"{path}.{k}")) for k, v in value.items()]
        return lambda record: {k: fn(record) for k, fn in parts}
    if isinstance(value, list):
        items = [value_builder(ctx, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return lambda record: [fn(record) for fn in items]
    return lambda record: copy_record(value)


async def per_record(
    ctx: ModuleContext,
    work: Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]],
    concurrency: int,
) -> tuple[int, int]:
    """Run ``work`` on every input record, ``concurrency`` at a time; emit what it returns.

    A record whose work raises is logged and counted (``errors``), never fatal: one
    bad client must not stop a service. Returns ``(done, errors)``.
    """
    limit = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()
    done = errors = 0

    async def one(record: dict[str, Any]) -> None:
        nonlocal done, errors
        try:
            out = await work(record)
        except Exception as exc:
            errors += 1
            ctx.count("errors")
            ctx.log(str(exc), level="warning")
        else:
            done += 1
            if out is not None and ctx.has_output:
                await ctx.emit(out)
        finally:
            limit.release()

    try:
        async for record in ctx.records():
            await limit.acquire()
            task = asyncio.create_task(one(record))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
    return done, errors
