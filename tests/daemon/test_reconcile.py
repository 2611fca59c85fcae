"""Reconcilers: the timing logic of supervise and scheduled, on a real event loop.

``run_instance`` is faked (an async function that sleeps, fails or raises) except in the
last tests, which run real instances through the engine. Durations are short (back-off
from 50 ms, sub-second ``@every`` through a prebuilt Schedule) and timing assertions are
ranges that hold on a loaded 2-core machine. Every test checks that no task is left
behind (``asyncio.all_tasks()`` back to its baseline).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gxo.config.loader import load_playbook
from gxo.config.models import Workload
from gxo.daemon.reconcile import (
    RECONCILERS,
    InstanceOutcome,
    ScheduleReconciler,
    SuperviseReconciler,
    outcome_from_result,
)
from gxo.daemon.reconcile_base import STOP_MARGIN, utc_now
from gxo.daemon.schedule import Schedule
from gxo.daemon.timers import WallTimers, shared_timers
from gxo.engine.instances import instance_workloads
from gxo.engine.scheduler import Engine


def workload(policy: str, **lifecycle: Any) -> Workload:
    return Workload.model_validate(
        {
            "name": "w",
            "lifecycle": {"policy": policy, **lifecycle},
            "process": {"module": "exec", "params": {"command": "true"}},
        }
    )


FAST_BACKOFF = {"initial": "50ms", "max": "200ms", "factor": 2.0, "jitter": 0.2}


class Fake:
    """A run_instance whose behaviour per call is ``behave(n)`` (n = 1, 2, ...)."""

    def __init__(self, behave: Callable[[int], Awaitable[InstanceOutcome | str]]) -> None:
        self.behave = behave
        self.calls: list[tuple[float, str, str]] = []  # (monotonic, reason, run_id)
        self.walls: list[datetime] = []
        self.running = 0
        self.max_running = 0
        self.cancelled = 0

    async def __call__(self, root: str, *, run_id: str, reason: str) -> InstanceOutcome:
        assert root == "w"
        self.calls.append((time.monotonic(), reason, run_id))
        self.walls.append(datetime.now(UTC))
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            result = await self.behave(len(self.calls))
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1
        if isinstance(result, str):
            return InstanceOutcome(result, run_id, None if result == "Completed" else "boom")
        return result


def sleeping(seconds: float, status: str = "Completed") -> Callable[[int], Awaitable[str]]:
    async def behave(n: int) -> str:
        await asyncio.sleep(seconds)
        return status

    return behave


class Recorder:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def __call__(self, status: dict[str, Any]) -> None:
        self.seen.append(status)

    def statuses(self) -> list[str]:
        return [s["status"] for s in self.seen]


async def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def assert_no_leaks(baseline: set[asyncio.Task[Any]]) -> None:
    await asyncio.sleep(0)  # done callbacks run
    left = {t for t in asyncio.all_tasks() - baseline if not t.done()}
    assert not left, f"tasks left behind: {left}"


def supervisor(fake: Fake, rec: Recorder, **lifecycle: Any) -> SuperviseReconciler:
    lifecycle.setdefault("backoff", FAST_BACKOFF)
    return SuperviseReconciler(
        "pb", workload("supervise", **lifecycle), run_instance=fake, on_status=rec
    )


def every(seconds: float, anchor: datetime) -> Schedule:
    sched = Schedule("@every 1s", "UTC", anchor=anchor)
    sched.every = timedelta(seconds=seconds)  # playbooks need >= 1s; the timing logic does not
    return sched


def scheduler(
    fake: Fake, rec: Recorder, period: float = 0.1, **lifecycle: Any
) -> ScheduleReconciler:
    lifecycle.setdefault("cron", "@every 1s")
    last_fire = lifecycle.pop("last_fire", None)
    anchor = last_fire or datetime.now(UTC)
    return ScheduleReconciler(
        "pb",
        workload("scheduled", **lifecycle),
        run_instance=fake,
        on_status=rec,
        last_fire=last_fire,
        schedule=every(period, anchor),
    )


def test_registry_names_both_policies() -> None:
    assert {"supervise": SuperviseReconciler, "scheduled": ScheduleReconciler}.items() <= (
        RECONCILERS.items()
    )  # event_driven too: tests/daemon/test_reconcile_events.py


# -- supervise ---------------------------------------------------------------------------


async def test_failing_instance_restarts_with_growing_capped_delays_then_crash_loop() -> None:
    baseline = asyncio.all_tasks()
    fake, rec = Fake(sleeping(0.0, "Failed")), Recorder()
    r = supervisor(fake, rec, max_restarts=4, restart_window="60s")
    await r.start()
    await wait_for(lambda: r.status()["status"] == "Failed")
    st = r.status()
    assert st["restarts"] == 4 and len(fake.calls) == 5
    assert "max_restarts: 4" in st["reason"] and "crash loop" in st["reason"]
    # back-off 50, 100, 200, 200 ms (cap) each ± 20 %, never above the cap
    bases = [0.05, 0.1, 0.2, 0.2]
    assert len(r.delays) == 4
    for delay, base in zip(r.delays, bases, strict=True):
        assert base * 0.8 - 1e-9 <= delay <= min(0.2, base * 1.2) + 1e-9
    # the real gaps between starts are at least the delays (sleep never wakes early),
    # and not wildly longer
    gaps = [b[0] - a[0] for a, b in zip(fake.calls, fake.calls[1:], strict=False)]
    for gap, delay in zip(gaps, r.delays, strict=True):
        assert delay - 0.005 <= gap <= delay + 0.5
    assert [c[1] for c in fake.calls] == ["start"] + ["restart"] * 4
    # Restarting was shown with the next start time, ISO UTC, about `delay` ahead
    restarting = [s for s in rec.seen if s["status"] == "Restarting"]
    assert len(restarting) == 4
    first = restarting[0]
    next_run = datetime.fromisoformat(first["next_run"])
    assert next_run.utcoffset() == timedelta(0)
    assert "restart 1 in" in first["reason"] and first["restarts"] == 1
    assert rec.statuses()[-1] == "Failed" and rec.seen[-1]["next_run"] is None
    await r.stop()
    assert r.status()["status"] == "Stopped"
    await assert_no_leaks(baseline)


async def test_next_run_is_the_time_of_the_restart() -> None:
    baseline = asyncio.all_tasks()
    fake, rec = Fake(sleeping(0.0, "Failed")), Recorder()
    r = supervisor(fake, rec, backoff={"initial": "300ms", "max": "300ms", "jitter": 0.0})
    await r.start()
    await wait_for(lambda: len(fake.calls) >= 2)
    shown = datetime.fromisoformat(
        next(s for s in rec.seen if s["status"] == "Restarting")["next_run"]
    )
    actual = fake.walls[1]
    assert abs((actual - shown).total_seconds()) < 0.25
    await r.stop()
    assert fake.cancelled <= 1
    await assert_no_leaks(baseline)


async def test_on_failure_does_not_restart_a_success() -> None:
    baseline = asyncio.all_tasks()
    fake, rec = Fake(sleeping(0.01, "Completed")), Recorder()
    r = supervisor(fake, rec, restart_policy="on_failure")
    await r.start()
    await wait_for(lambda: r.status()["status"] == "Completed")
    await asyncio.sleep(0.2)
    assert len(fake.calls) == 1 and r.status()["restarts"] == 0
    assert "Restarting" not in rec.statuses()
    await r.stop()
    await assert_no_leaks(baseline)


async def test_never_leaves_a_failure_failed() -> None:
    baseline = asyncio.all_tasks()
    fake, rec = Fake(sleeping(0.0, "Failed")), Recorder()
    r = supervisor(fake, rec, restart_policy="never")
    await r.start()
    await wait_for(lambda: r.status()["status"] == "Failed")
    await asyncio.sleep(0.15)
    assert len(fake.calls) == 1
    assert r.status()["reason"] == "boom"
    await r.stop()
    await assert_no_leaks(baseline)


async def test_always_restarts_a_success_too() -> None:
    baseline = asyncio.all_tasks()
    fake, rec = Fake(sleeping(0.0, "Completed")), Recorder()
    r = supervisor(fake, rec, restart_policy="always", max_restarts=2)
    await r.start()
    await wait_for(lambda: r.status()["status"] == "Failed")
    assert len(fake.calls) == 3 and "max_restarts: 2" in r.status()["reason"]
    assert (
        "exited successfully" in next(s for s in rec.seen if s["status"] == "Restarting")["reason"]
    )
    await r.stop()
    await assert_no_leaks(baseline)


async def test_an_instance_that_raises_counts_as_a_failure() -> None:
    baseline = asyncio.all_tasks()

    async def explode(n: int) -> str:
        raise RuntimeError("module bug")

    fake, rec = Fake(explode), Recorder()
    r = supervisor(fake, rec, max_restarts=1)
    await r.start()
    await wait_for(lambda: r.status()["status"] == "Failed")
    assert len(fake.calls) == 2
    restarting = next(s for s in rec.seen if s["status"] == "Restarting")
    assert "RuntimeError: module bug" in restarting["reason"]
    await r.stop()
    await assert_no_leaks(baseline)


async def test_stop_cancels_the_instance_and_does_not_restart() -> None:
    baseline = asyncio.all_tasks()
    fake, rec = Fake(sleeping(3600)), Recorder()
    r = supervisor(fake, rec, restart_policy="always")
    await r.start()
    await wait_for(lambda: fake.running == 1)
    assert r.status()["status"] == "Running"
    t0 = time.monotonic()
    await r.stop()
    assert time.monotonic() - t0 < 1.0
    assert fake.cancelled == 1 and fake.running == 0
    st = r.status()
    assert st["status"] == "Stopped" and st["reason"] == "stopped by request"
    assert st["restarts"] == 0
    await asyncio.sleep(0.2)
    assert len(fake.calls) == 1 and "Restarting" not in rec.statuses()
    await assert_no_leaks(baseline)


async def test_stop_during_backoff_cancels_the_restart() -> None:
    baseline = asyncio.all_tasks()
    fake, rec = Fake(sleeping(0.0, "Failed")), Recorder()
    r = supervisor(fake, rec, backoff={"initial": "5s", "max": "5s"})
    await r.start()
    await wait_for(lambda: r.status()["status"] == "Restarting")
    await r.stop()
    assert r.status()["status"] == "Stopped" and r.status()["next_run"] is None
    assert len(fake.calls) == 1
    await assert_no_leaks(baseline)


async def test_stop_waits_for_a_slow_instance_up_to_stop_timeout() -> None:
    """An instance that takes a while to exit (SIGTERM handling) is waited for."""
    baseline = asyncio.all_tasks()
    ended = []

    async def slow_exit(n: int) -> str:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(0.2)  # cleaning up
            ended.append(time.monotonic())
            raise
        return "Completed"

    fake, rec = Fake(slow_exit), Recorder()
    r = supervisor(fake, rec, stop_timeout="2s")
    await r.start()
    await wait_for(lambda: fake.running == 1)
    await r.stop()
    assert ended, "stop returned before the instance had ended"
    await assert_no_leaks(baseline)


async def test_stop_gives_up_on_an_instance_that_ignores_cancel() -> None:
    """stop() is bounded by stop_timeout + margin even if the instance never ends."""
    baseline = asyncio.all_tasks()
    release = asyncio.Event()

    async def stubborn(n: int) -> str:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # swallowed: a module that ignores cancellation
        return "Completed"

    fake, rec = Fake(stubborn), Recorder()
    r = supervisor(fake, rec, stop_timeout="200ms")
    await r.start()
    await wait_for(lambda: fake.running == 1)
    t0 = time.monotonic()
    await r.stop()
    took = time.monotonic() - t0
    assert 0.2 <= took < 0.2 + 2 * STOP_MARGIN + 1.0
    assert r.status()["status"] == "Stopped"
    release.set()  # let the stubborn instance end so nothing leaks
    await wait_for(lambda: fake.running == 0)
    await asyncio.sleep(0.1)
    assert len(fake.calls) == 1  # and it was not restarted when it finally returned
    await assert_no_leaks(baseline)


async def test_healthy_run_resets_the_backoff() -> None:
    baseline = asyncio.all_tasks()

    async def behave(n: int) -> str:
        # 1-2 crash at once; 3 runs past reset_after before crashing
        await asyncio.sleep(0.25 if n == 3 else 0.0)
        return "Failed"

    fake, rec = Fake(behave), Recorder()
    backoff = {"initial": "50ms", "max": "1s", "factor": 2.0, "jitter": 0.0, "reset_after": "200ms"}
    r = supervisor(fake, rec, backoff=backoff, max_restarts=10)
    await r.start()
    await wait_for(lambda: len(r.delays) >= 4)
    await r.stop()
    assert r.delays[:4] == pytest.approx([0.05, 0.1, 0.05, 0.1])
    await assert_no_leaks(baseline)


async def test_start_after_crash_loop_begins_afresh() -> None:
    baseline = asyncio.all_tasks()
    fake, rec = Fake(sleeping(0.0, "Failed")), Recorder()
    r = supervisor(fake, rec, max_restarts=1)
    await r.start()
    await wait_for(lambda: r.status()["status"] == "Failed")
    await r.stop()
    await r.start()
    await wait_for(lambda: len(fake.calls) == 4 and r.status()["status"] == "Failed")
    assert r.status()["restarts"] == 1
    await r.stop()
    await assert_no_leaks(baseline)


# -- scheduled ---------------------------------------------------------------------------


async def test_fires_on_schedule_without_drift() -> None:
    baseline = asyncio.all_tasks()
    fake, rec = Fake(sleeping(0.01)), Recorder()
    anchor = datetime.now(UTC)
    r = scheduler(fake, rec, period=0.1, last_fire=None)
    r.schedule = every(0.1, anchor)
    await r.start()
    await wait_for(lambda: len(fake.calls) >= 8)
    await r.stop()
    # the k-th fire happens at anchor + k*100ms: lateness does not accumulate
    for k, wall in enumerate(fake.walls[:8], start=1):
        late = (wall - (anchor + timedelta(seconds=0.1 * k))).total_seconds()
        assert -0.002 <= late < 0.09, (k, late)
    assert len(r.lags) >= 8 and max(list(r.lags)[:8]) < 0.09
    assert all(reason == "schedule" for _, reason, _ in fake.calls)
    assert r.status()["status"] == "Stopped" and r.status()["fires"] >= 8
    await assert_no_leaks(baseline)


async def test_next_run_is_the_next_fire_in_utc() -> None:
    baseline = asyncio.all_tasks()
    fake, rec = Fake(sleeping(0.0)), Recorder()
    anchor = datetime.now(UTC)
    r = scheduler(fake, rec, period=0.5)
    r.schedule = every(0.5, anchor)
    await r.start()
    await wait_for(lambda: r.status()["next_run"] is not None)
    st = r.status()
    assert st["status"] == "Pending"
    assert datetime.fromisoformat(st["next_run"]) == (anchor + timedelta(seconds=0.5)).replace(
        microsecond=(anchor + timedelta(seconds=0.5)).microsecond // 1000 * 1000
    )
    await wait_for(lambda: len(fake.calls) == 1)
    await wait_for(lambda: r.status()["status"] == "Completed")
    assert datetime.fromisoformat(r.status()["next_run"]) > datetime.fromisoformat(st["next_run"])
    await r.stop()
    await assert_no_leaks(baseline)


async def test_cron_next_run_with_a_wall_clock() -> None:
    fake, rec = Fake(sleeping(0.0)), Recorder()
    wall = datetime(2026, 3, 29, 0, 58, 30, tzinfo=UTC)  # Berlin: 01:58:30 CET, DST tonight
    r = ScheduleReconciler(
        "pb",
        workload("scheduled", cron="30 2 * * *", timezone="Europe/Berlin"),
        run_instance=fake,
        on_status=rec,
        wall=lambda: wall,
    )
    baseline = asyncio.all_tasks()
    await r.start()
    await wait_for(lambda: r.status()["next_run"] is not None)
    # 02:30 does not exist that night: fires at 03:30 CEST = 01:30 UTC
    assert r.status()["next_run"] == "2026-03-29T01:30:00.000+00:00"
    await r.stop()
    assert not fake.calls
    await assert_no_leaks(baseline)


async def test_forbid_skips_a_fire_while_the_previous_instance_runs() -> None:
    baseline = asyncio.all_tasks()
    fake, rec = Fake(sleeping(0.25)), Recorder()
    r = scheduler(fake, rec, period=0.1, concurrency="forbid")
    await r.start()
    await wait_for(lambda: len(fake.calls) >= 3)
    await r.stop()
    assert fake.max_running == 1
    assert r.skipped >= 2 and r.status()["skipped"] == r.skipped
    skip = next(s for s in rec.seen if s.get("reason") and "skipped" in s["reason"])
    assert "concurrency forbid" in skip["reason"] and skip["status"] == "Running"
    await assert_no_leaks(baseline)


async def test_allow_runs_instances_side_by_side() -> None:
    baseline = asyncio.all_tasks()
    fake, rec = Fake(sleeping(0.35)), Recorder()
    r = scheduler(fake, rec, period=0.1, concurrency="allow")
    await r.start()
    await wait_for(lambda: fake.max_running >= 3)
    await r.stop()
    assert r.skipped == 0
    assert fake.running == 0 and fake.cancelled >= 1  # stop cancelled the running ones
    await assert_no_leaks(baseline)


async def test_replace_cancels_the_running_instance_and_starts_the_new_one() -> None:
    baseline = asyncio.all_tasks()
    fake, rec = Fake(sleeping(3600)), Recorder()
    r = scheduler(fake, rec, period=0.1, concurrency="replace")
    await r.start()
    await wait_for(lambda: len(fake.calls) >= 4)
    assert fake.max_running == 1
    assert fake.cancelled >= 3
    assert r.status()["status"] == "Running"
    await r.stop()
    assert fake.running == 0 and r.status()["status"] == "Stopped"
    await assert_no_leaks(baseline)


@pytest.mark.parametrize(("catchup", "expected"), [("none", 0), ("one", 1), ("all", 9)])
async def test_catchup_of_fires_missed_while_down(catchup: str, expected: int) -> None:
    baseline = asyncio.all_tasks()
    fake, rec = Fake(sleeping(0.0)), Recorder()
    # last fire 0.95 s ago on a 100 ms schedule: 9 fires were missed
    last = datetime.now(UTC) - timedelta(seconds=0.95)
    r = scheduler(fake, rec, period=0.1, catchup=catchup, last_fire=last)
    await r.start()
    await wait_for(lambda: any(reason == "schedule" for _, reason, _ in fake.calls))
    await r.stop()
    caught = [c for c in fake.calls if c[1] == "catch-up"]
    assert len(caught) == expected
    # catch-up runs come first, one after another (never overlapping)
    assert all(c[1] == "catch-up" for c in fake.calls[:expected])
    assert fake.max_running == 1
    await assert_no_leaks(baseline)


async def test_failures_and_exceptions_do_not_stop_the_schedule() -> None:
    baseline = asyncio.all_tasks()

    async def behave(n: int) -> str:
        if n == 1:
            raise ValueError("bad")
        return "Failed" if n == 2 else "Completed"

    fake, rec = Fake(behave), Recorder()
    r = scheduler(fake, rec, period=0.1)
    await r.start()
    await wait_for(lambda: len(fake.calls) >= 3 and r.status()["status"] == "Completed")
    await r.stop()
    failed = [s for s in rec.seen if s["status"] == "Failed"]
    assert failed and "ValueError: bad" in failed[0]["reason"]
    await assert_no_leaks(baseline)


async def test_a_fire_far_too_late_is_dropped_and_the_schedule_goes_on() -> None:
    """A wall-clock step (suspend, NTP) does not start a burst of overdue instances."""
    baseline = asyncio.all_tasks()
    offset = [timedelta(0)]
    fake, rec = Fake(sleeping(0.0)), Recorder()
    r = ScheduleReconciler(
        "pb",
        workload("scheduled", cron="@every 1s"),
        run_instance=fake,
        on_status=rec,
        schedule=every(0.1, datetime.now(UTC)),
        wall=lambda: datetime.now(UTC) + offset[0],
    )
    await r.start()
    await wait_for(lambda: len(fake.calls) >= 1)
    offset[0] = timedelta(seconds=5)  # the clock jumps 5 s (50 periods) ahead
    await wait_for(lambda: len(fake.calls) >= 3)
    await r.stop()
    assert r.dropped == 1
    assert len(fake.calls) < 10  # no catch-up burst of 50 fires
    await assert_no_leaks(baseline)


# -- real instances through the engine ------------------------------------------------------

HEAD = 'schemaVersion: "1.0.0"\nname: rec\nworkloads:\n'


def engine_runner(text: str) -> tuple[Any, Callable[..., Awaitable[InstanceOutcome]]]:
    loaded = load_playbook(text=HEAD + text)

    async def run_instance(root: str, *, run_id: str, reason: str) -> InstanceOutcome:
        started = time.monotonic()
        engine = Engine(
            loaded,
            only=set(instance_workloads(loaded, root)),
            initial_results={},
            allow_lifecycles=True,
            run_id=run_id,
        )
        result = await engine.run()
        return outcome_from_result(result, root, started_at=started, ended_at=time.monotonic())

    return loaded, run_instance


async def test_real_exec_crash_loop_through_the_engine() -> None:
    baseline = asyncio.all_tasks()
    loaded, run_instance = engine_runner(
        """  - name: w
    lifecycle:
      policy: supervise
      restart_policy: on_failure
      backoff: { initial: 50ms, max: 400ms, factor: 2.0, jitter: 0.2 }
      max_restarts: 3
      restart_window: 60s
    process: { module: exec, params: { command: sh, args: ["-c", "exit 1"] } }
