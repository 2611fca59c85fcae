"""The network examples as services under a real ``gxo daemon``, with real clients.

examples/kv_server.gxo.yaml (connection:* + data:map + data:kv) answers 50 concurrent
socket clients, and a value SET by one connection is what GET returns on another; examples/webhook_service.gxo.yaml (http:listen + http:respond) answers 50
concurrent httpx clients over keep-alive connections. Stopping a service closes its
listening socket and every client connection (no fd left in the daemon).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import EXAMPLES
from tests.daemon.conftest import DaemonProc, until

pytestmark = pytest.mark.timeout(120)

TOKEN = "hook-t0ken-e2e-9f3"
CLIENTS = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProc]:
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="gxon-", dir="/tmp"))
    os.chmod(folder, 0o700)
    d = DaemonProc(folder)
    # The daemon inherits the token, and a private HOME (module scope: before the
    # per-test isolation of tests/conftest.py).
    saved = {k: os.environ.get(k) for k in ("WEBHOOK_TOKEN", "HOME")}
    os.environ.update(WEBHOOK_TOKEN=TOKEN, HOME=str(folder))
    try:
        d.start()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(folder, ignore_errors=True)


def daemon_sockets(d: DaemonProc, port: int) -> list[object]:
    assert d.proc is not None
    return [
        c
        for c in psutil.Process(d.proc.pid).net_connections("tcp")
        if (c.laddr and c.laddr.port == port)
    ]


async def kv_send(port: int, lines: str) -> str:
    """Send ``lines``, half-close, and return everything the server answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(lines.encode())
        writer.write_eof()
        return (await asyncio.wait_for(reader.read(), 20)).decode()
    finally:
        writer.close()
        await writer.wait_closed()


def kv_session(port: int, i: int) -> Awaitable[str]:
    return kv_send(
        port,
        f"PING\nGET initial_key\nGET k{i}\nSET k{i} v {i}\nGET k{i}\nFLY away\nget another_key",
    )


def kv_expected(i: int) -> str:
    return f"PONG\nOK hello world\nOK NULL\nOK\nOK v {i}\nERR unknown_command\nOK gxo is powerful\n"


def test_kv_server_example_answers_50_concurrent_clients(daemon: DaemonProc) -> None:
    port = free_port()
    applied = daemon.ctl(
        "apply", "-f", str(EXAMPLES / "kv_server.gxo.yaml"), "-e", f"kv_port={port}"
    )
    assert applied.returncode == 0, applied.stderr
    until(lambda: accepts(port), 20, "the kv server to listen")

    async def clients() -> list[str]:
        return await asyncio.gather(*(kv_session(port, i) for i in range(CLIENTS)))

    started = time.monotonic()
    answers = asyncio.run(clients())
    assert answers == [kv_expected(i) for i in range(CLIENTS)]
    assert time.monotonic() - started < 15

    # The store is the service's: what one connection SET, another GETs -- the
    # concurrent clients' keys included; a SET overrides a vars.kv_store value.
    async def later() -> list[str]:
        first = await kv_send(port, "SET shared the value 1\nSET  x y\nSET initial_key changed\n")
        second = await kv_send(port, "GET shared\nGET k7\nGET k49\nGET initial_key\nGET nope\n")
        return [first, second]

    assert asyncio.run(later()) == [
        "OK\nERR bad_request\nOK\n",
        "OK the value 1\nOK v 7\nOK v 49\nOK changed\nOK NULL\n",
    ]

    # A client that stays connected is disconnected when the service stops, and the
    # daemon keeps no socket of it.
    idle = socket.create_connection(("127.0.0.1", port))
    idle.settimeout(10)
    try:
        until(lambda: len(daemon_sockets(daemon, port)) >= 2, 10, "the idle client")
        assert daemon.ctl("stop", "kv_listener").returncode == 0
        assert idle.recv(10) == b""  # closed by the server
    finally:
        idle.close()
    until(lambda: not accepts(port), 10, "the listening socket to close")
    until(lambda: not daemon_sockets(daemon, port), 10, "no socket of the service left")


def test_webhook_example_answers_50_concurrent_keepalive_clients(daemon: DaemonProc) -> None:
    port = free_port()
    applied = daemon.ctl(
        "apply", "-f", str(EXAMPLES / "webhook_service.gxo.yaml"), "-e", f"webhook_port={port}"
    )
    assert applied.returncode == 0, applied.stderr
    url = f"http://127.0.0.1:{port}"
    until(lambda: accepts(port), 20, "the webhook service to listen")

    async def clients() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=20) as client:

            async def one(i: int) -> list[httpx.Response]:
                out = []
                for n in range(2):  # two requests per client: keep-alive reuse
                    out.append(
                        await client.post(
                            "/hooks",
                            json={"event": f"e{i}-{n}"},
                            headers={"x-webhook-token": TOKEN},
                        )
                    )
                return out

            batches = await asyncio.gather(*(one(i) for i in range(CLIENTS)))
            return [r for batch in batches for r in batch]

    responses = asyncio.run(clients())
    assert [r.status_code for r in responses] == [202] * (CLIENTS * 2)
    events = sorted(r.json()["event"] for r in responses)
    assert events == sorted(f"e{i}-{n}" for i in range(CLIENTS) for n in range(2))
    assert len({r.json()["id"] for r in responses}) == CLIENTS * 2

    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/health").json() == {"status": "ok"}
        wrong = client.post("/hooks", json={"event": "x"}, headers={"x-webhook-token": "nope"})
        assert (wrong.status_code, wrong.json()) == (401, {"error": "unauthorized"})
        assert (
            client.post("/hooks", json=[1], headers={"x-webhook-token": TOKEN}).status_code == 400
        )
        assert client.get("/hooks").status_code == 405
        assert client.get("/elsewhere").status_code == 404
        assert client.post("/hooks", content=b"x" * 70000).status_code == 413

    logs = daemon.ctl("logs", "hooks").stdout
    assert "listening on" in logs and TOKEN not in logs + daemon.logs()
    assert daemon.ctl("stop", "hooks").returncode == 0
    until(lambda: not accepts(port), 10, "the HTTP socket to close")
    until(lambda: not daemon_sockets(daemon, port), 10, "no socket of the service left")
