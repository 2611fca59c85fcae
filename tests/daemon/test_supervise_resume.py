"""A supervisor made from a persisted status (daemon restart, fleet takeover) goes on by
its restart policy: :func:`resume_from` and :class:`SuperviseReconciler` with ``resume``."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gxo.config.models import Workload
from gxo.daemon.reconcile import InstanceOutcome, SuperviseReconciler
from gxo.daemon.reconcile_supervise import resume_from


def _workload(restart_policy: str, **extra: Any) -> Workload:
    return Workload.model_validate(
        {
            "name": "w",
            "lifecycle": {
                "policy": "supervise",
                "restart_policy": restart_policy,
                "backoff": {"initial": "20ms", "max": "50ms", "jitter": 0, "reset_after": "1h"},
                **extra,
            },
            "process": {"module": "exec", "params": {"command": "true"}},
        }
    )


class _Runs:
    """An instance that runs until cancelled (a service), counting its starts."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.started = asyncio.Event()

    async def __call__(self, root: str, *, run_id: str, reason: str) -> InstanceOutcome:
        self.reasons.append(reason)
        self.started.set()
        await asyncio.sleep(3600)
        return InstanceOutcome("Completed", run_id)


@pytest.mark.parametrize(
    ("last", "mode", "reason"),
    [
        (None, None, None),
        ({}, None, None),
        ({"status": "Pending"}, None, None),
        ({"status": "Stopped", "reason": "daemon stopped"}, None, None),
        ({"status": "Failed", "reason": "daemon restarted"}, "interrupted", "daemon restarted"),
        (
            {"status": "Failed", "reason": "fleet member m1 died"},
            "interrupted",
            "fleet member m1 died",
        ),
        # A takeover before the dead holder's runs were swept: its status still says Running.
        ({"status": "Running", "member": "m1"}, "interrupted", "fleet member m1 died"),
        ({"status": "Running", "member": "me"}, "interrupted", "daemon restarted"),
        ({"status": "Running"}, "interrupted", "daemon restarted"),
        ({"status": "Restarting", "next_run": "2026-01-01T00:00:00+00:00"}, "restarting", None),
        ({"status": "Completed", "reason": None}, "ended", None),
        ({"status": "Failed", "reason": "crash loop: more than 5 restarts"}, "ended", None),
        ({"status": "Failed", "reason": "command exited with code 3"}, "ended", None),
        ({"status": "Skipped"}, "ended", None),
    ],
)
def test_resume_from_a_persisted_status(
    last: dict[str, Any] | None, mode: str | None, reason: str | None
) -> None:
    resume = resume_from(last, member="me", ran_for=4.0)
    if mode is None:
        assert resume is None
        return
    assert resume is not None and resume.mode == mode
    if mode == "interrupted":
        assert resume.reason == reason and resume.ran_for == 4.0


async def _until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("policy", ["always", "on_failure"])
async def test_interrupted_instance_is_restarted_by_policy_and_counted(policy: str) -> None:
    seen: list[dict[str, Any]] = []
    runs = _Runs()
    last = {"status": "Failed", "reason": "daemon restarted", "restarts": 2, "last_exit": 0}
    r = SuperviseReconciler(
        "pb",
        _workload(policy),
        run_instance=runs,
        on_status=seen.append,
        restarts=2,
        resume=resume_from(last),
    )
    await r.start()
    await asyncio.wait_for(runs.started.wait(), 5)
    assert runs.reasons == ["restart"]
    restarting = [s for s in seen if s["status"] == "Restarting"]
    assert len(restarting) == 1 and restarting[0]["restarts"] == 3
    assert restarting[0]["reason"].startswith("failed: daemon restarted; restart 3 in ")
    assert r.status()["status"] == "Running" and r.status()["restarts"] == 3
    assert r.delays == [pytest.approx(0.02)]  # the normal back-off, from its initial delay
    await r.stop()


async def test_interrupted_instance_under_never_stays_failed() -> None:
    seen: list[dict[str, Any]] = []
    runs = _Runs()
    r = SuperviseReconciler(
        "pb",
        _workload("never"),
        run_instance=runs,
        on_status=seen.append,
        resume=resume_from({"status": "Running", "member": "m1"}, member="m2"),
    )
    await r.start()
    await _until(lambda: r.gave_up)
    assert runs.reasons == []
    assert r.status()["status"] == "Failed" and r.status()["reason"] == "fleet member m1 died"
    assert [s["status"] for s in seen] == ["Failed"]  # persisted once: what the takeover saw


async def test_interrupted_instance_can_hit_the_crash_loop_limit() -> None:
    now = datetime.now(UTC).timestamp()
    r = SuperviseReconciler(
        "pb",
        _workload("always", max_restarts=2, restart_window="60s"),
        run_instance=_Runs(),
        restarts=2,
        restart_times=[now - 3, now - 1],
        resume=resume_from({"status": "Failed", "reason": "daemon restarted"}),
    )
    await r.start()
    await _until(lambda: r.gave_up)
    assert r.status()["status"] == "Failed" and "max_restarts: 2" in r.status()["reason"]


async def test_ended_workload_stays_as_it_was_until_started_again() -> None:
    seen: list[dict[str, Any]] = []
    runs = _Runs()
    last = {"status": "Completed", "reason": "exited successfully", "last_exit": 0, "restarts": 1}
    r = SuperviseReconciler(
        "pb",
        _workload("on_failure"),
        run_instance=runs,
        on_status=seen.append,
        restarts=1,
        resume=resume_from(last),
    )
    await r.start()
    await asyncio.sleep(0.1)
    assert r.gave_up and runs.reasons == [] and seen == []  # nothing ran, nothing written
    status = r.status()
    assert (status["status"], status["reason"], status["last_exit"]) == (
        "Completed",
        "exited successfully",
        0,
    )


async def test_back_off_under_way_is_waited_out() -> None:
    runs = _Runs()
    due = datetime.now(UTC) + timedelta(milliseconds=400)
    last = {
        "status": "Restarting",
        "reason": "failed; restart 1 in 1s",
        "next_run": due.isoformat(),
    }
    r = SuperviseReconciler(
        "pb",
        _workload("on_failure", backoff={"initial": "1s", "max": "1s", "jitter": 0}),
        run_instance=runs,
        restarts=1,
        resume=resume_from(last),
    )
    await r.start()
    assert r.status()["status"] == "Restarting" and r.status()["next_run"] == due.isoformat()
    await asyncio.wait_for(runs.started.wait(), 5)
    assert datetime.now(UTC) >= due - timedelta(milliseconds=20)
    assert runs.reasons == ["restart"] and r.status()["restarts"] == 1
    await r.stop()
