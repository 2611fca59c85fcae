"""Fixtures and helpers of the NATS source tests (real server on 127.0.0.1:4222)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gxo.daemon.sources.base import open_source

HOST, PORT = "127.0.0.1", 4222
URL = f"nats://{HOST}:{PORT}"
JS_URL = f"nats+jetstream://{HOST}:{PORT}"


@pytest.fixture
async def nc(require_service: Callable[[str, int, str], None]) -> AsyncIterator[Any]:
    """A plain nats-py client for publishing; streams registered in ``nc.gxo_streams``
    are deleted afterwards."""
    require_service(HOST, PORT, "NATS (JetStream)")
    import nats

    client = await nats.connect(URL)
    client.gxo_streams = []
    yield client
    js = client.jetstream()
    for name in client.gxo_streams:
        try:
            await js.delete_stream(name)
        except Exception:  # already gone (a test deleted it)
            pass
    await client.close()


def uid() -> str:
    return uuid.uuid4().hex[:10]


async def make_stream(nc: Any, *subjects: str) -> str:
    name = f"GXOT_{uid()}"
    await nc.jetstream().add_stream(name=name, subjects=list(subjects))
    nc.gxo_streams.append(name)
    return name


async def consumer(nc: Any, stream: str, durable: str) -> Any:
    await nc.flush()
    return await nc.jetstream().consumer_info(stream, durable)


@pytest.fixture
async def sources() -> AsyncIterator[list[Any]]:
    """Sources a test opens are closed even when it fails."""
    opened: list[Any] = []
    yield opened
    for source in opened:
        await source.close()


async def started(opened: list[Any], url: str, **kw: Any) -> Any:
    kw.setdefault("name", "w")
    source = open_source(url, **kw)
    opened.append(source)
    await source.start()
    return source


async def get(source: Any, timeout: float = 5) -> Any:
    return await asyncio.wait_for(source.get(), timeout)


class Proxy:
    """127.0.0.1:<port> → the NATS server; ``cut()`` drops every connection and stops
    listening, ``restore()`` listens again on the same port."""

    def __init__(self) -> None:
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def restore(self) -> None:
        self.server = await asyncio.start_server(self._serve, HOST, self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(HOST, PORT)
        self.writers += [writer, up_writer]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


@pytest.fixture
async def proxy(nc: Any) -> AsyncIterator[Proxy]:
    proxy = Proxy()
    await proxy.restore()
    yield proxy
    if proxy.server is not None and proxy.server.is_serving():
        await proxy.cut()
