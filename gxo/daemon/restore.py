"""Daemon start and stop (:meth:`Daemon.restore`, :meth:`Daemon.shutdown`).

**Restore.** Runs left ``Running`` by a dead daemon become ``Failed`` (reason ``daemon
restarted``) with their workloads' statuses; then every applied playbook comes back and
each non-run_once lifecycle goes on from its persisted status: a supervised workload
whose instance died with the daemon is restarted or not by its ``restart_policy``, one
that had ended stays so (:func:`gxo.daemon.reconcile_supervise.resume_from`), one a
user stopped stays stopped; schedules catch up by their ``catchup``; event sources
resume (un-acked events come again). In a fleet (gxo/daemon/fleet.py) the member first
takes its liveness lease, and only its own runs are failed here: those of dead members
are the survivors' sweep.

**Shutdown.** Reconcilers stop (not a user's stop: the next start resumes them),
instances are cancelled with a grace period, the last statuses are written, and a
fleet member leaves the fleet.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from gxo.daemon.core import DAEMON_RESTARTED, STOPPED_BY_USER, _load, _reason
from gxo.errors import GxoError

if TYPE_CHECKING:
    from gxo.daemon.core import Daemon

__all__ = ["restore", "shutdown"]

log = logging.getLogger("gxo.daemon")


async def restore(daemon: Daemon) -> None:
    """Daemon start: runs left Running by a dead daemon become Failed; playbooks come back.

    Each lifecycle then goes on by its policy from its persisted status: a supervised
    workload whose instance died with the daemon is restarted or not by its
    ``restart_policy`` (reconcile_supervise.resume_from), one that had ended stays so."""
    if daemon.fleet:
        from gxo.daemon.fleet import join

        await join(daemon)  # the liveness lease first: other members sweep without one
    # In a fleet, only this member's runs (a restart under the same --member name):
    # the others' may be live, and those of dead members are swept (fleet.sweep).
    unfinished = await daemon._db(
        daemon.state.fail_unfinished_runs, DAEMON_RESTARTED, daemon.member if daemon.fleet else None
    )
    for run in unfinished:
        playbook, workload = run.get("playbook"), run.get("workload")
        if playbook and workload and daemon.fleet:  # unless another member took it over
            await daemon._db(
                daemon.state.fail_status_of_run,
                playbook,
                workload,
                run["run_id"],
                DAEMON_RESTARTED,
            )
        elif playbook and workload:
            await daemon.set_status(playbook, workload, "Failed", reason=DAEMON_RESTARTED)
    for record in await daemon._db(daemon.state.list_playbooks):
        try:
            loaded = await asyncio.to_thread(
                _load, record.source, record.path, dict(record.variables or {})
            )
        except GxoError as exc:
            log.error("cannot restore playbook %s: %s", record.name, exc)
            continue
        applied = daemon._applied(loaded, record.source, record.path, record.variables or {})
        daemon.playbooks[applied.name] = applied
        daemon.sources.declare(loaded)  # workload: taps before any producer starts
        stored = {w: st for _, w, st in await daemon._db(daemon.state.list_statuses, applied.name)}
        for name in applied.checksums:
            if applied.policy(name) == "run_once":
                continue
            last = stored.get(name) or {}
            if last.get("status") == "Stopped" and last.get("reason") == STOPPED_BY_USER:
                continue  # `gxo ctl stop` outlives a restart; `gxo ctl start` resumes
            daemon.restored[(applied.name, name)] = last
            try:
                await daemon._start_lifecycle(applied, name)
            finally:
                daemon.restored.pop((applied.name, name), None)
        log.info("restored playbook %s (%d workloads)", applied.name, len(applied.checksums))


async def shutdown(daemon: Daemon, grace: float = 10.0) -> None:
    """Stop reconcilers and cancel instances; their history is written before return."""
    await daemon.sources.close()  # the --http listener: no new webhook events
    for key, reconciler in list(daemon.active.items()):
        try:
            async with asyncio.timeout(grace):
                # Not a user's stop: the next daemon start resumes this workload.
                await reconciler.stop(**_reason(reconciler, "daemon stopped"))
        except Exception as exc:  # one broken reconciler must not block the others
            log.error("stopping %s/%s failed: %s", *key, exc)
    daemon.active.clear()
    instances = list(daemon.instances.values())
    for instance in instances:
        instance.engine.cancel()
    tasks = [i.task for i in instances if i.task is not None]
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:  # the engine ignored cancel for the grace period
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2)
    if daemon._status_writes:  # the reconcilers' last statuses reach the store
        await asyncio.wait(list(daemon._status_writes.values()), timeout=grace)
    if daemon.fleet:  # nothing of ours runs any more: leave the fleet
        from gxo.daemon.fleet import leave

        await leave(daemon)
    daemon.events.close()
    daemon.logs.close()
