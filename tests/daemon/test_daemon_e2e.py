"""``gxo daemon`` + ``gxo ctl`` end to end: a real daemon subprocess, temp socket, temp SQLite."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the fixture's class; conftest is not imported as a module
    from tests.daemon.conftest import DaemonProc

pytestmark = pytest.mark.timeout(120)

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: demo
workloads:
  - name: hello
    process: { module: exec, params: { command: echo, args: ["hello world"] } }
    register: greet
  - name: after
    process: { module: exec, params: { command: echo, args: ["{{ greet.stdout | trim }} WORD"] } }
"""


def write(d: DaemonProc, text: str, name: str = "demo.gxo.yaml") -> Path:
    path = d.folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_apply_runs_once_with_status_runs_logs_and_events(daemon: DaemonProc) -> None:
    daemon.start()
    out = daemon.ctl("apply", "-f", str(write(daemon, PLAYBOOK)))
    assert out.returncode == 0, out.stderr
    assert "added" in out.stdout and "hello, after" in out.stdout
    daemon.wait_status("after", "Completed")
    assert daemon.wait_status("hello", "Completed")["policy"] == "run_once"

    runs = daemon.ctl_json("runs", "hello")
    assert [r["status"] for r in runs] == ["Completed"]
    assert runs[0]["report"]["workloads"]["hello"]["summary"]["stdout"].strip() == "hello world"

    # `after` read hello's registered result from the daemon's state.
    logs = daemon.ctl("logs", "after")
    assert logs.returncode == 0 and "hello world WORD" in logs.stdout

    events = [json.loads(line) for line in daemon.ctl("events", "-o", "json").stdout.splitlines()]
    kinds = {e["kind"] for e in events}
    assert {"run_started", "workload_status", "log", "run_finished"} <= kinds
    assert all(e["playbook"] == "demo" for e in events)

    table = daemon.ctl("status")
    assert table.returncode == 0 and re.search(r"demo\s+hello\s+run_once\s+Completed", table.stdout)
    # A playbook's name lists its workloads.
    assert [r["workload"] for r in daemon.ctl_json("status", "demo")] == ["hello", "after"]


