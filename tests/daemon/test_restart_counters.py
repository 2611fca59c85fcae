"""A supervisor's restart history handed over from the previous daemon (restore)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from gxo.config.models import Workload
from gxo.daemon.reconcile import InstanceOutcome, SuperviseReconciler


def _workload(**lifecycle: Any) -> Workload:
    return Workload.model_validate(
        {
            "name": "w",
            "lifecycle": {
                "policy": "supervise",
                "backoff": {"initial": "20ms", "max": "50ms", "jitter": 0},
                **lifecycle,
            },
            "process": {"module": "exec", "params": {"command": "true"}},
        }
    )


class _Failing:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, root: str, *, run_id: str, reason: str) -> InstanceOutcome:
        self.calls += 1
        await asyncio.sleep(0.01)
        return InstanceOutcome("Failed", run_id, "boom", last_exit=1)


async def _until_done(r: SuperviseReconciler) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while r.status()["status"] != "Failed":
        assert time.monotonic() < deadline, r.status()
        await asyncio.sleep(0.01)
    st = r.status()
    await r.stop()  # the supervisor task ends (stop() itself reports Stopped)
    return st


async def test_restored_count_and_window_bring_the_crash_loop_limit_closer() -> None:
    seen: list[dict[str, Any]] = []
    fake = _Failing()
    now = datetime.now(UTC).timestamp()
    r = SuperviseReconciler(
        "pb",
        _workload(max_restarts=3, restart_window="60s"),
        run_instance=fake,
        on_status=seen.append,
        restarts=7,
        restart_times=[now - 5, now - 2],  # two restarts still in the window
    )
    assert r.status()["restarts"] == 7
    await r.start()
    st = await _until_done(r)
    # One more restart fills the window (3); the next failure is the crash loop.
    assert fake.calls == 2 and "max_restarts: 3" in st["reason"]
    assert seen[0]["status"] == "Running" and seen[0]["restarts"] == 7
    restarting = [s for s in seen if s["status"] == "Restarting"]
    assert [s["restarts"] for s in restarting] == [8]
    times = restarting[0]["restart_times"]
    assert len(times) == 3 and times[:2] == [round(now - 5, 3), round(now - 2, 3)]
    assert abs(times[2] - datetime.now(UTC).timestamp()) < 5


async def test_restarts_outside_the_window_are_forgotten() -> None:
    fake = _Failing()
    now = datetime.now(UTC).timestamp()
    r = SuperviseReconciler(
        "pb",
        _workload(max_restarts=2, restart_window="10s"),
        run_instance=fake,
        restarts=2,
        restart_times=[now - 30, now - 20],
    )
    await r.start()
    st = await _until_done(r)
    assert fake.calls == 3 and st["restarts"] == 4  # a full window of its own again


async def test_a_new_supervisor_starts_from_zero() -> None:
    r = SuperviseReconciler("pb", _workload(), run_instance=_Failing())
    assert r.status()["restarts"] == 0 and r.tracker.guard.times == ()
