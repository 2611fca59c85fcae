"""A dead fleet member's paused run is taken over, not failed (issue 12): the sweep changes
its rows' member from the dead id to the sweeper's by one conditional UPDATE, so of two
members sweeping at once exactly one takes it over; the dead member's other runs are
Failed once (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from gxo.daemon.pauses import hash_token
from gxo.state._sql_leases import member_lease
from gxo.state.sql import SqlState

pytestmark = pytest.mark.timeout(120)

T0 = "2026-01-01T00:00:00+00:00"


def _paused_run(state: SqlState, run: str, member: str, *, pause_state: str = "open") -> str:
    """A run of ``member``: build Completed, approve Running and paused, deploy Running."""
    for workload in ("build", "approve", "deploy"):
        state.start_run("pb", workload, f"{run}.{workload}", T0, member=member)
    state.finish_run(f"{run}.build", "Completed", T0, None, None)
    pid = f"p{run}"
    state.create_pause(
        pid,
        playbook="pb",
        workload="approve",
        run_id=run,
        token_hash=hash_token(f"{pid}.secret"),
        prompt="Deploy?",
        schema=None,
        since=T0,
        expires_at=None,
        approvers=[],
    )
    if pause_state != "open":
        assert state.decide_pause(pid, pause_state, by="erin", at=T0, payload={"ok": 1})
    return pid


def _dead(state: SqlState, member: str) -> None:
    assert state.acquire_lease(member_lease(member), member, 0.05)


def test_the_sweep_takes_over_a_paused_run_and_fails_the_others(
    open_state: Callable[..., SqlState],
) -> None:
    state = open_state()
    _dead(state, "dead")
    pid = _paused_run(state, "r1", "dead")
    state.start_run("pb", "job", "r2.job", T0, member="dead")  # no pause: Failed as before
    # A paused workload that already finished (its decision taken up): an ordinary run.
    _paused_run(state, "r3", "dead", pause_state="resumed")
    state.finish_run("r3.approve", "Completed", T0, None, None)
    state.put_playbook("pb", source="src", path="pb.gxo.yaml", checksum="c1", variables={})
    time.sleep(0.1)
    # Its playbook is stored but not applied on this member yet (the sync is behind): the
    # paused run waits for a later sweep; the others are failed now.
    failed, taken = state.sweep_dead_members("alive", applied={"other"})
    assert taken == [] and sorted(r["run_id"] for r in failed) == ["r2.job", "r3.deploy"]
    assert state.get_run("r1.approve")["member"] == "dead"  # type: ignore[index]
    assert [(p["id"], p["member"]) for p in state.list_pauses()] == [(pid, "dead")]
    failed, taken = state.sweep_dead_members("alive", applied={"pb"})
    assert [(t["run_id"], t["playbook"], t["member"]) for t in taken] == [("r1", "pb", "dead")]
    assert sorted(taken[0]["workloads"]) == ["approve", "deploy"]
    assert [p["id"] for p in taken[0]["pauses"]] == [pid]
    assert taken[0]["pauses"][0]["token_hash"] == hash_token(f"{pid}.secret")
    assert failed == []
    assert state.get_run("r2.job")["reason"] == "fleet member dead died"  # type: ignore[index]
    for workload in ("approve", "deploy"):
        row = state.get_run(f"r1.{workload}")
        assert row is not None and (row["status"], row["member"]) == ("Running", "alive")
    assert state.get_pause(pid)["state"] == "open"  # type: ignore[index]
    assert [(p["id"], p["member"]) for p in state.list_pauses()] == [(pid, "alive")]
    assert state.sweep_dead_members("alive", applied={"pb"}) == ([], [])  # once


def test_a_pause_decided_while_its_member_died_is_taken_over_too(
    open_state: Callable[..., SqlState],
) -> None:
    """Resumed on a survivor before the sweep: the run is taken over (its wait answers at
    once), never failed with the answer lost."""
    state = open_state()
    _dead(state, "dead")
    _paused_run(state, "r4", "dead", pause_state="resumed")  # its playbook not stored: taken
    time.sleep(0.1)
    failed, taken = state.sweep_dead_members("alive")
    assert failed == [] and [t["run_id"] for t in taken] == ["r4"]
    assert taken[0]["pauses"][0]["state"] == "resumed"


def test_without_take_over_every_run_is_failed(open_state: Callable[..., SqlState]) -> None:
    state = open_state()
    _dead(state, "dead")
    _paused_run(state, "r5", "dead")
    time.sleep(0.1)
    failed = state.fail_runs_of_dead_members("alive")
    assert sorted(r["run_id"] for r in failed) == ["r5.approve", "r5.deploy"]


def test_two_sweepers_racing_take_a_paused_run_over_exactly_once(
    open_state: Callable[..., SqlState],
) -> None:
    one, two = open_state(), open_state()
    for me in ("m1", "m2"):  # both alive: a run one of them took over is never swept again
        assert one.acquire_lease(member_lease(me), me, 60)
    for attempt in range(15):
        _dead(one, f"dead{attempt}")
        _paused_run(one, f"race{attempt}", f"dead{attempt}")
        one.start_run("pb", "job", f"plain{attempt}.job", T0, member=f"dead{attempt}")
        time.sleep(0.08)
        barrier = threading.Barrier(2)
        results: dict[str, Any] = {}

        def sweeper(
            state: SqlState, me: str, barrier: threading.Barrier, results: dict[str, Any]
        ) -> None:
            barrier.wait()
            results[me] = state.sweep_dead_members(me)

        threads = [
            threading.Thread(target=sweeper, args=(s, m, barrier, results))
            for s, m in ((one, "m1"), (two, "m2"))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        takers = [m for m, (_, taken) in results.items() if taken]
        assert len(takers) == 1, results
        [run] = results[takers[0]][1]
        assert run["run_id"] == f"race{attempt}" and sorted(run["workloads"]) == [
            "approve",
            "deploy",
        ]
        failers = [r for _, (failed, _) in results.items() for r in failed]
        assert [r["run_id"] for r in failers] == [f"plain{attempt}.job"]  # failed once
        for workload in ("approve", "deploy"):
            row = one.get_run(f"race{attempt}.{workload}")
            assert row is not None and (row["status"], row["member"]) == ("Running", takers[0])
        one.finish_run(f"race{attempt}.approve", "Completed", T0, None, None)
        one.finish_run(f"race{attempt}.deploy", "Completed", T0, None, None)
