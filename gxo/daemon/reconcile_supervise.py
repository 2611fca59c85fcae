"""``supervise``: keep one workload running, restarting it by its policy.

One supervisor task per workload runs instances one after another. After an instance
ends, :class:`~gxo.daemon.policy.RestartTracker` decides: restart after a capped,
jittered back-off (status ``Restarting`` with ``next_run`` = the next start, ISO UTC),
give up because of the crash-loop guard (``Failed``, the reason names the limit), or
stop because the restart policy says so (the instance's own status).

A stop asked for by the user (``stop()``: ``gxo ctl stop``, a new apply, the daemon
shutting down) cancels the instance and is not a failure: status ``Stopped``, no restart.

After a daemon restart (or a fleet member's takeover) a supervisor goes on from the
persisted status (:func:`resume_from`): an instance that died with its daemon is a
``Failed`` exit (reason ``daemon restarted`` / ``fleet member ID died``) judged by the
restart policy like any other; a back-off under way is waited out; a workload that had
already ended (Completed, Failed, Skipped) stays as it was until ``gxo ctl start``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gxo.config.durations import format_duration
from gxo.daemon.policy import RestartTracker
from gxo.daemon.reconcile_base import STOP_MARGIN, InstanceOutcome, ReconcilerBase, iso

__all__ = ["DAEMON_RESTARTED", "Resume", "SuperviseReconciler", "resume_from"]

log = logging.getLogger("gxo.daemon")

DAEMON_RESTARTED = "daemon restarted"
ENDED = frozenset({"Completed", "Failed", "Skipped"})
SHOWN = ("status", "reason", "last_exit", "next_run", "last_run_id")


def _died_with_its_daemon(reason: str) -> bool:
    """The reasons a run gets when its daemon is gone (core.restore, the fleet's sweep)."""
    return reason == DAEMON_RESTARTED or (
        reason.startswith("fleet member ") and reason.endswith(" died")
    )


@dataclass(frozen=True)
class Resume:
    """How a supervisor made from a persisted status goes on (see :func:`resume_from`).

    ``mode``: ``interrupted`` (its instance died with the daemon: a Failed exit with
    ``reason`` after ``ran_for`` seconds, judged by the restart policy), ``restarting``
    (a back-off was under way: start at the status's ``next_run``) or ``ended`` (it had
    ended: nothing runs until a user's start)."""

    mode: str
    status: Mapping[str, Any] = field(default_factory=dict)
    reason: str = DAEMON_RESTARTED
    ran_for: float = 0.0


def resume_from(
    last: Mapping[str, Any] | None, *, member: str | None = None, ran_for: float = 0.0
) -> Resume | None:
    """The :class:`Resume` of a workload whose last persisted status is ``last`` (None: a
    plain start). ``member``: this fleet member; ``ran_for``: how long the last instance
    ran (for the back-off's ``reset_after``)."""
    if not last:
        return None
    status, reason = last.get("status"), str(last.get("reason") or "")
    if status == "Running":
        # Its daemon died without a restore to record it: a fleet member's takeover
        # before the dead member's runs were swept.
        holder = last.get("member")
        why = f"fleet member {holder} died" if holder and holder != member else DAEMON_RESTARTED
        return Resume("interrupted", last, why, ran_for)
    if status == "Failed" and _died_with_its_daemon(reason):
        return Resume("interrupted", last, reason, ran_for)
    if status == "Restarting":
        return Resume("restarting", last)
    if status in ENDED:
        return Resume("ended", last)
    return None  # Pending, Stopped by the daemon or a new version: start


class SuperviseReconciler(ReconcilerBase):
    kind = "supervise"

    def __init__(
        self,
        playbook: str,
        workload: Any,
        *,
        restarts: int = 0,
        restart_times: Iterable[float] = (),
        resume: Resume | None = None,
        **kwargs: Any,
    ) -> None:
        """``restarts`` and ``restart_times`` (wall-clock epoch seconds of the restarts in
        the crash-loop window, as persisted in the status) carry a workload's restart
        history across a daemon restart (see lifecycles.py); both default to none.
        ``resume``: how the first :meth:`start` goes on from the persisted status."""
        super().__init__(playbook, workload, **kwargs)
        self.tracker = RestartTracker.from_lifecycle(self.lifecycle, self.rng)
        self._restore(restarts, restart_times)
        self._resume = resume
        self._ended = False  # restored as ended: nothing runs until a user's start
        if resume is not None:
            self._status.update({k: resume.status[k] for k in SHOWN if k in resume.status})
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
        a user's start (the core makes a new supervisor) begins afresh. Also one restored
        as ended (it had ended before the daemon restarted)."""
        return self._ended or (self._task is not None and self._task.done() and not self._stopping)

    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._stopping = False
        resume, self._resume = self._resume, None
        if resume is not None and resume.mode == "ended":
            self._ended = True  # it stays as it was: Completed, Failed, Skipped
            return
        self._ended = False
        if resume is None and self._status["status"] in ("Failed", "Stopped", "Completed"):
            # A user's start after a crash loop or a stop begins with a clean history.
            self.tracker.reset()
        self._task = asyncio.create_task(
            self._supervise(resume), name=f"gxo-supervise:{self.playbook}/{self.name}"
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

    async def _supervise(self, resume: Resume | None = None) -> None:
        reason = "start"
        try:
            if resume is not None:
                if not await self._resumed(resume):
                    return
                reason = "restart"
            while True:
                outcome = await self._run_once(reason)
                if outcome is None or self._stopping:
                    return
                ran_for = outcome.ended_at - outcome.started_at
                if not await self._after_exit(
                    outcome.succeeded, ran_for, outcome.status, outcome.error
                ):
                    return
                reason = "restart"
        except asyncio.CancelledError:
            if self._instance is not None and not self._instance.done():
                self._instance.cancel()
            raise

    async def _after_exit(
        self, succeeded: bool, ran_for: float, status: str, error: str | None
    ) -> bool:
        """The restart policy on an instance's end: True after the back-off (run again),
        False when it gives up (crash loop) or its policy does not restart it."""
        decision = self.tracker.on_exit(succeeded, ran_for, self.clock())
        if decision.crash_loop:
            self._set(status="Failed", reason=decision.reason, next_run=None)
            log.warning("%s/%s: %s", self.playbook, self.name, decision.reason)
            return False
        if not decision.restart:
            self._set(status=status, reason=error or decision.reason, next_run=None)
            return False
        self.delays.append(decision.delay)
        when = self.wall() + timedelta(seconds=decision.delay)
        what = "exited successfully" if succeeded else "failed"
        detail = f": {error}" if error else ""
        self._set(
            status="Restarting",
            reason=f"{what}{detail}; restart {decision.restarts} in "
            f"{format_duration(decision.delay)}",
            restarts=decision.restarts,
            restart_times=self._restart_times(),
            next_run=iso(when),
        )
        await asyncio.sleep(decision.delay)
        return True

    async def _resumed(self, resume: Resume) -> bool:
        """Go on from a persisted status; True to run an instance next."""
        if resume.mode == "interrupted":
            # What the restore recorded (or, on a fleet takeover before the sweep, records
            # now), then the restart policy decides as for any failed instance.
            self._set(status="Failed", reason=resume.reason, next_run=None)
            log.info("%s/%s: %s", self.playbook, self.name, resume.reason)
            return await self._after_exit(False, resume.ran_for, "Failed", resume.reason)
        # restarting: the back-off under way when the daemon died is waited out.
        delay = 0.0
        try:
            next_run = datetime.fromisoformat(str(resume.status.get("next_run")))
            delay = (next_run - self.wall()).total_seconds()
        except (TypeError, ValueError):
            pass
        await asyncio.sleep(min(max(delay, 0.0), self.tracker.backoff.max))
        return True

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
