"""Paused workloads under a real ``gxo daemon`` subprocess: ``gxo ctl paused/resume/reject``,
tokens (single use, only to subscribers allowed to resume), a daemon killed while a
workload is paused, resume racing the timeout, approvers over mutual TLS."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.daemon.conftest import DaemonProc
from tests.daemon.security_support import Pki, call, free_port, pb

pytestmark = pytest.mark.timeout(180)

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: rel
workloads:
  - name: build
    process: { module: exec, params: { command: echo, args: ["built {{ secret('PAUSE_PW') }}"] } }
  - name: approve
    depends_on: [build]
    process:
      module: control:wait_for_signal
      params:
        prompt: "Deploy 1.4 to production?"
        payload_schema:
          type: object
          properties:
            approved: { type: boolean }
            replicas: { type: integer, minimum: 1 }
            note: { type: string }
          required: [approved, replicas]
        APPROVERS
    register: approval
  - name: deploy
    depends_on: [approve]
    process:
      module: exec
      params:
        command: echo
        args: ["replicas={{ _gxo.resume_payload.replicas }} by={{ approval.resumed_by }}"]
"""
PW = "hunter2-pause-pw"
GOOD = '{"approved": true, "replicas": 3}'


def _playbook(d: DaemonProc, approvers: str = "", name: str = "rel.gxo.yaml") -> Path:
    path = d.folder / name
    path.write_text(PLAYBOOK.replace("APPROVERS", approvers), encoding="utf-8")
    return path


def _paused_events(d: DaemonProc) -> list[dict[str, Any]]:
    out = d.ctl("events", "-o", "json", "--tail", "2000")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    return [e for e in events if e["kind"] == "workload_paused"]


def _wait_paused(d: DaemonProc, count: int = 1, timeout: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = d.ctl_json("paused")
        if len(rows) >= count:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"not paused: {rows} {d.logs()}")


