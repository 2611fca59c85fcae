"""Instances of run_once workloads: one engine run in the daemon's loop, its history rows.

Each selected workload gets its own history row (run id ``<engine run id>.<workload>``)
written as soon as the workload ends — not when the whole run ends — so a fast
workload beside a slow one shows ``Completed`` at once, and a daemon killed later
leaves only the still-running ones for ``fail_unfinished_runs``.

The rows and statuses go through the daemon's write-behind
(:mod:`gxo.daemon.writer`): starting an instance queues its start rows and does not
wait for them; its end waits until its own rows are committed (one transaction for
every instance ending meanwhile), so whoever awaits an instance — a reconciler that
then acks its event, a test, ``ctl stop`` — finds its history in the state. The
playbook's registered results are read from the state once and kept (a snapshot per
playbook, dropped when an instance registers a new value).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gxo.daemon import heap
from gxo.daemon.instance_store import InstanceStore
from gxo.daemon.reconcile_base import InstanceOutcome, iso_now, outcome_from_result
from gxo.daemon.writer import writer_of
from gxo.engine.events import Event, EventBus, EventKind
from gxo.engine.instances import instance_workloads
from gxo.engine.report import workload_report
from gxo.engine.scheduler import Engine, RunResult

if TYPE_CHECKING:
    from gxo.daemon.core import Applied, Daemon

__all__ = ["Instance", "run_instance", "start_instance"]

log = logging.getLogger("gxo.daemon")

TERMINAL = frozenset({"Completed", "Failed", "Skipped"})


@dataclass
class Instance:
    """One engine run of some run_once workloads of a playbook."""

    run_id: str
    playbook: str
    workloads: list[str]
    engine: Engine
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    task: asyncio.Task[None] | None = None
    stopped: set[str] = field(default_factory=set)
    pending: set[str] = field(default_factory=set)  # no history row written yet
    writes: list[asyncio.Task[None]] = field(default_factory=list)
    last_write: asyncio.Future[Any] | None = None  # its last queued state write
    result: RunResult | None = None
    owner: str | None = None  # the root whose reconciler owns its status
    _started_text: str | None = field(default=None, repr=False)

    def row_id(self, workload: str) -> str:
        return f"{self.run_id}.{workload}"

    def partial_report(self, workload: str, status: str) -> dict[str, Any]:
        """The report of a run of ``workload`` alone (its history entry)."""
        if self._started_text is None:  # as RunResult.report formats it
            self._started_text = self.started.isoformat().replace("+00:00", "Z")
        return workload_report(
            self.engine.playbook.name,
            self.run_id,
            status,
            self._started_text,
            self.engine.states[workload],
            self.engine.secrets,
        )


class _Upstream:
    """A playbook's registered results, as instances start with them (see the module
    docstring): the persistent store and a shallow snapshot of it."""

    __slots__ = ("applied", "members", "snapshot", "store", "workspace")

    def __init__(self, applied: Applied, store: Any) -> None:
        self.applied = applied
        self.store = store
        self.snapshot: dict[str, Any] | None = None
        self.workspace = applied.workspace
        self.members: dict[str, list[str]] = {}  # root -> the workloads of its instances


_UPSTREAM: weakref.WeakKeyDictionary[Any, dict[str, _Upstream]] = weakref.WeakKeyDictionary()


def _cached(daemon: Daemon, applied: Applied) -> _Upstream | None:
    """The playbook's entry if read since its apply (the instance path: no coroutine)."""
    cache: dict[str, _Upstream] | None = getattr(daemon, "_gxo_upstream", None)
    entry = None if cache is None else cache.get(applied.name)
    return entry if entry is not None and entry.applied is applied else None


async def _upstream(daemon: Daemon, applied: Applied) -> _Upstream:
    cache: dict[str, _Upstream] | None = getattr(daemon, "_gxo_upstream", None)
    if cache is None:
        cache = _UPSTREAM.setdefault(daemon, {})
        with contextlib.suppress(AttributeError):  # then the weak-key table each time
            daemon._gxo_upstream = cache  # type: ignore[attr-defined]
    entry = cache.get(applied.name)
    if entry is None or entry.applied is not applied:  # a new apply: read the state again
        store = await asyncio.to_thread(daemon.state.results, applied.name)
        entry = cache[applied.name] = _Upstream(applied, store)
    return entry


