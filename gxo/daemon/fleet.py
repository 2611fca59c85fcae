"""A fleet: several ``gxo daemon --fleet NAME`` processes on one PostgreSQL state.

Two mechanisms, both driven by the shared database:

* **Supervise ownership by lease.** A supervise workload runs on the member that holds
  the lease ``supervise:PLAYBOOK/WORKLOAD`` (gxo/state/_sql_leases.py, expiry by the
  database clock). Every member wraps the workload in a :class:`LeasedReconciler`: the
  holder runs the real reconciler and renews every ``ttl/3``; the others try to take the
  lease every ``ttl/3``, so a dead holder's service starts elsewhere within ``ttl``
  (+ one period). A holder that cannot renew (lease taken, database unreachable for
  longer than ``ttl - ttl/3``) stops its reconciler before anyone else may start one.
* **Playbook sync.** Every member polls the playbooks table (~1 s) and applies new,
  changed and removed playbooks locally (``Daemon.apply/remove(sync=True)``): nothing
  is persisted again and run_once workloads run only on the member that was asked.
* **Runs of a dead member.** Every run row names the member running it (``member``);
  each member holds a liveness lease ``member:ID`` renewed every ``ttl/3``
  (:func:`join`, :func:`heartbeat`) and sweeps (:func:`sweep`): runs left ``Running``
  by a member whose lease expired become ``Failed`` with reason ``fleet member ID
  died``, and so does the status of a workload that still shows that run, so its
  lifecycle's policy applies (a supervise lease's next holder restarts it by policy).
  An event_driven workload's status is left alone: the other members still consume.
* **Paused runs of a dead member.** A run whose workload waits in
  ``control:wait_for_signal`` is not failed: the first sweeper to change its rows'
  ``member`` from the dead id to its own (one conditional UPDATE: the database decides)
  takes it over and re-runs its unfinished workloads under the same run id as a restart
  does (:func:`take_over`, ``restore.rerun_paused``); the pause keeps its token and any
  member's ``gxo ctl resume`` answers it (its waiter polls the row, pauses.POLL_SECONDS).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from gxo.state._sql_leases import DIED

if TYPE_CHECKING:
    from gxo.daemon.core import Applied, Daemon

__all__ = [
    "LeasedReconciler",
    "attach",
    "heartbeat",
    "join",
    "leave",
    "sweep",
    "sync_playbooks",
    "take_over",
]


def _now_iso() -> str:
    from gxo.daemon.core import now_iso

    return now_iso()


log = logging.getLogger("gxo.daemon.fleet")


class LeasedReconciler:
    """A reconciler that runs ``make()``'s reconciler only while this member holds ``lease``."""

    def __init__(
        self, daemon: Daemon, lease: str, make: Any, ttl: float, *, fresh: bool = False
    ) -> None:
        self.daemon = daemon
        self.lease = lease
        self.make = make
        self.ttl = ttl
        self.period = ttl / 3
        # A user's apply or start on this member: if the lease is ours at once, the
        # workload begins afresh rather than going on from its last holder's status.
        self.fresh = fresh
        self.inner: Any = None
        self.holder: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._renewed = 0.0
        self.key = tuple(lease.partition(":")[2].split("/", 1))  # (playbook, workload)
        self.created = _now_iso()

    @property
    def held_elsewhere(self) -> str | None:
        """The member running it when that is not this one (``ctl stop`` goes there)."""
        if self.inner is None and self.holder and self.holder != self.daemon.member:
            return self.holder
        return None

    async def _stopped_by_user(self) -> bool:
        """A user stopped it on the holder after this reconciler began: do not take over."""
        from gxo.daemon.core import STOPPED_BY_USER

        status = await self._db(self.daemon.state.get_status, *self.key) or {}
        return (
            status.get("status") == "Stopped"
            and status.get("reason") == STOPPED_BY_USER
            and str(status.get("updated_at") or "") > self.created
        )

    @property
    def gave_up(self) -> bool:
        return bool(getattr(self.inner, "gave_up", False))

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _db(self, fn: Any, *args: Any) -> Any:
        # A hung database call counts as a failed one (TimeoutError), so a holder that
        # cannot renew still stops its copy in time.
        async with asyncio.timeout(self.period):
            return await asyncio.to_thread(fn, *args)

    async def _run(self) -> None:
        state, me = self.daemon.state, self.daemon.member
        while True:
            try:
                if self.inner is None:
                    if await self._stopped_by_user():
                        self.holder = None
                    elif await self._db(state.acquire_lease, self.lease, me, self.ttl):
                        self._renewed = time.monotonic()
                        self.holder = me
                        log.info("%s: lease taken by %s", self.lease, me)
                        self.inner = await (self.make(True) if self.fresh else self.make())
                        await self.inner.start()
                    else:
                        self.holder = await self._db(state.lease_holder, self.lease)
                    self.fresh = False
                elif await self._db(state.renew_lease, self.lease, me, self.ttl):
                    self._renewed = time.monotonic()
                else:
                    log.warning("%s: lease lost, stopping the local reconciler", self.lease)
                    await self._stop_inner("lease lost to another member")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is unreachable: retry next period
                log.warning("%s: lease check failed: %s", self.lease, exc)
                # Stop before the lease can have expired: never two copies of a service.
                if self.inner is not None and time.monotonic() - self._renewed >= (
                    self.ttl - self.period
                ):
                    await self._stop_inner("lease not renewed (state database unreachable)")
            await asyncio.sleep(self.period)

    async def _stop_inner(self, reason: str) -> None:
        from gxo.daemon.core import _reason

        inner, self.inner, self.holder = self.inner, None, None
        if inner is not None:
            await inner.stop(**_reason(inner, reason))

    async def stop(self, reason: str = "stopped") -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        from gxo.daemon.core import STOPPED_BY_USER

        held = self.inner is not None
        await self._stop_inner(reason)
        # Hand over at once rather than after ttl, except on a user's stop: the lease then
        # expires after the Stopped status is written, which keeps the others from starting it.
        if held and reason != STOPPED_BY_USER:
            try:
                await self._db(self.daemon.state.release_lease, self.lease, self.daemon.member)
            except Exception as exc:
                log.warning("%s: release failed: %s", self.lease, exc)

    def status(self) -> dict[str, Any]:
        if self.inner is not None:
            return {**self.inner.status(), "member": self.daemon.member}
        # Standby: the holder's status comes from the shared state; say who holds it.
        return {"member": self.holder or ""}


