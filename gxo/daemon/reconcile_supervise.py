"""``supervise``: keep one workload running, restarting it by its policy.

One supervisor task per workload runs instances one after another. After an instance
ends, :class:`~gxo.daemon.policy.RestartTracker` decides: restart after a capped,
jittered back-off (status ``Restarting`` with ``next_run`` = the next start, ISO UTC),
give up because of the crash-loop guard (``Failed``, the reason names the limit), or
stop because the restart policy says so (the instance's own status).

A stop asked for by the user (``stop()``: ``gxo ctl stop``, a new apply, the daemon
shutting down) cancels the instance and is not a failure: status ``Stopped``, no restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from gxo.config.durations import format_duration
from gxo.daemon.policy import RestartTracker
from gxo.daemon.reconcile_base import STOP_MARGIN, InstanceOutcome, ReconcilerBase, iso

__all__ = ["SuperviseReconciler"]

log = logging.getLogger("gxo.daemon")


class SuperviseReconciler(ReconcilerBase):
    kind = "supervise"

    def __init__(
        self,
        playbook: str,
        workload: Any,
        *,
        restarts: int = 0,
        restart_times: Iterable[float] = (),
        **kwargs: Any,
    ) -> None:
        """``restarts`` and ``restart_times`` (wall-clock epoch seconds of the restarts in
        the crash-loop window, as persisted in the status) carry a workload's restart
        history across a daemon restart (see lifecycles.py); both default to none."""
        super().__init__(playbook, workload, **kwargs)
        self.tracker = RestartTracker.from_lifecycle(self.lifecycle, self.rng)
        self._restore(restarts, restart_times)
        self._instance: asyncio.Task[InstanceOutcome] | None = None
        # The back-off delays actually slept, newest last (tests and diagnostics).
        self.delays: list[float] = []

    def _restore(self, restarts: int, restart_times: Iterable[float]) -> None:
        self.tracker.restarts = self._status["restarts"] = max(0, int(restarts or 0))
        guard = self.tracker.guard
        # The guard counts on the monotonic clock, which does not survive the daemon: each
        # persisted wall time becomes "that long before now" on this process's clock.
        now, wall = self.clock(), self.wall().timestamp()
        times = sorted(float(t) for t in restart_times or ())
        for t in times[-guard.max_restarts :] if guard.max_restarts else []:
            if wall - t < guard.window:
                guard.record(now - max(0.0, wall - t))

    def _restart_times(self) -> list[float]:
        """The guard's window as wall-clock epoch seconds, for the persisted status."""
        now, wall = self.clock(), self.wall().timestamp()
        return [round(wall - (now - t), 3) for t in self.tracker.guard.times]

    @property
    def gave_up(self) -> bool:
        """It ended on its own (crash-loop limit, restart policy): nothing runs, and
        a user's start (the core makes a new supervisor) begins afresh."""
        return self._task is not None and self._task.done() and not self._stopping

    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._stopping = False
        if self._status["status"] in ("Failed", "Stopped", "Completed"):
            # A user's start after a crash loop or a stop begins with a clean history.
            self.tracker.reset()
        self._task = asyncio.create_task(
            self._supervise(), name=f"gxo-supervise:{self.playbook}/{self.name}"
        )

    async def stop(self, reason: str = "stopped by request") -> None:
        self._stopping = True
        task, instance = self._task, self._instance
        # The instance first, so it gets the whole stop_timeout to exit (SIGTERM, then
        # SIGKILL from the engine); the supervisor task then has nothing left to wait for.
        if instance is not None:
            await self._cancel_and_wait([instance], self.stop_timeout + STOP_MARGIN)
        if task is not None:
            await self._cancel_and_wait([task], STOP_MARGIN)
        self._task = self._instance = None
        self._set(status="Stopped", reason=reason, next_run=None)

    async def _supervise(self) -> None:
        reason = "start"
        try:
            while True:
                outcome = await self._run_once(reason)
                if outcome is None or self._stopping:
                    return
                decision = self.tracker.on_exit(
                    outcome.succeeded, outcome.ended_at - outcome.started_at, self.clock()
                )
                if decision.crash_loop:
                    self._set(status="Failed", reason=decision.reason, next_run=None)
                    log.warning("%s/%s: %s", self.playbook, self.name, decision.reason)
                    return
                if not decision.restart:
                    self._set(
                        status=outcome.status,
                        reason=outcome.error or decision.reason,
                        next_run=None,
                    )
                    return
                self.delays.append(decision.delay)
                when = self.wall() + timedelta(seconds=decision.delay)
                what = "exited successfully" if outcome.succeeded else "failed"
                detail = f": {outcome.error}" if outcome.error else ""
                self._set(
                    status="Restarting",
                    reason=f"{what}{detail}; restart {decision.restarts} in "
                    f"{format_duration(decision.delay)}",
                    restarts=decision.restarts,
                    restart_times=self._restart_times(),
                    next_run=iso(when),
                )
                await asyncio.sleep(decision.delay)
                reason = "restart"
        except asyncio.CancelledError:
            if self._instance is not None and not self._instance.done():
                self._instance.cancel()
            raise

    async def _run_once(self, reason: str) -> InstanceOutcome | None:
        """One instance, awaited; None when it was cancelled by :meth:`stop`."""
        run_id = self._run_id()
        self._set(
            status="Running",
            reason=None if reason == "start" else "restarted",
            next_run=None,
            last_run_id=run_id,
        )
        self._instance = asyncio.create_task(
            self._call(run_id, reason), name=f"gxo-instance:{self.playbook}/{self.name}"
        )
        # wait() rather than await: a cancelled instance must not cancel the supervisor.
        await asyncio.wait([self._instance])
        instance, self._instance = self._instance, None
        if instance.cancelled():
            return None
        outcome = instance.result()
        self._set(last_exit=outcome.last_exit)
        if outcome.status == "Stopped" and not self._stopping:
            # Stopped from elsewhere (the core cancelled the engine): a stop, not a crash.
            self._set(status="Stopped", reason=outcome.error or "stopped", next_run=None)
            return None
        return outcome