async def start_instance(
    daemon: Daemon,
    applied: Applied,
    workloads: list[str],
    *,
    run_id: str | None = None,
    owner: str | None = None,
    event: dict[str, Any] | None = None,
) -> Instance:
    run_id = run_id or uuid.uuid4().hex[:12]
    writer = writer_of(daemon)
    if writer.full:  # the state store is behind: wait rather than queue without bound
        await writer.room()
    upstream = _cached(daemon, applied) or await _upstream(daemon, applied)
    if upstream.snapshot is None:
        # Shallow: templates never mutate what they read, modules get copies
        # (ModuleContext.get_state), so instances share the values.
        upstream.snapshot = upstream.store.snapshot(copy=False)

    def changed() -> None:
        upstream.snapshot = None

    # Concurrent instances of one root register the same keys: each reads its own first.
    results = InstanceStore(upstream.store, submit=writer.submit, on_change=changed)
    bus = EventBus()
    engine = Engine(
        applied.loaded,
        extra_vars=applied.variables,
        workspace=upstream.workspace,
        run_id=run_id,
        bus=bus,
        only=set(workloads),
        # The run is just the selected workloads; upstream results come from the state.
        results_store=results,
        initial_results=upstream.snapshot,
        allow_lifecycles=True,
        # an event_driven instance: templates read it as _gxo.event
        gxo_extra=None if event is None else {"event": event},
        stream_taps=daemon.sources.taps.hook(applied.name),  # workload: event sources
        signals=daemon.pauses.broker(applied.name),  # control:wait_for_signal (pauses.py)
    )
    instance = Instance(
        run_id, applied.name, list(workloads), engine, pending=set(workloads), owner=owner
    )
    bus.add_listener(_listener(daemon, instance))
    started = iso_now()
    for name in workloads:
        instance.last_write = writer.submit(
            daemon.state.start_run, applied.name, name, instance.row_id(name), started
        )
        if name != owner:
            await daemon.set_status(
                applied.name, name, "Running", last_run_id=instance.row_id(name)
            )
    daemon.instances[run_id] = instance
    instance.task = asyncio.create_task(_run(daemon, instance), name=f"gxo-run:{run_id}")
    return instance


def _listener(daemon: Daemon, instance: Instance) -> Callable[[Event], None]:
    """The instance's event listener. It holds the instance weakly: the instance holds
    its engine, which holds the bus and its listeners, and a strong reference back would
    make every instance a reference cycle (its objects then wait for the cycle collector,
    and at 1,000 instances a second that collector's passes are most of the cost)."""
    ref = weakref.ref(instance)

    def listener(event: Event) -> None:
        target = ref()
        if target is not None:  # else the instance is gone: nobody to tell
            _on_event(daemon, target, event)

    return listener


def _on_event(daemon: Daemon, instance: Instance, event: Event) -> None:
    daemon.publish(instance.playbook, instance.run_id, event)
    name = event.workload
    if (
        event.kind is EventKind.WORKLOAD_STATUS
        and name in instance.pending
        and event.data.get("status") in TERMINAL
    ):
        instance.pending.discard(name)
        status = event.data["status"]
        reason = event.data.get("error") or event.data.get("reason")
        report = instance.partial_report(name, status)
        _finish(daemon, instance, name, status, reason, report)


async def _run(daemon: Daemon, instance: Instance) -> None:
    error = "the run ended before the workload did"
    try:
        instance.result = await instance.engine.run()
    except asyncio.CancelledError:
        error = "cancelled: the daemon stopped"
    except Exception as exc:  # a bug in a module or the engine must not kill the daemon
        log.exception("run %s failed", instance.run_id)
        error = f"{type(exc).__name__}: {exc}"
    finally:
        # Statuses and history rows first: once the instance is gone from
        # daemon.instances, a reader (ctl status, a test) must see its final state.
        try:
            _close(daemon, instance, error)
            if instance.writes:  # statuses: queued once their task ran, then the rest
                await asyncio.shield(_settle(daemon, instance))
            elif instance.last_write is not None and not instance.last_write.done():
                # Its rows are committed with the writes before them (FIFO); a failed
                # write is logged by the writer.
                await _ended(instance.last_write)
        finally:
            daemon.instances.pop(instance.run_id, None)
            if not daemon.instances:  # the end of a burst: a cheap moment to collect
                heap.quiet_soon(lambda: not daemon.instances)


