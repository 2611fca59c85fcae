"""A fleet member killed with SIGKILL leaves no run ``Running`` forever (issue 10): the
survivor's sweep fails the dead member's runs (reason ``fleet member ID died``) once its
liveness lease expired, the workloads' statuses follow, and the supervised service
runs on the survivor. Two real daemons on one fresh PostgreSQL database."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import DaemonProc, fleet_on_postgres, until

pytestmark = pytest.mark.timeout(180)

TTL = 2.0


@pytest.fixture
def members(require_service: Callable[..., None]) -> Iterator[list[DaemonProc]]:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    with fleet_on_postgres(2, "deadmember") as procs:
        yield procs


def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    return until(check, timeout, what, step=0.05)


def _sleeps(d: DaemonProc, arg: str) -> list[int]:
    out = []
    for p in d.descendants():
        try:
            if p.name() == "sleep" and arg in p.cmdline() and p.status() != "zombie":
                out.append(p.pid)
        except Exception:
            pass
    return out


SERVICE = """\
schemaVersion: "1.0.0"
name: svc
workloads:
  - name: server
    lifecycle: { policy: supervise, restart_policy: always, stop_timeout: 1s,
                 backoff: { initial: 100ms, max: 100ms, jitter: 0 } }
    process: { module: exec, params: { command: sleep, args: ["71"] } }
"""
JOB = """\
schemaVersion: "1.0.0"
name: job
workloads:
  - name: long
    process: { module: exec, params: { command: sleep, args: ["72"] } }
"""


def test_killed_member_runs_are_failed_and_its_service_moves(
    members: list[DaemonProc], tmp_path: Path
) -> None:
    a, b = members
    for d, name in ((a, "ma"), (b, "mb")):
        d.start("--fleet", "f1", "--member", name, "--lease-ttl", f"{TTL}s")
    service = tmp_path / "svc.gxo.yaml"
    service.write_text(SERVICE)
    assert a.ctl("apply", "-f", str(service)).returncode == 0
    holder = _until(lambda: next((d for d in (a, b) if _sleeps(d, "71")), None), 20, "the service")
    survivor = b if holder is a else a
    dead, alive = ("ma", "mb") if holder is a else ("mb", "ma")
    # A run_once job on the holder too: it is running there when the holder dies.
    job = tmp_path / "job.gxo.yaml"
    job.write_text(JOB)
    assert holder.ctl("apply", "-f", str(job)).returncode == 0
    _until(lambda: _sleeps(holder, "72"), 20, "the job")
    _until(
        lambda: any(
            (r["workload"], r["status"]) == ("long", "Running") for r in survivor.ctl_json("status")
        ),
        10,
        "the survivor to take the job's playbook up",
    )
    service_run = holder.ctl_json("runs", "server")[0]
    assert service_run["status"] == "Running" and service_run["member"] == dead
    job_run = holder.ctl_json("runs", "long")[0]
    assert job_run["member"] == dead
    table = survivor.ctl("runs", "server").stdout
    assert "MEMBER" in table and dead in table  # the fleet's runs name their member

    assert holder.proc is not None
    killed = time.monotonic()
    holder.proc.send_signal(signal.SIGKILL)
    holder.proc.wait(10)

    def failed(name: str, run_id: str) -> dict[str, Any] | None:
        runs = survivor.ctl_json("runs", name)
        return next((r for r in runs if r["run_id"] == run_id and r["status"] == "Failed"), None)

    limit = TTL + TTL / 3 + 1.5  # the lease's ttl, one sweep period, a little
    row = _until(lambda: failed("long", job_run["run_id"]), limit, "the job's run to be Failed")
    took = time.monotonic() - killed
    print(f"dead member's run failed after {took:.2f}s (lease ttl {TTL}s)")
    assert row["reason"] == f"fleet member {dead} died" and row["member"] == dead
    assert row["ended_at"]
    status = survivor.ctl_json("status", "long")[0]
    assert (status["status"], status["reason"]) == ("Failed", f"fleet member {dead} died")

    row = _until(lambda: failed("server", service_run["run_id"]), 1, "the service's run Failed")
    assert row["reason"] == f"fleet member {dead} died" and row["member"] == dead
    # Its lifecycle's policy applies on the survivor: restarted there (always).
    _until(lambda: _sleeps(survivor, "71"), limit + 3, "the service on the survivor")

    def running_on_survivor() -> dict[str, Any] | None:
        st = survivor.ctl_json("status", "server")[0]
        return st if st["status"] == "Running" and st["member"] == alive else None

    status = _until(running_on_survivor, 10, "the service's status on the survivor")
    assert status["restarts"] == 1, status  # the failure of the dead member's instance
    runs = survivor.ctl_json("runs", "server")
    assert runs[0]["status"] == "Running" and runs[0]["member"] == alive
    assert [r["status"] for r in runs].count("Running") == 1  # nothing left Running forever
    assert all(r["status"] != "Running" for r in survivor.ctl_json("runs", "long"))