"""
    )
    rec = Recorder()
    r = SuperviseReconciler(
        "rec", loaded.playbook.workloads[0], run_instance=run_instance, on_status=rec
    )
    await r.start()
    await wait_for(lambda: r.status()["status"] == "Failed", timeout=30)
    st = r.status()
    assert st["restarts"] == 3 and st["last_exit"] == 1
    assert "max_restarts: 3" in st["reason"]
    # growing delays: 50, 100, 200 ms ± 20 %
    assert len(r.delays) == 3
    assert r.delays[0] < r.delays[1] < r.delays[2] <= 0.4
    assert rec.statuses().count("Restarting") == 3
    await r.stop()
    await assert_no_leaks(baseline)


async def test_real_exec_stop_cancels_a_running_service() -> None:
    baseline = asyncio.all_tasks()
    loaded, run_instance = engine_runner(
        """  - name: w
    lifecycle: { policy: supervise, restart_policy: always, stop_timeout: 2s }
    process: { module: exec, params: { command: "sleep 60" , shell: true} }
"""
    )
    rec = Recorder()
    r = SuperviseReconciler(
        "rec", loaded.playbook.workloads[0], run_instance=run_instance, on_status=rec
    )
    await r.start()
    await wait_for(lambda: r.status()["status"] == "Running")
    await asyncio.sleep(0.3)
    t0 = time.monotonic()
    await r.stop()
    assert time.monotonic() - t0 < 4.5
    st = r.status()
    assert st["status"] == "Stopped" and st["restarts"] == 0
    await assert_no_leaks(baseline)


async def test_outcome_of_an_engine_run() -> None:
    """The exit code comes from exec's summary; an interrupted run is a stop, not a crash."""
    loaded, run_instance = engine_runner(
        """  - name: w
    lifecycle: { policy: supervise }
    process: { module: exec, params: { command: sh, args: ["-c", "exit 3"] } }
"""
    )
    outcome = await run_instance("w", run_id="r1", reason="start")
    assert (outcome.status, outcome.last_exit, outcome.run_id) == ("Failed", 3, "r1")
    assert outcome.ended_at >= outcome.started_at > 0

    loaded = load_playbook(
        text=HEAD
        + """  - name: w
    lifecycle: { policy: supervise }
    process: { module: exec, params: { command: sleep, args: ["60"] } }
"""
    )
    engine = Engine(loaded, only={"w"}, initial_results={}, allow_lifecycles=True)
    task = asyncio.create_task(engine.run())
    await asyncio.sleep(0.3)
    engine.cancel()
    outcome = outcome_from_result(await task, "w")
    assert outcome.status == "Stopped" and outcome.last_exit is None
    assert not outcome.succeeded


