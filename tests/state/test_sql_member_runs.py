"""Schema version 2 (``gxo_runs.member``): a version-1 database is migrated in place, runs
record their fleet member, and the runs of a member whose liveness lease expired are
failed by the others' sweep (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import create_engine, text

from gxo.state._sql_leases import member_lease
from gxo.state._sql_schema import SCHEMA_VERSION, parse_url
from gxo.state.sql import SqlState

T0 = "2026-01-01T00:00:00+00:00"


def _as_version_1(url: str) -> None:
    """Turn a fresh database into what gxo with schema version 1 left: no member column."""
    engine = create_engine(parse_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE gxo_runs DROP COLUMN member"))
            conn.execute(text("UPDATE gxo_meta SET value = '1' WHERE key = 'schema_version'"))
            conn.execute(
                text(
                    "INSERT INTO gxo_runs (run_id, playbook, workload, status, started_at) "
                    "VALUES ('old', 'p', 'w', 'Running', :t)"
                ),
                {"t": T0},
            )
    finally:
        engine.dispose()


def _columns_and_version(url: str) -> tuple[set[str], str]:
    from sqlalchemy import inspect

    engine = create_engine(parse_url(url))
    try:
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("gxo_runs")}
            version = conn.execute(
                text("SELECT value FROM gxo_meta WHERE key = 'schema_version'")
            ).scalar()
    finally:
        engine.dispose()
    return columns, str(version)


def test_version_1_database_is_migrated_in_place(state_url: str) -> None:
    SqlState(state_url).close()
    _as_version_1(state_url)
    assert _columns_and_version(state_url) == (
        {"id", "run_id", "playbook", "workload", "status", "started_at", "ended_at", "reason",
         "report"},
        "1",
    )  # fmt: skip
    state = SqlState(state_url)
    try:
        columns, version = _columns_and_version(state_url)
        assert "member" in columns and version == str(SCHEMA_VERSION) == "3"
        old = state.get_run("old")  # the history of version 1 is kept
        assert old is not None and old["status"] == "Running" and "member" not in old
        state.start_run("p", "w", "new", T0, member="m1")
        assert state.get_run("new")["member"] == "m1"  # type: ignore[index]
        # Opening again is a no-op (the migration ran once).
        SqlState(state_url).close()
        assert _columns_and_version(state_url)[1] == "3"
    finally:
        state.close()


def test_start_run_records_the_member_and_restart_fails_only_its_own(
    open_state: Callable[..., SqlState],
) -> None:
    state = open_state()
    state.start_run("p", "w", "alone", T0)  # not in a fleet: no member
    state.member = "a"
    state.start_run("p", "w", "of-a", T0)
    state.start_run("p", "w", "of-b", T0, member="b")
    assert "member" not in state.get_run("alone")  # type: ignore[operator]
    members = [state.get_run(r)["member"] for r in ("of-a", "of-b")]  # type: ignore[index]
    assert members == ["a", "b"]
    # A restarted fleet member fails its own runs only.
    failed = state.fail_unfinished_runs(member="a")
    assert [r["run_id"] for r in failed] == ["of-a"]
    runs = [state.get_run(r) for r in ("alone", "of-a", "of-b")]
    statuses = [r["status"] for r in runs]  # type: ignore[index]
    assert statuses == ["Running", "Failed", "Running"]
    # Outside a fleet every run left Running is the dead daemon's.
    assert {r["run_id"] for r in state.fail_unfinished_runs()} == {"alone", "of-b"}


def test_sweep_fails_the_runs_of_members_whose_lease_expired(
    open_state: Callable[..., SqlState],
) -> None:
    state = open_state()
    assert state.acquire_lease(member_lease("alive"), "alive", 30)
    assert state.acquire_lease(member_lease("dead"), "dead", 0.2)
    for run, member in [("r-alive", "alive"), ("r-dead", "dead"), ("r-me", "me")]:
        state.start_run("p", "w", run, T0, member=member)
    state.start_run("p", "w", "r-never", T0, member="never-joined")
    state.start_run("p", "w", "r-nobody", T0)  # no member: not a fleet run, never swept
    # The lease of "dead" is still valid: only the member without any lease is swept.
    assert [r["run_id"] for r in state.fail_runs_of_dead_members("me")] == ["r-never"]
    time.sleep(0.3)
    swept = state.fail_runs_of_dead_members("me")
    assert [(r["run_id"], r["member"], r["reason"]) for r in swept] == [
        ("r-dead", "dead", "fleet member dead died")
    ]
    run = state.get_run("r-dead")
    assert run is not None and run["status"] == "Failed" and run["ended_at"]
    assert run["reason"] == "fleet member dead died"
    for alive in ("r-alive", "r-me", "r-nobody"):
        assert state.get_run(alive)["status"] == "Running"  # type: ignore[index]
    assert state.fail_runs_of_dead_members("me") == []  # each run is failed once
    assert state.lease_holder(member_lease("dead")) is None
    assert state.lease_holder(member_lease("alive")) == "alive"


def test_fail_status_of_run_only_while_the_status_shows_that_run(
    open_state: Callable[..., SqlState],
) -> None:
    state = open_state()
    # A supervisor's status names its instance ("abc"); the history row is "abc.svc".
    state.set_status("p", "svc", {"status": "Running", "last_run_id": "abc", "restarts": 2})
    assert state.fail_status_of_run("p", "svc", "abc.svc", "fleet member x died")
    status = state.get_status("p", "svc")
    assert status is not None
    assert (status["status"], status["reason"], status["restarts"]) == (
        "Failed",
        "fleet member x died",
        2,
    )
    # Another member took it over meanwhile: its newer status is left alone.
    state.set_status("p", "svc", {"status": "Running", "last_run_id": "def"})
    assert not state.fail_status_of_run("p", "svc", "abc.svc", "fleet member x died")
    assert state.get_status("p", "svc")["status"] == "Running"  # type: ignore[index]
    # Not Running any more, or no status at all: nothing to do.
    state.set_status("p", "once", {"status": "Completed", "last_run_id": "r.once"})
    assert not state.fail_status_of_run("p", "once", "r.once", "x")
    assert not state.fail_status_of_run("p", "missing", "r.missing", "x")
