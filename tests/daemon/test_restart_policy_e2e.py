"""A daemon killed with SIGKILL and started again: each ``supervise`` workload follows its
restart policy (issue 9). An instance that was running is recorded ``Failed`` with reason
``daemon restarted``, then ``always``/``on_failure`` restart it (counters go on) and
``never`` leaves it Failed; a workload that had already ended (Completed, Failed by the
crash-loop guard or under ``never``) stays as it was until ``gxo ctl start``; a back-off
under way is waited out. Real daemon subprocesses, SQLite and PostgreSQL state."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.daemon.conftest import DaemonProc

pytestmark = pytest.mark.timeout(180)

FAST = "backoff: { initial: 200ms, max: 200ms, jitter: 0 }"


def _service(name: str, policy: str, script: str, extra: str = FAST) -> str:
    return (
        f"  - name: {name}\n"
        f"    lifecycle: {{ policy: supervise, restart_policy: {policy}, {extra} }}\n"
        f"    process: {{ module: exec, params: {{ command: sh, args: ['-c', '{script}'] }} }}\n"
    )


PLAYBOOK = (
    'schemaVersion: "1.0.0"\nname: policies\nworkloads:\n'
    # running when the daemon dies
    + _service("up_always", "always", "exec sleep 301")
    + _service("up_onfail", "on_failure", "exec sleep 302")
    + _service("up_never", "never", "exec sleep 303")
    # ended before the daemon dies
    + _service("done_ok", "on_failure", "exit 0")
    + _service("never_failed", "never", "exit 3")
    + _service("looped", "always", "exit 1", FAST + ", max_restarts: 1, restart_window: 5m")
    # in its back-off when the daemon dies: 20s to wait, the daemon is back well before
    + _service(
        "backing_off",
        "on_failure",
        'test -e "$0.second" && exec sleep 304; touch "$0.second"; exit 1',
        "backoff: { initial: 20s, max: 20s, jitter: 0 }",
    )
)


@pytest.fixture
def pg_state(require_service: Callable[..., None]) -> Iterator[str]:
    from sqlalchemy import create_engine, text

    require_service("127.0.0.1", 5432, "PostgreSQL")
    name = f"gxo_test_policy_{os.getpid()}_{uuid.uuid4().hex[:8]}"
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


def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _sleeps(d: DaemonProc) -> set[str]:
    """The ``sleep 30N`` commands alive under the daemon(s), by argument."""
    found = set()
    for p in d.descendants():
        try:
            if p.name() == "sleep" and p.status() != "zombie":
                found.add(p.cmdline()[-1])
        except Exception:
            pass
    return found


def _running_with(d: DaemonProc, name: str, restarts: int) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        row = d.ctl_json("status", name)[0]
        return row if row["status"] == "Running" and row["restarts"] == restarts else None

    return _until(check, 20, f"{name} Running after {restarts} restart(s)")


def _statuses(d: DaemonProc) -> dict[str, dict[str, Any]]:
    return {row["workload"]: row for row in d.ctl_json("status")}


def _runs(d: DaemonProc, name: str) -> list[tuple[str, str]]:
    return [(r["status"], r["reason"]) for r in d.ctl_json("runs", name)]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_then_each_workload_follows_its_restart_policy(
    daemon: DaemonProc, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "postgresql":
        daemon.state = request.getfixturevalue("pg_state")
    script = daemon.folder / "policies.gxo.yaml"
    # The marker of backing_off lives next to the playbook ($0 is the script name: sh -c).
    script.write_text(PLAYBOOK.replace('"$0.second"', f'"{daemon.folder}/marker"'))
    try:
        proc = daemon.start()
        assert daemon.ctl("apply", "-f", str(script)).returncode == 0

        def settled() -> bool:
            rows = _statuses(daemon)
            return (
                all(rows[n]["status"] == "Running" for n in ("up_always", "up_onfail", "up_never"))
                and rows["done_ok"]["status"] == "Completed"
                and rows["never_failed"]["status"] == "Failed"
                and rows["looped"]["status"] == "Failed"
                and rows["backing_off"]["status"] == "Restarting"
                and _sleeps(daemon) == {"301", "302", "303"}
            )

        _until(settled, 30, "every workload in its state before the kill")
        before = _statuses(daemon)
        assert "max_restarts: 1" in before["looped"]["reason"]
        history = {name: _runs(daemon, name) for name in before}
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        _until(lambda: not _sleeps(daemon), 10, "the services to die with their daemon")

        daemon.start()
        # The back-off under way is waited out (20s from its start), not skipped.
        row = _statuses(daemon)["backing_off"]
        assert (
            row["status"] == "Restarting" and row["next_run"] == before["backing_off"]["next_run"]
        ), row
        assert len(_runs(daemon, "backing_off")) == 1
        # always and on_failure: the instance that died is Failed, then restarted after
        # the back-off, the restart counted on top of the ones before.
        for name in ("up_always", "up_onfail"):
            row = _running_with(daemon, name, 1)  # (the old daemon's row said Running, 0)
            assert before[name]["restarts"] == 0, before[name]
            runs = _runs(daemon, name)
            assert runs[1] == ("Failed", "daemon restarted") and len(runs) == 2, runs
        _until(lambda: {"301", "302"} <= _sleeps(daemon), 20, "both services again")

        # never: recorded Failed (daemon restarted) and left so.
        row = daemon.wait_status("up_never", "Failed")
        assert row["reason"] == "daemon restarted" and row["restarts"] == 0, row
        assert _runs(daemon, "up_never") == [("Failed", "daemon restarted")]

        daemon.wait_status("backing_off", "Running", timeout=30)
        _until(lambda: "304" in _sleeps(daemon), 10, "backing_off's second run")
        second = daemon.ctl_json("runs", "backing_off")[0]
        due = datetime.fromisoformat(before["backing_off"]["next_run"])
        started = datetime.fromisoformat(second["started_at"])
        assert started >= due - timedelta(milliseconds=200), (started, due)  # not before

        # What had ended stays as it was: nothing ran again.
        time.sleep(1)
        after = _statuses(daemon)
        for name in ("done_ok", "never_failed", "looped"):
            for field in ("status", "reason", "restarts", "last_exit"):
                assert after[name][field] == before[name][field], (name, field, after[name])
            assert _runs(daemon, name) == history[name], name
        assert "303" not in _sleeps(daemon)

        # `gxo ctl start` still starts them: afresh (a clean crash-loop window).
        assert daemon.ctl("start", "done_ok").returncode == 0
        _until(lambda: len(_runs(daemon, "done_ok")) == 2, 20, "done_ok to run again")
        daemon.wait_status("done_ok", "Completed")
        assert daemon.ctl("start", "up_never").returncode == 0
        daemon.wait_status("up_never", "Running")
        _until(lambda: "303" in _sleeps(daemon), 20, "up_never started by ctl")
        assert daemon.ctl("start", "looped").returncode == 0
        _until(lambda: len(_runs(daemon, "looped")) == 4, 20, "looped: two more runs")
        row = daemon.wait_status("looped", "Failed")
        assert row["restarts"] == 1 and "max_restarts: 1" in row["reason"], row
    finally:
        daemon.stop()  # before the PostgreSQL database is dropped


def test_restart_policy_never_after_two_restarts_of_the_daemon(daemon: DaemonProc) -> None:
    """A workload left Failed (daemon restarted) under ``never`` is not restarted by the
    next daemon restart either, and an always one goes on counting."""
    text = (
        'schemaVersion: "1.0.0"\nname: twice\nworkloads:\n'
        + _service("keep", "always", "exec sleep 305")
        + _service("once", "never", "exec sleep 306")
    )
    path = Path(daemon.folder) / "twice.gxo.yaml"
    path.write_text(text)
    proc = daemon.start()
    assert daemon.ctl("apply", "-f", str(path)).returncode == 0
    _until(lambda: _sleeps(daemon) == {"305", "306"}, 20, "both services")
    for restarts in (1, 2):
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        _until(lambda: not _sleeps(daemon), 10, "the services to die")
        proc = daemon.start()
        _running_with(daemon, "keep", restarts)
        _until(lambda: "305" in _sleeps(daemon), 20, "keep again")
        row = daemon.wait_status("once", "Failed")
        assert row["reason"] == "daemon restarted"
        assert _runs(daemon, "once") == [("Failed", "daemon restarted")]
        assert "306" not in _sleeps(daemon)
