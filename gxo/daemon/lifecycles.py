"""The daemon's reconciler registry: policy name → factory (see ``Daemon.reconcilers``).

A factory builds the reconciler of one workload (:mod:`gxo.daemon.reconcile`) with the
daemon's collaborators: ``run_instance`` runs an instance of the root on the current
version of its playbook (:meth:`Daemon.run_instance`), ``on_status`` persists each
status change in order (:meth:`Daemon.status_writer`). A scheduled workload also gets
its last fire from history, for catch-up and the ``@every`` cadence across restarts.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gxo.daemon.core import Applied, Daemon

__all__ = ["consumer_group", "default_reconcilers"]


def consumer_group(fleet: str | None, playbook: str, workload: str) -> str:
    """The consumer group / durable / queue-group name of one event_driven workload.

    One per (fleet, playbook, workload): the members of a fleet share a workload's
    events, while two workloads on one stream or subject never split each other's
    events (nor clash on a durable with another filter). Only characters every
    broker accepts in such a name (NATS durables refuse ``.``, ``*``, ``>``; MQTT
    shared-subscription groups ``/``, ``+``, ``#``).
    """
    parts = ("gxo", fleet or "local", playbook, workload)
    return "-".join(re.sub(r"[^A-Za-z0-9_-]", "_", part) for part in parts)


def _runner(daemon: Daemon, playbook: str) -> Any:
    async def run_instance(root: str, *, run_id: str, reason: str, **extra: Any) -> Any:
        # The playbook as applied now: a re-apply that left this root unchanged may
        # still have changed what runs downstream of it. ``extra``: ``event=`` of an
        # event_driven instance.
        return await daemon.run_instance(
            daemon.playbooks[playbook], root, run_id=run_id, reason=reason, owned=True, **extra
        )

    return run_instance


async def _last_fire(daemon: Daemon, playbook: str, workload: str) -> datetime | None:
    runs = await asyncio.to_thread(daemon.state.list_runs, playbook, workload, 1)
    if not runs or not runs[0].get("started_at"):
        return None
    try:
        return datetime.fromisoformat(runs[0]["started_at"].replace("Z", "+00:00"))
    except ValueError:
        return None


async def _last_ran_for(daemon: Daemon, playbook: str, workload: str) -> float:
    """How long the newest instance of ``workload`` ran (to its recorded end, else until
    now): a service that had been up ``reset_after`` restarts with the initial back-off."""
    runs = await asyncio.to_thread(daemon.state.list_runs, playbook, workload, 1)
    if not runs:
        return 0.0
    try:
        started = datetime.fromisoformat(runs[0]["started_at"].replace("Z", "+00:00"))
        end = runs[0].get("ended_at")
        ended = datetime.fromisoformat(end.replace("Z", "+00:00")) if end else datetime.now(UTC)
        return max(0.0, (ended - started).total_seconds())
    except (AttributeError, TypeError, ValueError):
        return 0.0


def _fire_claimer(daemon: Daemon, playbook: str, workload: str) -> Any:
    """In a fleet, a fire runs on the member that claims it in the shared state (one row
    per fire time); alone, every fire is ours (no claim, no database round trip)."""
    if getattr(daemon, "fleet", None) is None:
        return None
    member = getattr(daemon, "member", None) or "unknown"

    async def claim_fire(fire_iso: str) -> bool:
        return await asyncio.to_thread(
            daemon.state.claim_fire, playbook, workload, fire_iso, member
        )

    return claim_fire


def default_reconcilers() -> dict[str, Any]:
    from gxo.daemon.reconcile import ScheduleReconciler, SuperviseReconciler
    from gxo.daemon.reconcile_supervise import resume_from

    async def supervise(daemon: Daemon, applied: Applied, name: str) -> Any:
        # Restoring after a daemon restart (or a fleet takeover): the restart count and the
        # crash-loop window go on where the last daemon left them, and so does the
        # lifecycle (resume_from); a new apply or `ctl start` begins afresh.
        last = getattr(daemon, "restored", {}).get((applied.name, name)) or {}
        resume = resume_from(last, member=getattr(daemon, "member", None))
        if resume is not None and resume.mode == "interrupted":
            resume = replace(resume, ran_for=await _last_ran_for(daemon, applied.name, name))
        return SuperviseReconciler(
            applied.name,
            applied.workload(name),
            restarts=int(last.get("restarts") or 0),
            restart_times=last.get("restart_times") or (),
            resume=resume,
            run_instance=_runner(daemon, applied.name),
            on_status=daemon.status_writer(applied.name, name),
        )

    async def scheduled(daemon: Daemon, applied: Applied, name: str) -> Any:
        return ScheduleReconciler(
            applied.name,
            applied.workload(name),
            last_fire=await _last_fire(daemon, applied.name, name),
            claim_fire=_fire_claimer(daemon, applied.name, name),
            run_instance=_runner(daemon, applied.name),
            on_status=daemon.status_writer(applied.name, name),
        )

    async def event_driven(daemon: Daemon, applied: Applied, name: str) -> Any:
        from gxo.daemon.reconcile_events import EventDrivenReconciler

        variables = {**applied.loaded.playbook.vars, **applied.variables}
        return EventDrivenReconciler(
            applied.name,
            applied.workload(name),
            group=consumer_group(getattr(daemon, "fleet", None), applied.name, name),
            variables=variables,
            hub=getattr(daemon, "sources", None),  # webhook: and workload: sources
            run_instance=_runner(daemon, applied.name),
            on_status=daemon.status_writer(applied.name, name),
        )

    return {"supervise": supervise, "scheduled": scheduled, "event_driven": event_driven}