def _leased(factory: Any, ttl: float) -> Any:
    def make(daemon: Daemon, applied: Applied, name: str) -> LeasedReconciler:
        key = (applied.name, name)

        async def inner(fresh: bool = False) -> Any:
            # Taking over: the lifecycle and its restart counters go on from the last
            # holder's status, once the runs of dead members are failed (sweep).
            last: dict[str, Any] = {}
            if not fresh:
                await sweep(daemon)
                last = await asyncio.to_thread(daemon.state.get_status, applied.name, name)
            daemon.restored[key] = last or {}
            try:
                built = factory(daemon, applied, name)
                return await built if asyncio.iscoroutine(built) else built
            finally:
                daemon.restored.pop(key, None)

        fresh = key in getattr(daemon, "fresh", ())
        return LeasedReconciler(daemon, f"supervise:{applied.name}/{name}", inner, ttl, fresh=fresh)

    return make


async def sweep(daemon: Daemon) -> list[dict[str, Any]]:
    """Fail the runs of members whose liveness lease expired, and the statuses that still
    show them; take over their paused runs (see the module docstring); returns the runs
    failed."""
    state = daemon.state
    failed, taken = await asyncio.to_thread(
        state.sweep_dead_members, daemon.member, applied=frozenset(daemon.playbooks)
    )
    for run in failed:
        playbook, workload = run["playbook"], run["workload"]
        log.warning(
            "fleet: %s; its run %s of %s/%s is Failed",
            run["reason"],
            run["run_id"],
            playbook,
            workload,
        )
        try:
            policy = daemon.playbooks[playbook].policy(workload)
        except (KeyError, AssertionError):
            policy = ""  # not (yet) applied here: its status still follows its run
        if policy != "event_driven":
            await asyncio.to_thread(
                state.fail_status_of_run, playbook, workload, run["run_id"], run["reason"]
            )
    for run in taken:  # in a task: the heartbeat (lease renewal) never waits on a re-run
        task = asyncio.get_running_loop().create_task(take_over(daemon, run))
        _TAKING_OVER.add(task)
        task.add_done_callback(_TAKING_OVER.discard)
    return failed


_TAKING_OVER: set[asyncio.Task[None]] = set()  # strong references while they run


