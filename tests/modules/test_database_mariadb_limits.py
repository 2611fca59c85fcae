"""database:query on MariaDB: a server that never greets, and a timeout that must stop
the query on the server (issue 8). With CI=true a missing MariaDB fails these tests."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gxo.modules.testkit import run_module

MY = "mysql://root@127.0.0.1:3306/test"


def _processlist(marker: str) -> list[tuple]:
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", database="test")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT id, info FROM information_schema.processlist WHERE info LIKE %s",
                (f"%{marker}%",),
            )
            # The check itself matches its own LIKE pattern: leave it out.
            return [row for row in cur.fetchall() if "information_schema" not in row[1]]
    finally:
        conn.close()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


async def test_connect_timeout_covers_a_server_that_never_greets(silent_server: int) -> None:
    started = time.monotonic()
    r = await run_module(
        "database:query",
        {
            "url": f"mysql://root@127.0.0.1:{silent_server}/test",
            "query": "SELECT 1",
            "connect_timeout": "1s",
        },
        workload={"timeout": "30s"},  # the connect_timeout must fire, not this one
    )
    elapsed = time.monotonic() - started
    assert r.status == "Failed"
    assert r.error.startswith(
        f"cannot connect to mysql+pymysql://root@127.0.0.1:{silent_server}/test:"
    )
    assert "timed out" in r.error
    assert elapsed < 5, f"waited {elapsed:.1f}s for a greeting"  # was: until the workload timeout


async def test_a_query_may_outlast_connect_timeout(require_service: Callable[..., None]) -> None:
    # The handshake's read timeout must not stay on the connection.
    require_service("127.0.0.1", 3306, "MariaDB")
    r = await run_module(
        "database:query",
        {"url": MY, "query": "SELECT SLEEP(1.5) AS s", "connect_timeout": "1s"},
    )
    assert r.ok, r.error
    assert r.summary["rows"] == [{"s": 0}]


async def test_timeout_kills_the_query_on_the_server(require_service: Callable[..., None]) -> None:
    require_service("127.0.0.1", 3306, "MariaDB")
    marker = f"gxo_{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    r = await run_module(
        "database:query",
        {"url": MY, "query": f"SELECT SLEEP(30) AS {marker}"},
        workload={"timeout": "1s"},
    )
    elapsed = time.monotonic() - started
    assert r.error == "timed out after 1s"
    assert elapsed < 4, f"the run took {elapsed:.1f}s"
    assert _processlist(marker) == []


def test_gxo_run_ends_on_time_and_the_server_stops_the_query(
    tmp_path: Path, gxo, require_service: Callable[..., None]
) -> None:
    # Before: the run printed its timeout, then the process waited ~30 s for the
    # database thread (still in SLEEP(30)) before it could exit.
    require_service("127.0.0.1", 3306, "MariaDB")
    marker = f"gxo_{uuid.uuid4().hex[:8]}"
    playbook = tmp_path / "slow.gxo.yaml"
    playbook.write_text(
        "schemaVersion: '1.0.0'\n"
        "name: slow\n"
        "workloads:\n"
        "  - name: sleep\n"
        "    timeout: 1s\n"
        "    process:\n"
        "      module: database:query\n"
        f"      params: {{ url: '{MY}', query: 'SELECT SLEEP(30) AS {marker}' }}\n"
    )
    started = time.monotonic()
    proc = gxo("run", str(playbook), timeout=40)
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert "timed out after 1s" in proc.stderr
    assert elapsed < 6, f"gxo run took {elapsed:.1f}s"  # ~1 s of timeout + start-up
    assert _processlist(marker) == []