# -- the shared timer heap ---------------------------------------------------------------


async def test_many_schedules_share_one_loop_timer() -> None:
    baseline = asyncio.all_tasks()
    fake, rec = Fake(sleeping(0.0)), Recorder()
    anchor = datetime.now(UTC)
    rs = [scheduler(fake, rec, period=0.2) for _ in range(50)]
    for r in rs:
        r.schedule = every(0.2, anchor)
        await r.start()
    loop = asyncio.get_running_loop()
    timers = shared_timers(utc_now)
    assert len(timers) == 50
    # one armed TimerHandle for all 50 deadlines, no sleeping task per schedule
    assert [t for t in asyncio.all_tasks() - baseline if not t.done()] == []
    assert sum(1 for h in loop._scheduled if not h.cancelled()) <= 2  # type: ignore[attr-defined]
    await wait_for(lambda: len(fake.calls) >= 100)
    for r in rs:
        await r.stop()
    assert len(timers) == 0
    assert not [h for h in loop._scheduled if not h.cancelled() and h._callback == timers._run]  # type: ignore[attr-defined]
    await assert_no_leaks(baseline)


async def test_wall_timers_fire_in_order_and_cancel() -> None:
    loop = asyncio.get_running_loop()
    timers = WallTimers(loop, utc_now)
    fired: list[str] = []
    now = datetime.now(UTC)
    timers.add(now + timedelta(seconds=0.15), lambda when, at: fired.append("b"))
    gone = timers.add(now + timedelta(seconds=0.1), lambda when, at: fired.append("x"))
    timers.add(now + timedelta(seconds=0.05), lambda when, at: fired.append("a"))
    timers.cancel(gone)
    assert len(timers) == 2
    await wait_for(lambda: len(fired) == 2)
    assert fired == ["a", "b"] and len(timers) == 0


async def test_stop_then_start_does_not_double_the_schedule() -> None:
    """A fire's deferred re-arm must not survive a stop/start in between (two timers)."""
    baseline = asyncio.all_tasks()
    fake, rec = Fake(sleeping(0.0)), Recorder()
    r = scheduler(fake, rec, period=0.1)
    await r.start()
    await wait_for(lambda: len(fake.calls) >= 1)
    await r.stop()
    await r.start()
    fake.calls.clear()
    await asyncio.sleep(0.55)
    await r.stop()
    assert 3 <= len(fake.calls) <= 7  # ~5 fires in 0.55 s at 100 ms, not ~10
    await assert_no_leaks(baseline)