def test_reapply_with_one_workload_changed_reruns_only_that_one(daemon: DaemonProc) -> None:
    daemon.start()
    path = write(daemon, PLAYBOOK)
    assert daemon.ctl("apply", "-f", str(path)).returncode == 0
    daemon.wait_status("after", "Completed")
    daemon.wait_status("hello", "Completed")

    path.write_text(PLAYBOOK.replace("WORD", "CHANGED"), encoding="utf-8")
    diff = daemon.ctl_json("apply", "-f", str(path))
    assert diff["changed"] == ["after"] and diff["unchanged"] == ["hello"]
    assert diff["added"] == [] and diff["removed"] == [] and diff["started"] == ["after"]
    deadline = time.monotonic() + 20
    while len(daemon.ctl_json("runs", "after")) < 2 or daemon.ctl_json("status", "after")[0][
        "status"
    ] not in ("Completed", "Failed"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert daemon.wait_status("after", "Completed")
    assert len(daemon.ctl_json("runs", "hello")) == 1  # unchanged: not run again
    assert "hello world CHANGED" in daemon.ctl("logs", "after").stdout

    # The same file again: nothing changed, nothing runs.
    same = daemon.ctl_json("apply", "-f", str(path))
    assert same["unchanged"] == ["hello", "after"] and same["started"] == []

    # A removed workload is reported and forgotten.
    path.write_text(PLAYBOOK.split("  - name: after")[0], encoding="utf-8")
    gone = daemon.ctl_json("apply", "-f", str(path))
    assert gone["removed"] == ["after"]
    assert daemon.ctl("status", "after").returncode == 1


def test_bad_playbook_exits_2_with_location_and_keeps_the_old_one(daemon: DaemonProc) -> None:
    daemon.start()
    path = write(daemon, PLAYBOOK)
    assert daemon.ctl("apply", "-f", str(path)).returncode == 0
    daemon.wait_status("after", "Completed")
    before = daemon.ctl_json("status")

    bad = PLAYBOOK.replace("register: greet", "register: greet\n    bogus: 1")
    path.write_text(bad, encoding="utf-8")
    out = daemon.ctl("apply", "-f", str(path))
    assert out.returncode == 2
    assert re.search(rf"{re.escape(str(path))}:7:5: .*bogus", out.stderr), out.stderr
    assert daemon.ctl_json("status") == before
    assert len(daemon.ctl_json("runs", "hello")) == 1

    # A YAML syntax error too; and a missing file is a usage error before any RPC.
    path.write_text("name: [unclosed\n", encoding="utf-8")
    out = daemon.ctl("apply", "-f", str(path))
    assert out.returncode == 2 and f"{path}:" in out.stderr
    assert daemon.ctl("apply", "-f", str(daemon.folder / "missing.yaml")).returncode == 2


def test_errors_from_the_daemon_exit_1(daemon: DaemonProc) -> None:
    daemon.start()
    assert daemon.ctl("apply", "-f", str(write(daemon, PLAYBOOK))).returncode == 0
    daemon.wait_status("hello", "Completed")
    missing = daemon.ctl("status", "nope")
    assert missing.returncode == 1 and "no workload 'nope'" in missing.stderr
    assert daemon.ctl("remove", "nope").returncode == 1
    idle = daemon.ctl("stop", "hello")
    assert idle.returncode == 1 and "not running" in idle.stderr
    assert daemon.ctl_json("status", "hello")[0]["status"] == "Completed"  # stop changed nothing

    again = daemon.ctl_json("start", "demo/hello")
    assert again["run_id"]
    deadline = time.monotonic() + 20
    while len(daemon.ctl_json("runs", "hello")) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    daemon.wait_status("hello", "Completed")

    removed = daemon.ctl_json("remove", "demo")
    assert sorted(removed["removed"]) == ["after", "hello"]
    assert daemon.ctl_json("status") == []


SERVICE = """\
schemaVersion: "1.0.0"
name: svc
workloads:
  - name: server
    lifecycle: { policy: supervise, stop_timeout: 2s }
    process: { module: exec, params: { command: sleep, args: ["300"] } }
"""


def _alive(pid: int) -> bool:
    """A zombie is dead: in a container whose PID 1 does not reap, orphans stay zombies."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _sleep_pids(d: DaemonProc) -> set[int]:
    return {p.pid for p in d.descendants() if p.name() == "sleep" and _alive(p.pid)}


def _until(predicate, timeout: float = 20, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_supervised_service_stop_start_and_daemon_restart(daemon: DaemonProc) -> None:
    import psutil

    proc = daemon.start()
    diff = daemon.ctl_json("apply", "-f", str(write(daemon, SERVICE)))
    assert diff["added"] == ["server"] and diff["started"] == []  # its reconciler runs it
    daemon.wait_status("server", "Running")
    first = _until(lambda: _sleep_pids(daemon), what="the service process")

    stopped = daemon.ctl_json("stop", "server")
    assert stopped["status"]["status"] == "Stopped"
    _, alive = psutil.wait_procs([psutil.Process(p) for p in first if psutil.pid_exists(p)], 5)
    assert not alive and not _sleep_pids(daemon)  # stop leaves no process behind
    assert daemon.ctl("stop", "server").returncode == 1  # not running any more

    assert daemon.ctl("start", "server").returncode == 0
    daemon.wait_status("server", "Running")
    second = _until(lambda: _sleep_pids(daemon), what="the restarted service")
    assert second.isdisjoint(first)
    runs = daemon.ctl_json("runs", "server")
    assert [r["status"] for r in runs][-1] == "Stopped" and runs[0]["status"] == "Running"

    # SIGKILL the daemon: the service dies with it; the next daemon supervises it again.
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    _until(lambda: not any(_alive(p) for p in second), 10, "the orphan to die")
    daemon.start()
    daemon.wait_status("server", "Running")
    third = _until(lambda: _sleep_pids(daemon), what="the service after a restart")
    assert len(third) == 1
    history = daemon.ctl_json("runs", "server")
    assert ("Failed", "daemon restarted") in [(r["status"], r["reason"]) for r in history]

    # A user's stop survives a daemon restart.
    assert daemon.ctl("stop", "server").returncode == 0
    daemon.stop()
    daemon.started.clear()
    daemon.start()
    time.sleep(1)
    assert daemon.ctl_json("status", "server")[0]["status"] == "Stopped"
    assert not _sleep_pids(daemon)


def test_crash_loop_ends_failed_and_scheduled_ticks_are_listed(daemon: DaemonProc) -> None:
    daemon.start()
    text = """\
schemaVersion: "1.0.0"
name: loops
workloads:
  - name: crasher
    lifecycle:
      policy: supervise
      restart_policy: on_failure
      backoff: { initial: 100ms, max: 200ms, factor: 2.0, jitter: 0.2 }
      max_restarts: 2
      restart_window: 60s
    process: { module: exec, params: { command: sh, args: ["-c", "exit 1"] } }
  - name: clean
    lifecycle: { policy: supervise, restart_policy: on_failure }
    process: { module: exec, params: { command: "true" } }
  - name: tick
    lifecycle: { policy: scheduled, cron: "@every 1s" }
    process: { module: control:identity, params: { at: "{{ _gxo.run_id }}" } }
    register: last_tick
  - name: per_tick
    process: { module: control:identity, params: { seen: "{{ last_tick.at }}" } }
"""
    daemon.ctl_json("apply", "-f", str(write(daemon, text)))
    row = daemon.wait_status("crasher", "Failed", timeout=30)
    assert row["restarts"] == 2 and "max_restarts" in row["reason"]
    assert len(daemon.ctl_json("runs", "crasher")) == 3
    clean = daemon.wait_status("clean", "Completed")
    assert clean["restarts"] == 0 and len(daemon.ctl_json("runs", "clean")) == 1
    ticks = _until(lambda: len(daemon.ctl_json("runs", "tick")) >= 2 or None, 20, "two ticks")
    assert ticks
    assert daemon.ctl_json("status", "tick")[0]["next_run"]
    per_tick = daemon.ctl_json("runs", "per_tick")
    assert per_tick and all(r["status"] in ("Completed", "Running") for r in per_tick)


def test_no_daemon_exits_3_naming_the_socket(tmp_path: Path) -> None:
    sock = tmp_path / "none.sock"
    cmd = [sys.executable, "-m", "gxo.cli", "ctl", "--socket", str(sock), "status"]
    import subprocess

    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert out.returncode == 3
    assert str(sock) in out.stderr and "gxo daemon" in out.stderr
    # A socket file nobody listens on (a dead daemon's) is unreachable too.
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(sock))
    dead.close()
    env = {**os.environ, "GXO_SOCKET": str(sock)}
    out = subprocess.run([*cmd[:4], "status"], capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 3 and str(sock) in out.stderr


def test_socket_permissions_sigterm_exit_0_and_socket_removed(daemon: DaemonProc) -> None:
    proc = daemon.start()
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(daemon.socket.parent.stat().st_mode) == 0o700
    assert daemon.ctl("events").returncode == 0  # without -f: the recent events, then exit
    follower = threading.Thread(target=daemon.ctl, args=("events", "-f"), daemon=True)
    follower.start()
    time.sleep(1.5)  # a follower must not hold the shutdown up
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert not daemon.socket.exists()
    follower.join(15)
    assert not follower.is_alive()
    assert "gxo daemon stopped" in daemon.logs()


def test_second_daemon_refused_and_stale_socket_replaced(daemon: DaemonProc) -> None:
    first = daemon.start()
    second = daemon.start(wait=False)
    assert second.wait(20) == 1
    assert "already answering" in daemon.logs()
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert daemon.socket.exists()  # left behind by the killed daemon
    daemon.start()  # removes the stale socket and serves


def test_listen_is_refused_until_mtls(daemon: DaemonProc) -> None:
    proc = daemon.start("--listen", "127.0.0.1:7777", wait=False)
    assert proc.wait(20) == 2
    assert "mutual TLS" in daemon.logs()
    assert not daemon.socket.exists()


@pytest.fixture
def pg_url(require_service) -> Iterator[str]:
    """A fresh PostgreSQL database (dropped afterwards); a failure under CI=true if down."""
    import uuid

    from sqlalchemy import create_engine, text

    require_service("127.0.0.1", 5432, "PostgreSQL")
    name = f"gxo_test_daemon_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_restart_restores_playbooks_and_fails_unfinished_runs(
    daemon: DaemonProc, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "postgresql":
        daemon.state = request.getfixturevalue("pg_url")
    # A workload that hangs in-process (an HTTP server that never answers): no child
    # process, so killing the daemon with SIGKILL leaves nothing behind.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    text = PLAYBOOK + (
        "  - name: hang\n"
        f"    process: {{ module: http:request, params: {{ url: 'http://127.0.0.1:{port}/', timeout: 60 }} }}\n"
    )
    try:
        proc = daemon.start()
        assert daemon.ctl("apply", "-f", str(write(daemon, text))).returncode == 0
        daemon.wait_status("hang", "Running")
        daemon.wait_status("after", "Completed")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        daemon.start()
        row = daemon.wait_status("hang", "Failed")
        assert row["reason"] == "daemon restarted"
        runs = daemon.ctl_json("runs", "hang")
        assert [(r["status"], r["reason"]) for r in runs] == [("Failed", "daemon restarted")]
        assert daemon.ctl_json("status", "after")[0]["status"] == "Completed"  # history intact
        assert len(daemon.ctl_json("runs", "hello")) == 1  # run_once does not run again
    finally:
        daemon.stop()  # before the PostgreSQL database is dropped
        listener.close()


SLEEPER = """\
schemaVersion: "1.0.0"
name: sleepy
workloads:
  - name: nap
    process: { module: exec, params: { command: sleep, args: ["300"] } }
"""


def _sleepers(d: DaemonProc) -> list:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = [p for p in d.descendants() if p.name() == "sleep"]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("the exec command never started")


def test_sigterm_cancels_running_commands_and_records_them(daemon: DaemonProc) -> None:
    import psutil

    proc = daemon.start("--grace", "5s")
    assert daemon.ctl("apply", "-f", str(write(daemon, SLEEPER))).returncode == 0
    daemon.wait_status("nap", "Running")
    sleepers = _sleepers(daemon)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert time.monotonic() - started < 10
    _, alive = psutil.wait_procs(sleepers, timeout=5)
    for orphan in alive:
        orphan.kill()
    assert not alive
    proc = daemon.start()  # the history says how the run ended
    runs = daemon.ctl_json("runs", "nap")
    assert len(runs) == 1 and runs[0]["status"] == "Failed" and runs[0]["ended_at"]


def test_sigkill_of_the_daemon_takes_its_commands_down(daemon: DaemonProc) -> None:
    import psutil

    proc = daemon.start()
    assert daemon.ctl("apply", "-f", str(write(daemon, SLEEPER))).returncode == 0
    daemon.wait_status("nap", "Running")
    sleepers = _sleepers(daemon)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    _, alive = psutil.wait_procs(sleepers, timeout=5)
    for orphan in alive:  # never leak one, even when the test fails
        orphan.kill()
    assert not alive, "exec's command outlived the SIGKILLed daemon"
    daemon.start()
    row = daemon.wait_status("nap", "Failed")
    assert row["reason"] == "daemon restarted"


def test_logs_follow_prints_new_lines_as_they_come(daemon: DaemonProc) -> None:
    import subprocess

    daemon.start()
    text = """\
schemaVersion: "1.0.0"
name: talk
workloads:
  - name: talker
    process: { module: exec, params: { command: sh, args: ["-c", "echo one; sleep 1.5; echo two"] } }
"""
    assert daemon.ctl("apply", "-f", str(write(daemon, text))).returncode == 0
    cmd = [sys.executable, "-m", "gxo.cli", "ctl", "--socket", str(daemon.socket)]
    follower = subprocess.Popen(
        [*cmd, "logs", "talker", "-f", "-o", "json"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert follower.stdout is not None
        lines = [json.loads(follower.stdout.readline()) for _ in range(2)]
        assert [line["line"] for line in lines] == ["one", "two"]
        assert all(line["workload"] == "talker" for line in lines)
        assert follower.poll() is None  # -f keeps following after the run ended
    finally:
        follower.terminate()
        follower.wait(10)
        if follower.stdout is not None:
            follower.stdout.close()
    tail = daemon.ctl("logs", "talker", "--tail", "1")
    assert tail.stdout.strip().endswith("two") and "one" not in tail.stdout


def test_reapply_restarts_only_the_changed_supervised_workload(daemon: DaemonProc) -> None:
    daemon.start()
    two = SERVICE + (
        "  - name: other\n"
        "    lifecycle: { policy: supervise, stop_timeout: 2s }\n"
        '    process: { module: exec, params: { command: sleep, args: ["301"] } }\n'
    )
    path = write(daemon, two)
    daemon.ctl_json("apply", "-f", str(path))

    def by_arg() -> dict[str, int] | None:
        found = {}
        for p in daemon.descendants():
            if p.name() == "sleep" and _alive(p.pid):
                found[p.cmdline()[-1]] = p.pid
        return found if len(found) == 2 else None

    before = _until(by_arg, what="both services")
    path.write_text(two.replace('args: ["301"]', 'args: ["302"]'), encoding="utf-8")
    diff = daemon.ctl_json("apply", "-f", str(path))
    assert diff["changed"] == ["other"] and diff["unchanged"] == ["server"]
    after = _until(lambda: (f := by_arg()) and "302" in f and f, what="the changed service")
    assert after["300"] == before["300"]  # the unchanged service was not touched
    assert "301" not in after


def test_restart_counters_survive_a_daemon_restart(daemon: DaemonProc) -> None:
    proc = daemon.start()
    text = """\
schemaVersion: "1.0.0"
name: counters
workloads:
  - name: flaky
    lifecycle:
      policy: supervise
      backoff: { initial: 100ms, max: 100ms, jitter: 0 }
      max_restarts: 3
      restart_window: 5m
    process: { module: exec, params: { command: sh, args: ["-c", "sleep 1.5; exit 1"] } }
"""
    daemon.ctl_json("apply", "-f", str(write(daemon, text)))

    def running_after_two() -> bool:
        row = daemon.ctl_json("status", "flaky")[0]
        return row["status"] == "Running" and row["restarts"] == 2

    _until(running_after_two, 30, "the second restart")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    daemon.start()
    # The new daemon's supervisor goes on counting from 2, not from 0: the instance that
    # died with the daemon is a failure its restart policy answers with restart 3.
    # (Polled as restart 3, Running or already Failed again: on a loaded machine the
    # 1.5 s instance may end before the first poll sees it running.)
    row = _until(
        lambda: (r := daemon.ctl_json("status", "flaky")[0])["restarts"] >= 3 and r,
        30,
        "restart 3",
    )
    assert row["restarts"] == 3 and row["status"] in ("Running", "Restarting", "Failed"), row
    # That filled the 5m window: the next failure is the crash loop.
    row = daemon.wait_status("flaky", "Failed", timeout=30)
    assert row["restarts"] == 3 and "max_restarts: 3" in row["reason"], row
    # 3 runs before the kill (the last one Failed: daemon restarted), 1 after it.
    runs = daemon.ctl_json("runs", "flaky")
    assert len(runs) == 4, runs
    assert [r["reason"] for r in runs].count("daemon restarted") == 1


def test_start_after_the_crash_loop_limit_supervises_afresh(daemon: DaemonProc) -> None:
    daemon.start()
    text = """\
schemaVersion: "1.0.0"
name: giveup
workloads:
  - name: crasher
    lifecycle:
      policy: supervise
      backoff: { initial: 100ms, max: 100ms, jitter: 0 }
      max_restarts: 1
      restart_window: 60s
    process: { module: exec, params: { command: sh, args: ["-c", "exit 1"] } }
"""
    daemon.ctl_json("apply", "-f", str(write(daemon, text)))
    daemon.wait_status("crasher", "Failed", timeout=30)
    assert len(daemon.ctl_json("runs", "crasher")) == 2
    # The supervisor gave up; `ctl start` is not "already running" but a fresh start.
    out = daemon.ctl("start", "crasher")
    assert out.returncode == 0, out.stderr
    _until(lambda: len(daemon.ctl_json("runs", "crasher")) == 4, 30, "two more runs")
    row = daemon.wait_status("crasher", "Failed", timeout=30)
    assert row["restarts"] == 1 and "max_restarts: 1" in row["reason"]


def test_history_keeps_the_last_n_runs_per_workload(daemon: DaemonProc) -> None:
    daemon.start("--history", "2")
    assert daemon.ctl("apply", "-f", str(write(daemon, PLAYBOOK))).returncode == 0
    daemon.wait_status("hello", "Completed")
    for _ in range(3):
        first = daemon.ctl_json("runs", "hello")[0]["run_id"]
        assert daemon.ctl("start", "demo/hello").returncode == 0
        deadline = time.monotonic() + 20
        while daemon.ctl_json("runs", "hello")[0]["run_id"] == first:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        daemon.wait_status("hello", "Completed")
    runs = daemon.ctl_json("runs", "hello")
    assert len(runs) == 2 and all(r["status"] == "Completed" for r in runs)


def test_history_must_be_positive(daemon: DaemonProc) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gxo.cli",
            "daemon",
            "--socket",
            str(daemon.socket),
            "--history",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "--history" in out.stderr
