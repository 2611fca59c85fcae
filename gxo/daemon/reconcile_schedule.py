"""``scheduled``: fire a workload's instances on a cron / ``@every`` schedule.

Timing: each reconciler waits for the *absolute* next fire time in the loop's shared
timer heap (:mod:`gxo.daemon.timers`: one loop timer for every schedule, armed at an
offset computed from the wall clock, at most 30 s ahead so a wall-clock step is
noticed). The next fire is computed from the previous *scheduled* fire time, never
from the moment the timer ran, so lateness does not accumulate (no drift). A fire more
than :data:`LATE_LIMIT` late (the loop was blocked, the machine slept) is dropped and
counted in ``dropped``, and the schedule continues from now.

``lags`` keeps the fire lag (seconds from the scheduled time to the start of the
instance) of the recent fires; status ``fire_lag_ms`` shows the last one.

Concurrency when a fire comes while an instance still runs: ``forbid`` skips the fire
(counted in ``skipped``, reason says so), ``allow`` runs them side by side, ``replace``
cancels the running one (waiting for it to end, as a stop) and starts the new one.

Catch-up at start (fires missed while the daemon was down, from ``last_fire``, the last
fire the core read from history): ``none``, ``one`` (the latest missed fire) or ``all``
(every missed fire, oldest first, bounded by :data:`gxo.daemon.schedule.MAX_CATCHUP`).
Catch-up instances run one after another (never overlapping, whatever ``concurrency``
says) before the regular schedule resumes; regular fires that pass meanwhile are not
run (the schedule continues from the time the catch-up ended).

Fleet: ``claim_fire`` (an async callable, fire time in UTC ISO -> bool; the daemon binds
it to :meth:`gxo.state.sql.SqlState.claim_fire` with its member id) is awaited before an
instance starts; a fire another member claimed is not run here (counted in
``claimed_elsewhere``). Every member must compute the same fire times, so with a
``claim_fire`` an ``@every`` schedule is anchored on the Unix epoch, never on a member's
start or on a run's start time (which would differ by the members' lags).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from gxo.config.models import CatchupPolicy, ConcurrencyPolicy
from gxo.daemon.reconcile_base import STOP_MARGIN, InstanceOutcome, ReconcilerBase, iso
from gxo.daemon.schedule import Schedule
from gxo.daemon.timers import Deadline, WallTimers, shared_timers

__all__ = ["LATE_LIMIT", "ScheduleReconciler"]

log = logging.getLogger("gxo.daemon")

# A fire later than this (the loop was blocked, the machine was suspended) is dropped.
LATE_LIMIT = timedelta(seconds=1)
LAG_SAMPLES = 1000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the fleet-wide @every anchor


class ScheduleReconciler(ReconcilerBase):
    kind = "scheduled"

    def __init__(
        self,
        playbook: str,
        workload: Any,
        *,
        last_fire: datetime | None = None,
        schedule: Schedule | None = None,
        claim_fire: Callable[[str], Awaitable[bool]] | None = None,
        **kwargs: Any,
    ) -> None:
        """``last_fire``: the last fire recorded in history (for catch-up and the
        ``@every`` anchor). ``schedule``: a prebuilt schedule instead of the lifecycle's
        (tests use sub-second ``@every`` intervals, which playbooks may not)."""
        super().__init__(playbook, workload, **kwargs)
        lifecycle = self.lifecycle
        self.concurrency = ConcurrencyPolicy(lifecycle.concurrency or ConcurrencyPolicy.forbid)
        self.catchup = CatchupPolicy(lifecycle.catchup or CatchupPolicy.none)
        self.last_fire = last_fire
        self.schedule: Schedule | None = schedule
        self.instances: set[asyncio.Task[None]] = set()
        self.fires = 0
        self.skipped = 0
        self.dropped = 0
        self.claim_fire = claim_fire
        self.claimed_elsewhere = 0
        self.lags: deque[float] = deque(maxlen=LAG_SAMPLES)
        # Instances cancelled by a newer fire (concurrency replace), not by stop().
        self._replaced: set[asyncio.Task[None]] = set()
        self._status.update(fires=0, skipped=0, fire_lag_ms=None)
        self._running = False
        self._generation = 0
        self._timers: WallTimers | None = None
        self._deadline: Deadline | None = None

    # -- public -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._running:
            return
        self._stopping = False
        self._running = True
        self._generation += 1
        now = self.wall()
        # @every is anchored on a scheduled fire: the last one if known (so the cadence
        # survives a daemon restart), else the start.
        if self.schedule is None:
            anchor = EPOCH if self.claim_fire is not None else self.last_fire or now
            self.schedule = Schedule.from_lifecycle(self.lifecycle, anchor=anchor)
        self._timers = shared_timers(self.wall)
        catch = (
            self.schedule.catch_up(self.last_fire, now, self.catchup)
            if self.last_fire is not None
            else None
        )
        if catch is not None and catch.fires:
            self._task = asyncio.create_task(
                self._catch_up(catch.fires, catch.dropped),
                name=f"gxo-catchup:{self.playbook}/{self.name}",
            )
        else:
            self._arm(self.schedule.next_after(now))

    async def stop(self, reason: str = "stopped by request") -> None:
        self._stopping = True
        self._running = False
        if self._timers is not None:
            self._timers.cancel(self._deadline)
        self._deadline = None
        task = self._task
        if task is not None:
            await self._cancel_and_wait([task], STOP_MARGIN)
        await self._cancel_and_wait(list(self.instances), self.stop_timeout + STOP_MARGIN)
        self._task = None
        self._set(status="Stopped", reason=reason, next_run=None)

    # -- timing -------------------------------------------------------------------------

    def _arm(self, fire: datetime, notify: bool = True) -> None:
        """Wait for the fire at ``fire`` (one entry in the loop's shared timer heap)."""
        assert self._timers is not None
        self._deadline = self._timers.add(fire, self._on_time)
        if notify:
            self._set(next_run=iso(fire))
        else:  # the caller's next status change carries it
            self._status["next_run"] = iso(fire)

    def _on_time(self, fire: datetime, now: datetime) -> None:
        """The timer callback: fire (or drop a fire far too late), then wait for the next."""
        assert self.schedule is not None
        self._deadline = None
        if self._stopping:
            return
        schedule = self.schedule
        if now - fire > LATE_LIMIT:
            self.dropped += 1
            log.warning(
                "%s/%s: fire at %s dropped, %.1fs late",
                self.playbook,
                self.name,
                iso(schedule.local(fire)),
                (now - fire).total_seconds(),
            )
            self._arm(schedule.next_after(now))
            return
        if self._fire(fire, now, rearm=True) is None:
            # From the scheduled time, not from now: lateness does not accumulate.
            self._arm(schedule.next_after(fire))
        # else the instance re-arms at its start, after measuring its lag: the timer
        # callback stays minimal, so when many schedules fire at once the last instance
        # does not wait for every other schedule's bookkeeping.

    def _rearm(self, fire: datetime, generation: int) -> None:
        if self._stopping or generation != self._generation or self._deadline is not None:
            return  # stopped (and maybe started again) since the fire
        assert self.schedule is not None
        self._arm(self.schedule.next_after(fire), notify=False)

    async def _catch_up(self, fires: list[datetime], dropped: bool) -> None:
        assert self.schedule is not None
        if dropped:
            log.warning(
                "%s/%s: catch-up limited to the %d most recent missed fires",
                self.playbook,
                self.name,
                len(fires),
            )
        for fire in fires:
            self._set(next_run=iso(fire))
            task = self._fire(fire, self.wall(), reason="catch-up")
            if task is not None:
                await asyncio.wait([task])
        self._task = None
        # Fires that passed during the catch-up are not run again.
        self._arm(self.schedule.next_after(self.wall()))

    def _fire(
        self, fire: datetime, now: datetime, reason: str = "schedule", rearm: bool = False
    ) -> asyncio.Task[None] | None:
        """Start an instance for the fire at ``fire`` (or skip it under ``forbid``)."""
        self.last_fire = fire
        running = [t for t in self.instances if not t.done()] if self.instances else []
        if running and self.concurrency == ConcurrencyPolicy.forbid:
            self.skipped += 1
            self._status["skipped"] = self.skipped
            self._status["reason"] = (
                f"skipped the fire at {iso(fire)}: the previous instance is still "
                f"running (concurrency forbid; {self.skipped} skipped)"
            )
            return None  # the caller's _arm() publishes it
        replaced = running if self.concurrency == ConcurrencyPolicy.replace_ else []
        self.fires += 1
        task = asyncio.create_task(
            self._instance(fire, reason, replaced, self._generation if rearm else None),
            name=f"gxo-instance:{self.playbook}/{self.name}",
        )
        self.instances.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[None]) -> None:
        self.instances.discard(task)
        self._replaced.discard(task)

    async def _instance(
        self,
        fire: datetime,
        reason: str,
        replaced: list[asyncio.Task[None]],
        generation: int | None,
    ) -> None:
        # Claimed first: a fire another member runs must not replace our instance.
        if self.claim_fire is not None and not await self._claim(fire):
            self.fires -= 1  # counted by _fire, but this member did not run it
            if generation is not None:
                self._rearm(fire, generation)
            return
        if replaced:
            if generation is not None:
                self._rearm(fire, generation)
                generation = None
            # The old instance ends (as a stop) before the new one starts: both may use
            # the same port, file or lock.
            self._replaced.update(replaced)
            await self._cancel_and_wait(replaced, self.stop_timeout + STOP_MARGIN)
        lag = (self.wall() - fire).total_seconds()
        self.lags.append(lag)
        if generation is not None:
            self._rearm(fire, generation)
        run_id = self._run_id()
        self._set(
            status="Running",
            reason=None if reason == "schedule" else f"catch-up of the fire at {iso(fire)}",
            last_run_id=run_id,
            fires=self.fires,
            fire_lag_ms=round(lag * 1000, 1),
        )
        try:
            outcome = await self._call(run_id, reason)
        except asyncio.CancelledError:
            if asyncio.current_task() in self._replaced:
                self._after(InstanceOutcome("Stopped", run_id, "replaced by a newer fire"))
            raise
        self._after(outcome)

    async def _claim(self, fire: datetime) -> bool:
        """Whether this member runs the fire (another member of the fleet may have it)."""
        assert self.claim_fire is not None
        try:
            claimed = await self.claim_fire(fire.astimezone(UTC).isoformat())
        except Exception as e:  # the state database is down: no member may run it twice
            log.warning(
                "%s/%s: cannot claim the fire at %s: %s", self.playbook, self.name, iso(fire), e
            )
            self._set(reason=f"cannot claim the fire at {iso(fire)}: {e}")
            return False
        if not claimed:
            self.claimed_elsewhere += 1
            self._set(claimed_elsewhere=self.claimed_elsewhere)
        return claimed

    def _after(self, outcome: InstanceOutcome) -> None:
        """Status once an instance ended: Running while others still run, else its outcome."""
        current = asyncio.current_task()
        others = any(not t.done() and t is not current for t in self.instances)
        if self._stopping or others:
            self._set(last_exit=outcome.last_exit)
            return
        self._set(status=outcome.status, reason=outcome.error, last_exit=outcome.last_exit)