def _ended(future: asyncio.Future[Any]) -> asyncio.Future[None]:
    """A future done when ``future`` is, whatever its outcome; cancelling it leaves
    ``future`` alone. ``asyncio.shield`` without its result (one callback less)."""
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def wake(done: asyncio.Future[Any]) -> None:
        if not done.cancelled():
            done.exception()  # retrieved: the writer or the run logs a failure
        if not waiter.done():
            waiter.set_result(None)

    future.add_done_callback(wake)
    return waiter


def _close(daemon: Daemon, instance: Instance, error: str) -> None:
    """End of the run: record any workload left open."""
    for name in sorted(instance.pending):
        report = instance.partial_report(name, "Failed")
        _finish(daemon, instance, name, "Failed", error, report)
    instance.pending.clear()


async def _settle(daemon: Daemon, instance: Instance) -> None:
    """Wait until the instance's statuses are queued, then until every write is committed."""
    await asyncio.gather(*instance.writes, return_exceptions=True)
    await writer_of(daemon).flush()


def _finish(
    daemon: Daemon,
    instance: Instance,
    name: str,
    status: str,
    reason: str | None,
    report: dict[str, Any],
) -> None:
    """Queue a workload's end row (and its status, unless a reconciler owns it)."""
    if name in instance.stopped:
        status, reason = "Stopped", "stopped by request"
    row = instance.row_id(name)
    ended = iso_now()
    instance.last_write = writer_of(daemon).submit(
        daemon.state.finish_run, row, status, ended, report, reason
    )
    if name != instance.owner:  # a reconciler's root: the reconciler says its status
        task = asyncio.get_running_loop().create_task(
            _set_status(daemon, instance.playbook, name, status, reason, row)
        )
        instance.writes.append(task)


async def _set_status(
    daemon: Daemon, playbook: str, name: str, status: str, reason: str | None, row: str
) -> None:
    try:
        await daemon.set_status(playbook, name, status, reason=reason, last_run_id=row)
    except Exception:  # the playbook may have been removed meanwhile
        log.debug("status of %s/%s not recorded", playbook, name, exc_info=True)


async def run_instance(
    daemon: Daemon,
    applied: Applied,
    root: str,
    *,
    run_id: str,
    reason: str,
    owned: bool = False,
    event: dict[str, Any] | None = None,
) -> Any:
    """One instance of a long-running ``root``: the root and its downstream run_once
    workloads (:func:`gxo.engine.instances.instance_workloads`), awaited to the end.

    What a reconciler's ``run_instance`` callable needs (bind ``daemon`` and ``applied``).
    Returns a :class:`gxo.daemon.reconcile_base.InstanceOutcome` judged by the root.
    ``event``: what its templates read as ``_gxo.event`` (event_driven).
    Cancelling the caller stops the instance (the engine kills its process groups);
    its history rows then say ``Stopped``.
    """
    started = time.monotonic()
    upstream = _cached(daemon, applied) or await _upstream(daemon, applied)
    names = upstream.members.get(root)
    if names is None:
        names = upstream.members[root] = instance_workloads(applied.loaded, root)
    log.info("instance %s of %s/%s: %s", run_id, applied.name, root, reason)
    instance = await start_instance(
        daemon, applied, names, run_id=run_id, owner=root if owned else None, event=event
    )
    assert instance.task is not None
    try:
        await _ended(instance.task)
        if instance.task.cancelled():  # as asyncio.shield would say
            raise asyncio.CancelledError
    except asyncio.CancelledError:
        instance.stopped.update(names)
        instance.engine.cancel()
        await asyncio.wait([instance.task])
        raise
    if instance.result is None:
        return InstanceOutcome("Failed", run_id, "the instance did not finish", None, started)
    return outcome_from_result(instance.result, root, started_at=started)
