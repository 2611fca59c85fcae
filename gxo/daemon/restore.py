"""Daemon start and stop (:meth:`Daemon.restore`, :meth:`Daemon.shutdown`).

**Restore.** Runs left ``Running`` by a dead daemon become ``Failed`` (reason ``daemon
restarted``) with their workloads' statuses; then every applied playbook comes back and
each non-run_once lifecycle goes on from its persisted status: a supervised workload
whose instance died with the daemon is restarted or not by its ``restart_policy``, one
that had ended stays so (:func:`gxo.daemon.reconcile_supervise.resume_from`), one a
user stopped stays stopped; schedules catch up by their ``catchup``; event sources
resume (un-acked events come again). In a fleet (gxo/daemon/fleet.py) the member first
takes its liveness lease, and only its own runs are failed here: those of dead members
are the survivors' sweep. A run paused in ``control:wait_for_signal`` (an open pause row)
is not failed: its unfinished workloads run again under the same run id and the paused
one waits on the same pause and token (gxo/daemon/pauses.py). A dead fleet member's
paused run that this member's sweep took over is re-run by the same code
(:func:`rerun_paused`, called from gxo/daemon/fleet.py).

**Shutdown.** Reconcilers stop (not a user's stop: the next start resumes them),
instances are cancelled with a grace period, the last statuses are written, and a
fleet member leaves the fleet. A paused run's pause stays open and its unfinished rows
stay Running, as after a kill: the next start takes it up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from gxo.config.security import require_sandboxed
from gxo.daemon.core import DAEMON_RESTARTED, STOPPED_BY_USER, _load, _reason, now_iso
from gxo.errors import GxoError

if TYPE_CHECKING:
    from gxo.daemon.core import Daemon

__all__ = ["rerun_paused", "restore", "shutdown"]

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
    # A run paused in control:wait_for_signal is re-run below under its run id, waiting
    # on the same pause row and token: its rows stay Running (pauses.py).
    paused = await daemon._db(daemon.state.list_pauses)
    unfinished = await daemon._db(
        daemon.state.fail_unfinished_runs,
        DAEMON_RESTARTED,
        daemon.member if daemon.fleet else None,
        frozenset(p["run_id"] for p in paused),
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
            if daemon.require_sandbox:  # restarted with --require-sandbox (docs/sandbox.md)
                require_sandboxed(loaded.playbook)
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
    for run_id in dict.fromkeys(p["run_id"] for p in paused):
        await rerun_paused(daemon, run_id, [p for p in paused if p["run_id"] == run_id])


async def rerun_paused(
    daemon: Daemon, run_id: str, pauses: list[dict[str, Any]], reason: str = DAEMON_RESTARTED
) -> None:
    """Re-run, under the same run id, the workloads a paused run had not finished: this
    daemon's own run after a restart (:func:`restore`), or a dead fleet member's run this
    member took over (gxo/daemon/fleet.py, :func:`~gxo.daemon.fleet.sweep`).

    Their history rows (``<run id>.<workload>``) are written afresh (the daemon's
    restart or the takeover is their new start), and the paused workload's ``wait`` takes
    up its pause with the same token (a pause decided meanwhile is answered at once). A
    run that cannot be re-run (its playbook or workloads are gone, a reconciler's root
    among the unfinished, another fleet member runs it) ends as it would have without a
    pause: its rows Failed with ``reason``, pauses closed. (An instance of a reconciler's
    root whose root had finished is re-run without it: its downstream part is run_once
    workloads.)
    """
    from gxo.daemon.runs import start_instance

    playbook = pauses[0]["playbook"]
    rows = await daemon._db(daemon.state.runs_of, run_id)
    member = daemon.member if daemon.fleet else None
    if any(r.get("member") != member for r in rows if r["status"] == "Running"):
        return  # another fleet member's run: not ours to re-run or to close
    left = [r for r in rows if r["status"] == "Running"]
    names = [r["workload"] for r in left]
    applied = daemon.playbooks.get(playbook)
    runnable = (
        applied is not None
        and bool(names)
        and all(p["workload"] in names for p in pauses)
        and all(n in applied.checksums and applied.policy(n) == "run_once" for n in names)
    )
    if runnable and applied is not None:
        await daemon._db(daemon.state.forget_runs, [r["run_id"] for r in left])
        log.info("run %s of %s was paused: running %s again", run_id, playbook, ", ".join(names))
        await start_instance(daemon, applied, names, run_id=run_id)
        return
    ended = now_iso()
    for r in left:  # as fail_unfinished_runs and restore() do for any other run
        name = r["workload"]
        await daemon._db(
            daemon.state.finish_run, r["run_id"], "Failed", ended, r.get("report"), reason
        )
        if applied is None or name not in applied.checksums:
            continue
        if applied.policy(name) != "run_once":
            continue  # its reconciler (started above) owns its status
        if daemon.fleet:  # unless another member took it over
            await daemon._db(daemon.state.fail_status_of_run, playbook, name, r["run_id"], reason)
        else:
            await daemon.set_status(playbook, name, "Failed", reason=reason)
    for p in pauses:
        await daemon.pauses.decide(
            p, "cancelled", by=None, reason=f"{reason}: the run could not be resumed"
        )


async def shutdown(daemon: Daemon, grace: float = 10.0) -> None:
    """Stop reconcilers and cancel instances; their history is written before return."""
    await daemon.sources.close()  # the --http listener: no new webhook events
    daemon.pauses.stopping = True  # paused workloads stay paused for the next start
    for key, reconciler in list(daemon.active.items()):
        try:
            async with asyncio.timeout(grace):
                # Not a user's stop: the next daemon start resumes this workload.
                await reconciler.stop(**_reason(reconciler, "daemon stopped"))
        except Exception as exc:  # one broken reconciler must not block the others
            log.error("stopping %s/%s failed: %s", *key, exc)
    daemon.active.clear()
    instances = list(daemon.instances.values())
    paused_runs = {run_id for (_, _, run_id) in daemon.pauses.open}
    for instance in instances:
        if instance.run_id in paused_runs:
            # A paused run ends as if the daemon had been killed: its unfinished rows stay
            # Running and its pause open, and the next start re-runs it under the same
            # run id (restore above) — never recorded as failed in between.
            instance.pending.clear()
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