@pytest.fixture
def env_pw(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAUSE_PW", PW)  # the daemon subprocess inherits it: secret('PAUSE_PW')


def test_pause_list_refuse_resume_reuse(daemon: DaemonProc, env_pw: None) -> None:
    audit = daemon.folder / "audit.log"
    daemon.start("--audit-log", str(audit))
    assert daemon.ctl("apply", "-f", str(_playbook(daemon))).returncode == 0
    [row] = _wait_paused(daemon)
    assert daemon.wait_status("rel/approve", "Paused")["reason"] == (
        "waits for an answer: Deploy 1.4 to production?"
    )
    assert row["playbook"] == "rel" and row["workload"] == "approve"
    assert row["prompt"] == "Deploy 1.4 to production?" and row["expires_at"] is None
    assert row["payload_schema"]["required"] == ["approved", "replicas"]
    assert "token" not in row and row["token_id"].startswith("p")
    table = daemon.ctl("paused")
    assert "rel/approve" in table.stdout and row["token_id"] in table.stdout

    # The local identity (admin) may resume: its event stream carries the token.
    [event] = _paused_events(daemon)
    token = event["data"]["token"]
    assert token.startswith(row["token_id"] + ".") and event["run_id"] == row["run_id"]
    assert token not in table.stdout and token not in json.dumps(row)
    plain = daemon.ctl("events").stdout  # the table: the prompt and token id, no token
    assert f"Deploy 1.4 to production? (token id {row['token_id']})" in plain
    assert token not in plain

    bad = daemon.ctl("resume", "--token", token, "--payload", '{"approved": true, "replicas": 0}')
    assert bad.returncode == 2
    assert "replicas: 0 is less than the minimum of 1" in bad.stderr
    assert "still paused" in bad.stderr and "Traceback" not in bad.stderr
    missing = daemon.ctl("resume", "--token", token, "--payload", '{"approved": true}')
    assert missing.returncode == 2 and "'replicas' is a required property" in missing.stderr
    unknown = daemon.ctl("resume", "--token", token[:-2] + "zz", "--payload", GOOD)
    assert unknown.returncode == 1 and "unknown resume token" in unknown.stderr
    usage = daemon.ctl("resume", "--payload", GOOD)
    assert usage.returncode == 2 and "--token" in usage.stderr
    notjson = daemon.ctl("resume", "--token", token, "--payload", "{nope")
    assert notjson.returncode == 2 and "--payload is not JSON" in notjson.stderr
    assert daemon.ctl_json("paused")[0]["token_id"] == row["token_id"]  # still paused

    payload = daemon.folder / "payload.yaml"
    payload.write_text(f"approved: true\nreplicas: 3\nnote: {PW}\n")
    ok = daemon.ctl("resume", "--token", token, "--payload-file", str(payload))
    assert ok.returncode == 0, ok.stderr
    assert "rel/approve resumed by local-admin" in ok.stdout
    daemon.wait_status("rel/deploy", "Completed")
    assert "replicas=3 by=local-admin" in daemon.ctl("logs", "rel/deploy").stdout
    assert daemon.ctl_json("paused") == []

    again = daemon.ctl("resume", "--token", token, "--payload", GOOD)
    assert again.returncode == 1
    assert "was already resumed by local-admin at" in again.stderr
    summary = daemon.ctl_json("runs", "rel/approve")[0]["report"]["workloads"]["approve"]
    assert summary["summary"]["resumed_by"] == "local-admin"
    assert summary["summary"]["timed_out"] is False

    # Audit: who, when, with what; the secret() value of the run redacted.
    lines = [json.loads(x) for x in audit.read_text().splitlines()]
    resumes = [a for a in lines if a["method"] == "ResumeWorkload"]
    done = [a for a in resumes if a["code"] == "OK"]
    assert len(done) == 1 and done[0]["identity"] == "local-admin"
    assert done[0]["target"] == "rel/approve" and done[0]["token_id"] == row["token_id"]
    assert done[0]["payload"]["replicas"] == 3 and PW not in json.dumps(done[0])
    assert {a["code"] for a in resumes} >= {"INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION"}
    assert token not in audit.read_text()

    # At rest: the token's hash only; prompt and payload are sealed.
    daemon.stop()
    raw = Path(daemon.state.removeprefix("sqlite:///")).read_bytes()
    assert token.encode() not in raw and b"Deploy 1.4" not in raw and PW.encode() not in raw
    with sqlite3.connect(daemon.state.removeprefix("sqlite:///")) as conn:
        [(state, by, hashed)] = conn.execute(
            "SELECT state, decided_by, token_hash FROM gxo_pauses"
        ).fetchall()
    assert (state, by, len(hashed)) == ("resumed", "local-admin", 64)


def test_reject_by_run_and_workload(daemon: DaemonProc, env_pw: None) -> None:
    daemon.start()
    assert daemon.ctl("apply", "-f", str(_playbook(daemon))).returncode == 0
    [row] = _wait_paused(daemon)
    usage = daemon.ctl("reject", "--workload", "approve")
    assert usage.returncode == 2 and "--reason" in usage.stderr
    out = daemon.ctl(
        "reject", "--run", row["run_id"], "--workload", "rel/approve", "--reason", "not today"
    )
    assert out.returncode == 0, out.stderr
    assert "rejected by local-admin: not today" in out.stdout
    failed = daemon.wait_status("rel/approve", "Failed")
    assert "rejected by local-admin: not today" in failed["reason"]
    daemon.wait_status("rel/deploy", "Skipped")
    late = daemon.ctl("resume", "--workload", "approve", "--payload", GOOD)
    assert late.returncode == 1 and "already rejected by local-admin" in late.stderr


@pytest.mark.parametrize("how", ["kill", "term"])
def test_daemon_restart_while_paused_keeps_the_pause_and_its_token(
    daemon: DaemonProc, env_pw: None, how: str
) -> None:
    daemon.start()
    assert daemon.ctl("apply", "-f", str(_playbook(daemon))).returncode == 0
    [row] = _wait_paused(daemon)
    [event] = _paused_events(daemon)
    token = event["data"]["token"]
    assert daemon.proc is not None
    if how == "kill":
        daemon.proc.send_signal(signal.SIGKILL)
    else:
        daemon.proc.send_signal(signal.SIGTERM)
    daemon.proc.wait(20)

    daemon.start()
    [again] = _wait_paused(daemon)
    assert again == row  # same pause: run id, token id, since
    daemon.wait_status("rel/approve", "Paused")
    # The interrupted run is not recorded as failed: it goes on under its run id.
    runs = daemon.ctl_json("runs", "rel/approve")
    assert [(r["run_id"], r["status"]) for r in runs] == [(f"{row['run_id']}.approve", "Running")]
    assert [r["status"] for r in daemon.ctl_json("runs", "rel/build")] == ["Completed"]
    [event] = _paused_events(daemon)
    assert "token" not in event["data"]  # delivered once, by the first daemon
    assert event["data"]["token_id"] == row["token_id"]

    ok = daemon.ctl("resume", "--token", token, "--payload", GOOD)
    assert ok.returncode == 0, ok.stderr
    daemon.wait_status("rel/deploy", "Completed")
    assert "replicas=3 by=local-admin" in daemon.ctl("logs", "rel/deploy").stdout
    runs = daemon.ctl_json("runs", "rel/approve")
    assert [(r["run_id"], r["status"]) for r in runs] == [(f"{row['run_id']}.approve", "Completed")]
    assert daemon.ctl("resume", "--token", token, "--payload", GOOD).returncode == 1


RACE = """\
schemaVersion: "1.0.0"
name: race
workloads:
  - name: gate
    process:
      module: control:wait_for_signal
      params: { prompt: "go?", timeout: 0.4s, on_timeout: continue }
    register: gate
  - name: after
    depends_on: [gate]
    process: { module: exec, params: { command: echo, args: ["timed_out={{ gate.timed_out }}"] } }
"""


def test_resume_racing_the_timeout_on_a_real_daemon(daemon: DaemonProc) -> None:
    daemon.start()
    path = daemon.folder / "race.gxo.yaml"
    path.write_text(RACE)
    assert daemon.ctl("apply", "-f", str(path)).returncode == 0
    rng = random.Random(7)
    outcomes = set()
    for i in range(6):
        if i:
            assert daemon.ctl("start", "race/gate").returncode == 0
        deadline = time.monotonic() + 20
        while not [e for e in _paused_events(daemon) if e["data"].get("token")][i:]:
            assert time.monotonic() < deadline, daemon.logs()
            time.sleep(0.05)
        token = [e for e in _paused_events(daemon) if e["data"].get("token")][i]["data"]["token"]
        time.sleep(rng.uniform(0.0, 0.5))
        out = daemon.ctl("resume", "--token", token, "--payload", "1")
        row = daemon.wait_status("race/after", "Completed")
        summary = daemon.ctl_json("runs", "race/gate")[0]["report"]["workloads"]["gate"]
        timed_out = summary["summary"]["timed_out"]
        if out.returncode == 0:
            assert timed_out is False and summary["summary"]["payload"] == 1, (i, out)
        else:
            assert out.returncode == 1 and "timed out at" in out.stderr, (i, out.stderr)
            assert timed_out is True
        outcomes.add(timed_out)
        assert row["status"] == "Completed"
        assert daemon.ctl_json("paused") == []  # never stuck
        daemon.wait_status("race/gate", "Completed")


# -- identities over mutual TLS -------------------------------------------------------------

RBAC = """\
roles:
  web-ops: { methods: [ListPaused, ResumeWorkload, RejectWorkload, StreamEvents],
             playbooks: ["web-*"] }
subjects:
  - { cn: olga, roles: [operator] }
  - { cn: carol, roles: [operator] }
  - { cn: vera, roles: [viewer] }
  - { cn: walt, roles: [web-ops] }
"""


def _stream_paused(stub: Any) -> list[dict[str, Any]]:
    code, details, events = call(
        stub, "StreamEvents", pb.StreamEventsRequest(follow=False, tail=2000)
    )
    assert code == grpc.StatusCode.OK, details
    return [json.loads(e.data_json) for e in events if e.kind in ("workload_paused",)]


def test_token_only_to_those_allowed_and_approvers_enforced(env_pw: None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="gxop-", dir="/tmp"))
    os.chmod(folder, 0o700)
    pki = Pki(folder / "pki")
    for cn in ("olga", "carol", "vera", "walt"):
        pki.client(cn)
    (folder / "rbac.yaml").write_text(RBAC)
    audit = folder / "audit.log"
    port = free_port()
    d = DaemonProc(folder)
    try:
        d.start(
            *("--listen", f"127.0.0.1:{port}", "--tls-dir", str(pki.dir)),
            *("--rbac", str(folder / "rbac.yaml"), "--audit-log", str(audit)),
        )
        path = _playbook(d, "approvers: [carol]")
        assert d.ctl("apply", "-f", str(path)).returncode == 0
        [row] = _wait_paused(d)
        stubs = {cn: pki.stub(port, cn) for cn in ("olga", "carol", "vera", "walt")}

        # Only carol (an operator the approvers name) gets the token.
        seen = {cn: _stream_paused(stub) for cn, stub in stubs.items()}
        assert seen["walt"] == []  # web-* only: not even the event
        assert all(len(seen[cn]) == 1 for cn in ("olga", "carol", "vera")), seen
        token = seen["carol"][0]["token"]
        for cn in ("olga", "vera"):
            assert "token" not in seen[cn][0] and seen[cn][0]["token_id"] == row["token_id"]

        code, _, reply = call(stubs["vera"], "ListPaused", pb.ListPausedRequest())
        assert code == grpc.StatusCode.OK and [p.workload for p in reply.paused] == ["approve"]
        code, _, reply = call(stubs["walt"], "ListPaused", pb.ListPausedRequest())
        assert code == grpc.StatusCode.OK and list(reply.paused) == []  # web-* only

        by_name = pb.ResumeWorkloadRequest(workload="rel/approve", payload_json=GOOD)
        code, details, _ = call(stubs["vera"], "ResumeWorkload", by_name)
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert details == "permission denied: vera may not call ResumeWorkload"
        code, details, _ = call(stubs["walt"], "ResumeWorkload", by_name)
        assert code == grpc.StatusCode.PERMISSION_DENIED and "on rel/approve" in details
        code, details, _ = call(stubs["olga"], "ResumeWorkload", by_name)
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert "olga is not an approver of 'rel/approve' (approvers: carol)" in details
        # Even with the token, olga is not an approver.
        with_token = pb.ResumeWorkloadRequest(token=token, payload_json=GOOD)
        code, details, _ = call(stubs["olga"], "ResumeWorkload", with_token)
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert d.ctl_json("paused")[0]["token_id"] == row["token_id"]

        code, details, reply = call(stubs["carol"], "ResumeWorkload", with_token)
        assert code == grpc.StatusCode.OK, details
        assert reply.state == "resumed" and reply.decided_by == "carol"
        d.wait_status("rel/deploy", "Completed")
        assert "replicas=3 by=carol" in d.ctl("logs", "rel/deploy").stdout

        lines = [json.loads(x) for x in audit.read_text().splitlines()]
        mine = [a for a in lines if a["method"] == "ResumeWorkload"]
        assert {(a["identity"], a["code"]) for a in mine} == {
            ("vera", "PERMISSION_DENIED"),
            ("walt", "PERMISSION_DENIED"),
            ("olga", "PERMISSION_DENIED"),
            ("carol", "OK"),
        }
        assert token not in audit.read_text()
    finally:
        d.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_ctl_usage_errors_without_a_daemon(tmp_path: Path) -> None:
    import sys

    base = [sys.executable, "-m", "gxo.cli", "ctl", "--socket", str(tmp_path / "none.sock")]
    out = subprocess.run([*base, "paused"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 3 and "cannot reach the gxo daemon" in out.stderr
    both = [*base, "resume", "--token", "t", "--payload", "1", "--payload-file", "f"]
    out = subprocess.run(both, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--payload or --payload-file" in out.stderr
    missing = [*base, "resume", "--token", "t", "--payload-file", str(tmp_path / "no.json")]
    out = subprocess.run(missing, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--payload-file" in out.stderr and "no.json" in out.stderr


def test_stop_while_paused_ends_the_pause(daemon: DaemonProc, env_pw: None) -> None:
    daemon.start()
    assert daemon.ctl("apply", "-f", str(_playbook(daemon))).returncode == 0
    _wait_paused(daemon)
    [event] = _paused_events(daemon)
    out = daemon.ctl("stop", "rel/approve")
    assert out.returncode == 0, out.stderr
    assert daemon.ctl_json("paused") == []
    late = daemon.ctl("resume", "--token", event["data"]["token"], "--payload", GOOD)
    assert late.returncode == 1
    assert "is no longer paused: its run ended" in late.stderr and "stopped" in late.stderr


TICKED = """\
schemaVersion: "1.0.0"
name: ticked
workloads:
  - name: tick
    lifecycle: { policy: scheduled, cron: "@every 1s" }
    process: { module: control:identity, params: { at: "{{ _gxo.run_id }}" } }
  - name: gate
    depends_on: [tick]
    process:
      module: control:wait_for_signal
      params: { prompt: "tick ok?" }
"""


def test_a_pause_downstream_of_a_scheduled_workload_survives_a_restart(
    daemon: DaemonProc,
) -> None:
    """The instance of a scheduled workload paused after its root completed: after a
    restart the paused part runs again under its run id and the old token resumes it,
    while the reconciler's new ticks pause on their own."""
    daemon.start()
    path = daemon.folder / "ticked.gxo.yaml"
    path.write_text(TICKED)
    assert daemon.ctl("apply", "-f", str(path)).returncode == 0
    first = _wait_paused(daemon)[0]
    old = next(e for e in _paused_events(daemon) if e["run_id"] == first["run_id"])
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait(20)
    daemon.start()
    deadline = time.monotonic() + 30
    while not [e for e in _paused_events(daemon) if e["run_id"] == first["run_id"]]:
        assert time.monotonic() < deadline, daemon.logs()
        time.sleep(0.2)
    assert first in daemon.ctl_json("paused")
    out = daemon.ctl("resume", "--token", old["data"]["token"], "--payload", "1")
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 20
    while True:
        runs = {r["run_id"]: r["status"] for r in daemon.ctl_json("runs", "ticked/gate")}
        if runs.get(f"{first['run_id']}.gate") == "Completed":
            break
        assert time.monotonic() < deadline, runs
        time.sleep(0.2)
    assert all(r["run_id"] != first["run_id"] for r in daemon.ctl_json("paused"))
