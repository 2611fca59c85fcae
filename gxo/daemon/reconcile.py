"""Reconcilers: when the instances of a long-running workload run (DAEMON.md §5).

A reconciler owns one non-``run_once`` workload of one applied playbook. It never runs
workloads itself: it calls the injected ``run_instance(root, *, run_id, reason)``, which the
daemon core provides (an engine run of the root and its downstream run_once workloads)
and which returns an :class:`InstanceOutcome`. Cancelling the task that awaits
``run_instance`` is how an instance is stopped (the engine kills process groups on cancel).

- :class:`SuperviseReconciler` keeps the workload running: restart policy, capped
  jittered back-off, crash-loop guard (:mod:`gxo.daemon.policy`).
- :class:`ScheduleReconciler` fires it on a cron or ``@every`` schedule
  (:mod:`gxo.daemon.schedule`), with concurrency and catch-up policies.
- :class:`EventDrivenReconciler` runs one instance per event of a source
  (:mod:`gxo.daemon.reconcile_events`, :mod:`gxo.daemon.sources`).

Constructor: ``(playbook, workload, *, run_instance, on_status, clock=time.monotonic,
rng=random.Random(), wall=utc_now)`` (``ScheduleReconciler`` also takes ``last_fire``).
Every reconciler has ``async start()``, ``async stop()`` and ``status() -> dict`` (keys
``status, reason, restarts, last_exit, next_run`` plus extras such as ``last_run_id``);
``on_status(dict)`` is called with a copy on every change.
"""

from __future__ import annotations

from gxo.daemon.reconcile_base import (
    InstanceOutcome,
    Reconciler,
    RunInstance,
    outcome_from_result,
)
from gxo.daemon.reconcile_events import EventDrivenReconciler
from gxo.daemon.reconcile_schedule import ScheduleReconciler
from gxo.daemon.reconcile_supervise import SuperviseReconciler

__all__ = [
    "RECONCILERS",
    "EventDrivenReconciler",
    "InstanceOutcome",
    "Reconciler",
    "RunInstance",
    "ScheduleReconciler",
    "SuperviseReconciler",
    "outcome_from_result",
]

RECONCILERS: dict[str, type] = {
    "supervise": SuperviseReconciler,
    "scheduled": ScheduleReconciler,
    "event_driven": EventDrivenReconciler,
}