async def take_over(daemon: Daemon, run: dict[str, Any]) -> None:
    """A dead member's paused run, now ours (the sweep's conditional UPDATE): its
    unfinished workloads run again here under the same run id, the paused one waiting on
    the same pause and token, exactly as after a restart (restore.rerun_paused)."""
    from gxo.daemon.restore import rerun_paused

    reason = f"fleet member {run['member']} {DIED}"
    log.warning(
        "fleet: %s while run %s of %s was paused: taken over by %s (%s)",
        reason,
        run["run_id"],
        run["playbook"],
        daemon.member,
        ", ".join(run["workloads"]),
    )
    try:
        await rerun_paused(daemon, run["run_id"], run["pauses"], reason)
    except asyncio.CancelledError:
        raise
    except Exception:  # never the heartbeat's end: the liveness lease must go on
        log.exception("fleet: taking over run %s failed", run["run_id"])


async def join(daemon: Daemon) -> None:
    """Take this member's liveness lease (before any run is recorded with its id) and
    start :func:`heartbeat`; :meth:`Daemon.restore` calls it in a fleet."""
    from gxo.state._sql_leases import member_lease

    ttl = daemon.lease_ttl
    # Always ours to take: the holder is the member itself (a restart under the same
    # --member name takes its old lease back).
    await asyncio.to_thread(
        daemon.state.acquire_lease, member_lease(daemon.member), daemon.member, ttl
    )
    daemon.heartbeat = asyncio.get_running_loop().create_task(heartbeat(daemon, ttl))


async def heartbeat(daemon: Daemon, ttl: float) -> None:
    """Renew the liveness lease every ``ttl/3`` and sweep (runs until cancelled)."""
    from gxo.state._sql_leases import member_lease

    state, me, name = daemon.state, daemon.member, member_lease(daemon.member)
    while True:
        await asyncio.sleep(ttl / 3)
        try:
            # Renewing an expired lease of ours works; a swept (deleted) one is taken again.
            if not await asyncio.to_thread(state.renew_lease, name, me, ttl):
                taken = await asyncio.to_thread(state.acquire_lease, name, me, ttl)
                log.warning("fleet: liveness lease %s was gone; taken again: %s", name, taken)
            await sweep(daemon)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database is unreachable: retry next period
            log.warning("fleet: heartbeat failed: %s", exc)


async def leave(daemon: Daemon) -> None:
    """Daemon shutdown, after its instances ended: stop the heartbeat, release the lease."""
    from gxo.state._sql_leases import member_lease

    task, daemon.heartbeat = daemon.heartbeat, None
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    try:
        name = member_lease(daemon.member)
        await asyncio.to_thread(daemon.state.release_lease, name, daemon.member)
    except Exception as exc:
        log.warning("fleet: releasing the liveness lease failed: %s", exc)


async def sync_playbooks(daemon: Daemon, interval: float = 1.0) -> None:
    """Apply locally what other members applied or removed (runs until cancelled)."""
    from gxo.daemon.core import DaemonError

    failed: dict[str, str] = {}  # name -> checksum that did not load: logged once
    while True:
        await asyncio.sleep(interval)
        try:
            stored = {r.name: r for r in await asyncio.to_thread(daemon.state.list_playbooks)}
            for name, record in stored.items():
                current = daemon.playbooks.get(name)
                if current is not None and current.checksum == record.checksum:
                    continue
                if failed.get(name) == record.checksum:
                    continue
                try:
                    diff = await daemon.apply(
                        record.source, record.path, dict(record.variables or {}), sync=True
                    )
                    if not diff.get("skipped"):
                        log.info("fleet: took up playbook %s", name)
                except DaemonError as exc:
                    failed[name] = record.checksum
                    log.error("fleet: cannot take up playbook %s: %s", name, exc.message)
            for name in [n for n in daemon.playbooks if n not in stored]:
                try:
                    await daemon.remove(name, sync=True)
                    log.info("fleet: playbook %s removed by another member", name)
                except DaemonError:
                    pass  # already gone here
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("fleet: playbook sync failed: %s", exc)


def attach(daemon: Daemon, fleet: str, member: str | None, lease_ttl: float) -> asyncio.Task[None]:
    """Make ``daemon`` a member of ``fleet``; returns the sync task (cancel it at shutdown)."""
    daemon.fleet = fleet
    daemon.lease_ttl = lease_ttl
    if member:
        daemon.member = member
    daemon.state.member = daemon.member  # every run recorded names this member
    supervise = daemon.reconcilers.get("supervise")
    if supervise is not None:
        daemon.reconcilers["supervise"] = _leased(supervise, lease_ttl)
    return asyncio.get_running_loop().create_task(sync_playbooks(daemon))
