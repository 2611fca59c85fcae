"""A fleet of real daemons on one fresh PostgreSQL database: playbooks applied on one
member are taken up by the other, a supervised service runs on exactly one member
(the lease holder), and it runs on the other member soon after the holder is killed."""

from __future__ import annotations

import os
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import DaemonProc

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TTL = 2.0


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"gxo_test_fleet_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def members(
    request: pytest.FixtureRequest, require_service: Callable[..., None]
) -> Iterator[list[DaemonProc]]:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    pg_url = request.getfixturevalue("pg_database")
    procs = []
    for _ in range(2):
        folder = Path(tempfile.mkdtemp(prefix="gxof-", dir="/tmp"))
        os.chmod(folder, 0o700)
        d = DaemonProc(folder)
        d.state = pg_url
        procs.append(d)
    try:
        yield procs
    finally:
        import shutil

        for d in procs:
            d.stop()
            shutil.rmtree(d.folder, ignore_errors=True)


def _sleeps(d: DaemonProc) -> list[int]:
    out = []
    for p in d.descendants():
        try:
            if p.name() == "sleep" and "61" in p.cmdline() and p.status() != "zombie":
                out.append(p.pid)
        except Exception:
            pass
    return out


def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_fleet_sync_one_owner_and_failover(members: list[DaemonProc], tmp_path: Path) -> None:
    a, b = members
    for d, name in ((a, "ma"), (b, "mb")):
        d.start("--fleet", "f1", "--member", name, "--lease-ttl", f"{TTL}s")
    marker = tmp_path / "once.txt"
    playbook = tmp_path / "svc.gxo.yaml"
    playbook.write_text(
        f"""\
schemaVersion: "1.0.0"
name: svc
workloads:
  - name: setup
    process: {{ module: exec, params: {{ command: sh, args: ["-c", "echo x >> {marker}"] }} }}
  - name: server
    lifecycle: {{ policy: supervise, stop_timeout: 1s, backoff: {{ initial: 100ms }} }}
    process: {{ module: exec, params: {{ command: sleep, args: ["61"] }} }}
"""
    )
    assert a.ctl("apply", "-f", str(playbook)).returncode == 0

    # Member b takes the playbook up from the shared state within ~1 s.
    rows = _until(lambda: b.ctl_json("status"), 10, "member b to see the playbook")
    assert {r["workload"] for r in rows} == {"setup", "server"}

    # A removal on one member is taken up by the other.
    extra = tmp_path / "extra.gxo.yaml"
    extra.write_text(
        'schemaVersion: "1.0.0"\nname: extra\nworkloads:\n'
        "  - name: idle\n    lifecycle: { policy: supervise }\n"
        "    process: { module: exec, params: { command: sleep, args: ['62'] } }\n"
    )
    assert b.ctl("apply", "-f", str(extra)).returncode == 0
    _until(lambda: any(r["playbook"] == "extra" for r in a.ctl_json("status")), 10, "a: extra")
    assert a.ctl("remove", "extra").returncode == 0
    _until(lambda: all(r["playbook"] != "extra" for r in b.ctl_json("status")), 10, "b: no extra")

    # The service runs on exactly one member, and both name that member.
    try:
        _until(lambda: _sleeps(a) or _sleeps(b), 15, "the service to start")
    except AssertionError:
        print(a.ctl("status").stdout, b.ctl("status").stdout, a.logs(), b.logs())
        raise
    time.sleep(2 * TTL)  # several lease periods: the standby never starts a copy
    owners = [d for d in (a, b) if _sleeps(d)]
    assert len(owners) == 1 and len(_sleeps(owners[0])) == 1
    holder, other = owners[0], (b if owners[0] is a else a)
    holder_id = "ma" if holder is a else "mb"
    for d in (a, b):
        row = {r["workload"]: r for r in d.ctl_json("status")}["server"]
        assert row["member"] == holder_id and row["status"] == "Running"
    table = other.ctl("status").stdout
    assert "MEMBER" in table and holder_id in table
    assert marker.read_text() == "x\n"  # run_once ran on the member asked, not again on b

    # `ctl stop` on the standby is refused (it names the holder); on the holder it stops
    # the service fleet-wide: the standby does not take it over. `ctl start` resumes it.
    refused = other.ctl("stop", "server")
    assert refused.returncode != 0 and holder_id in refused.stderr
    assert holder.ctl("stop", "server").returncode == 0
    _until(lambda: not _sleeps(holder), 10, "the service to stop")
    time.sleep(TTL * 2)  # the lease expired long ago
    assert not _sleeps(other) and not _sleeps(holder)
    assert holder.ctl("start", "server").returncode == 0
    _until(lambda: _sleeps(holder), 10, "the service to start again")
    assert not _sleeps(other)

    # kill -9 the holder: the other member runs the service within ttl + back-off.
    assert holder.proc is not None
    killed = time.monotonic()
    holder.proc.send_signal(signal.SIGKILL)
    holder.proc.wait(10)
    _until(lambda: _sleeps(other), TTL + TTL / 3 + 3, "the service on the other member")
    took = time.monotonic() - killed
    print(f"takeover after kill -9: {took:.2f}s (ttl {TTL}s)")
    assert took <= TTL + TTL / 3 + 3, took
    other_id = "mb" if holder is a else "ma"
    _until(
        lambda: (
            {r["workload"]: r for r in other.ctl_json("status")}["server"]["member"] == other_id
        ),
        5,
        "the status to name the new member",
    )

    # A removal on the survivor is seen there at once (and is persisted for the fleet).
    assert other.ctl("remove", "svc").returncode == 0
    _until(lambda: not _sleeps(other), 10, "the service to stop")


def test_fleet_refuses_sqlite_state(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [
            *(sys.executable, "-m", "gxo.cli", "daemon", "--socket", str(tmp_path / "s.sock")),
            *("--state", f"sqlite:///{tmp_path / 'st.db'}", "--fleet", "f1"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "--fleet f1" in out.stderr and "postgresql://" in out.stderr
    assert "Traceback" not in out.stderr
