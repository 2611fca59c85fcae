"""A paused workload survives its fleet member's death (issue 12): three real daemons on one
fresh PostgreSQL database, the member running a paused run is killed with SIGKILL, one
survivor takes the run over (its rows' member, one conditional UPDATE) and waits on the
same pause; the ORIGINAL token, sent to the other survivor, resumes it; the downstream
workload completes with ``_gxo.resume_payload`` under the same run id, nothing Failed.
The dead member's run without a pause is Failed as before."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import DaemonProc, fleet_on_postgres, until

pytestmark = pytest.mark.timeout(180)

TTL = 2.0
NAMES = ("ma", "mb", "mc")

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: rel
workloads:
  - name: build
    process: { module: exec, params: { command: echo, args: ["built"] } }
  - name: approve
    depends_on: [build]
    process:
      module: control:wait_for_signal
      params:
        prompt: "Deploy 1.4 to production?"
        payload_schema:
          type: object
          properties: { replicas: { type: integer, minimum: 1 } }
          required: [replicas]
    register: approval
  - name: deploy
    depends_on: [approve]
    process:
      module: exec
      params:
        command: echo
        args: ["replicas={{ _gxo.resume_payload.replicas }} by={{ approval.resumed_by }}"]
"""
JOB = """\
schemaVersion: "1.0.0"
name: job
workloads:
  - name: long
    process: { module: exec, params: { command: sleep, args: ["73"] } }
"""


@pytest.fixture
def members(require_service: Callable[..., None]) -> Iterator[list[DaemonProc]]:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    with fleet_on_postgres(len(NAMES), "pausefleet") as procs:
        yield procs


def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    return until(check, timeout, what, step=0.1)


def _token(d: DaemonProc) -> str:
    out = d.ctl("events", "-o", "json", "--tail", "2000")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    [event] = [e for e in events if e["kind"] == "workload_paused"]
    return str(event["data"]["token"])


def _runs(d: DaemonProc, name: str, run_id: str) -> list[dict[str, Any]]:
    return [r for r in d.ctl_json("runs", name) if r["run_id"] == f"{run_id}.{name.split('/')[-1]}"]


def test_a_paused_run_survives_its_members_death(members: list[DaemonProc], tmp_path: Path) -> None:
    for d, name in zip(members, NAMES, strict=True):
        d.start("--fleet", "f1", "--member", name, "--lease-ttl", f"{TTL}s")
    holder, others = members[0], members[1:]
    path = tmp_path / "rel.gxo.yaml"
    path.write_text(PLAYBOOK)
    assert holder.ctl("apply", "-f", str(path)).returncode == 0
    [pause] = _until(lambda: holder.ctl_json("paused"), 20, "the pause")
    assert pause["member"] == "ma"
    token = _token(holder)
    assert token.startswith(pause["token_id"] + ".")
    run_id = pause["run_id"]
    [row] = _runs(holder, "rel/approve", run_id)
    assert (row["status"], row["member"]) == ("Running", "ma")  # the run is the holder's
    job = tmp_path / "job.gxo.yaml"
    job.write_text(JOB)
    assert holder.ctl("apply", "-f", str(job)).returncode == 0
    [job_run] = _until(lambda: holder.ctl_json("runs", "job/long"), 20, "the job's run")
    for d in others:  # the playbooks are taken up by the others (playbook sync)
        _until(
            lambda d=d: (
                {("rel", "deploy"), ("job", "long")}
                <= {(s["playbook"], s["workload"]) for s in d.ctl_json("status")}
            ),
            20,
            "the playbook sync",
        )

    assert holder.proc is not None
    killed = time.monotonic()
    holder.proc.send_signal(signal.SIGKILL)
    holder.proc.wait(10)

    def taken() -> str | None:
        rows = _runs(others[0], "rel/approve", run_id)
        return rows[0]["member"] if rows and rows[0]["member"] != "ma" else None

    new = _until(taken, TTL + TTL / 3 + 5, "a survivor to take the paused run over")
    took = time.monotonic() - killed
    print(f"paused run taken over by {new} after {took:.2f}s (lease ttl {TTL}s)")
    waiting = members[NAMES.index(new)]
    other = next(d for d in others if d is not waiting)  # resumed through the other one
    assert f"taken over by {new}" in waiting.logs()
    assert "taken over by" not in other.logs()  # exactly one took it over
    for d in others:  # same pause, same token id, on every member
        [listed] = d.ctl_json("paused")
        assert (listed["token_id"], listed["run_id"]) == (pause["token_id"], run_id)
        assert listed["member"] == new  # ctl paused names the member that took it over
        assert "MEMBER" in d.ctl("paused").stdout
    waiting.wait_status("rel/approve", "Paused")
    for name in ("rel/approve", "rel/deploy"):
        [row] = _runs(other, name, run_id)
        assert (row["status"], row["member"]) == ("Running", new)

    # The dead member's run without a pause is Failed as before.
    failed = _until(
        lambda: next(
            (r for r in other.ctl_json("runs", "job/long")
             if r["run_id"] == job_run["run_id"] and r["status"] == "Failed"),
            None,
        ),
        10,
        "the job's run Failed",
    )  # fmt: skip
    assert failed["reason"] == "fleet member ma died"

    bad = other.ctl("resume", "--token", token, "--payload", '{"replicas": 0}')
    assert bad.returncode == 2 and "still paused" in bad.stderr
    started = time.monotonic()
    ok = other.ctl("resume", "--token", token, "--payload", '{"replicas": 3}')
    assert ok.returncode == 0, ok.stderr
    assert "rel/approve resumed by local-admin" in ok.stdout
    waiting.wait_status("rel/deploy", "Completed", timeout=15)
    print(f"downstream completed {time.monotonic() - started:.2f}s after the resume")
    assert "replicas=3 by=local-admin" in waiting.ctl("logs", "rel/deploy").stdout
    for name in ("rel/build", "rel/approve", "rel/deploy"):
        rows = _runs(other, name, run_id)
        assert [r["status"] for r in rows] == ["Completed"], (name, rows)
    for name in ("rel/approve", "rel/deploy"):
        assert _runs(other, name, run_id)[0]["member"] == new
    assert other.ctl_json("paused") == []
    again = waiting.ctl("resume", "--token", token, "--payload", '{"replicas": 3}')
    assert again.returncode == 1 and "was already resumed by local-admin" in again.stderr
