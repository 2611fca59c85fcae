"""The connection manager (gxo/engine/connections.py): ids, kinds, pooling, limits, run end."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest

from gxo.engine.connections import ConnectionManager
from gxo.engine.context import RunContext
from gxo.errors import ModuleError


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def fds_back_to(expected: int) -> int:
    """Open fds once the in-process server has seen the clients go (polled, 5 s at most)."""
    for _ in range(500):
        if open_fds() <= expected:
            break
        await asyncio.sleep(0.01)
    return open_fds()


@pytest.fixture
async def echo_server():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_add_get_info_close_and_ids() -> None:
    manager = ConnectionManager()
    closed: list[str] = []

    async def closer() -> None:
        closed.append("x")

    cid = manager.add("tcp", "handle", closer, info={"remote_addr": "1.2.3.4:5"})
    assert str(uuid.UUID(cid)) == cid
    assert manager.get(cid) == "handle"
    assert manager.get(cid, "tcp") == "handle"
    assert manager.kind(cid) == "tcp"
    assert manager.info(cid) == {"kind": "tcp", "remote_addr": "1.2.3.4:5"}
    assert manager.ids() == [cid] and manager.ids("udp") == []
    assert cid in manager and len(manager) == 1
    with pytest.raises(ModuleError, match=f"'{cid}' is a tcp connection, not ssh"):
        manager.get(cid, "ssh")
    await manager.close(cid)
    await manager.close(cid)  # idempotent
    assert closed == ["x"] and len(manager) == 0
    with pytest.raises(ModuleError, match=f"unknown or closed connection_id '{cid}'"):
        manager.get(cid)
    with pytest.raises(ModuleError, match="unknown or closed connection_id 'nope'"):
        manager.info("nope")


async def test_find_pools_by_kind_and_key() -> None:
    manager = ConnectionManager()
    cid = manager.add("ssh", object(), key="root@host:22")
    assert manager.find("ssh", "root@host:22") == cid
    assert manager.find("tcp", "root@host:22") is None
    await manager.close(cid)
    assert manager.find("ssh", "root@host:22") is None


async def test_limit_bounds_open_connections() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ConnectionManager(0)
    manager = ConnectionManager(limit=2)
    first = manager.add("tcp", object())
    manager.add("tcp", object())
    with pytest.raises(ModuleError, match=r"too many open connections \(2\)"):
        manager.add("tcp", object())
    await manager.close(first)
    manager.add("tcp", object())  # room again
    await manager.aclose()
    with pytest.raises(ModuleError, match="the run has ended"):
        manager.add("tcp", object())


async def test_aclose_closes_real_sockets_and_survives_bad_closers(echo_server: int) -> None:
    before = open_fds()
    manager = ConnectionManager()
    for _ in range(5):
        manager.add("tcp", await asyncio.open_connection("127.0.0.1", echo_server))
    _reader, writer = await asyncio.open_connection("127.0.0.1", echo_server)
    manager.add("tcp", writer)  # an object with close()/wait_closed()

    async def broken() -> None:
        raise OSError("boom")

    manager.add("tcp", object(), broken)
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    manager.add("listener", server)
    assert open_fds() >= before + 7

    class Async:
        closed = False

        async def aclose(self) -> None:
            Async.closed = True

    manager.add("other", Async())
    await manager.aclose()
    assert len(manager) == 0 and Async.closed
    assert await fds_back_to(before) <= before


async def test_run_context_closes_connections_at_run_end(echo_server: int) -> None:
    run = RunContext(run_id="r", workspace=Path.cwd(), variables={}, states={})
    before = open_fds()
    run.connections.add("tcp", await asyncio.open_connection("127.0.0.1", echo_server))
    assert open_fds() >= before + 1
    assert await run.run_deferred() == []
    assert len(run.connections) == 0 and await fds_back_to(before) <= before
