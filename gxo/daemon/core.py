"""The daemon's control logic, independent of gRPC: apply, remove, status, runs, events,
logs, stop/start. :mod:`gxo.daemon.server` maps RPCs onto it.

A ``run_once`` workload runs through the one engine (:class:`gxo.engine.scheduler.Engine`)
in the daemon's event loop: once at apply, again when its definition changes or on
``ctl start``. Other lifecycles are run by *reconcilers* (supervise, scheduled, ...)
registered in :attr:`Daemon.reconcilers` by policy name; a policy without one is
stored ``Pending`` with reason ``reconciler not available yet``.

The state store (``SqlState``) is synchronous: every call goes through
``asyncio.to_thread`` so a slow disk or database never stalls the loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gxo.config.loader import LoadedPlaybook, load_playbook
from gxo.config.security import require_sandboxed
from gxo.daemon import heap
from gxo.daemon.feeds import Feed
from gxo.daemon.observe import FeedsMixin
from gxo.daemon.pauses import PauseBook
from gxo.daemon.reconcile_base import iso_now
from gxo.daemon.runs import Instance, run_instance, start_instance
from gxo.daemon.selection import owners as instance_owners
from gxo.daemon.selection import workload_checksum
from gxo.daemon.sources.hub import SourceHub
from gxo.daemon.workspaces import Workspaces
from gxo.daemon.writer import writer_of
from gxo.engine.confine import Confinement, check_literal_paths
from gxo.engine.instances import with_stream_producers
from gxo.errors import GxoError

__all__ = ["Applied", "Daemon", "DaemonError", "Reconciler", "workload_checksum"]

log = logging.getLogger("gxo.daemon")

NOT_AVAILABLE = "reconciler not available yet"
STOPPED_BY_USER = "stopped by request"
DAEMON_RESTARTED = "daemon restarted"  # the reason of a run that died with its daemon


def _reason(reconciler: Any, reason: str) -> dict[str, str]:
    """``stop(reason=...)`` where the reconciler takes one (the Protocol's stop() does not)."""
    try:
        params = inspect.signature(reconciler.stop).parameters
    except (TypeError, ValueError):
        return {}
    return {"reason": reason} if "reason" in params else {}


class DaemonError(Exception):
    """An error answered to a client; ``code`` is a gRPC status code name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Reconciler(Protocol):
    """Keeps one non-run_once workload in its lifecycle (gxo/daemon/reconcile.py)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> dict[str, Any]: ...


# policy name -> factory(daemon, applied, workload name) -> Reconciler
ReconcilerFactory = Callable[["Daemon", "Applied", str], Reconciler]


def now_iso() -> str:
    return iso_now()  # formatted once per millisecond (a burst of fires shares them)


def default_member() -> str:
    """hostname-pid-random4: unique per daemon process, readable in `gxo ctl status`."""
    import os
    import secrets
    import socket

    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


@dataclass
class Applied:
    """A playbook the daemon holds: its loaded form and each workload's checksum."""

    name: str
    source: str
    path: str
    variables: dict[str, Any]
    loaded: LoadedPlaybook
    checksums: dict[str, str]
    checksum: str
    # The daemon's per-playbook workspace and --allow-path dirs (gxo/daemon/workspaces.py)
    confinement: Confinement | None = None

    def workload(self, name: str) -> Any:
        index = self.loaded.workload_index(name)
        assert index is not None
        return self.loaded.playbook.workloads[index]

    def policy(self, workload: str) -> str:
        return str(self.workload(workload).lifecycle.policy)

    @property
    def workspace(self) -> str | Confinement | None:
        """The Engine's ``workspace``: confined when the daemon was given its workspaces."""
        if self.confinement is not None:
            return self.confinement
        path = Path(self.path)
        return str(path.parent) if path.is_absolute() else None


def _load(source: str, path: str, variables: dict[str, Any]) -> LoadedPlaybook:
    return load_playbook(text=source, name=path or "<apply>", extra_names=set(variables))


class Daemon(FeedsMixin):
    def __init__(
        self,
        state: Any,
        *,
        state_url: str = "",
        socket: str = "",
        workspaces: Workspaces | None = None,
    ) -> None:
        # serve() always passes ``workspaces``: each playbook confined to its own
        # (docs/confinement.md); without it (library use), the playbook file's folder.
        self.workspaces = workspaces
        self.require_sandbox = False  # set by serve() from --require-sandbox
        self.state = state
        self.state_url = state_url
        self.socket = socket
        self.started = time.monotonic()
        self.playbooks: dict[str, Applied] = {}
        self.reconcilers: dict[str, ReconcilerFactory] = {}
        self.active: dict[tuple[str, str], Reconciler] = {}
        self.instances: dict[str, Instance] = {}
        self.events = Feed(size=2000)
        self.logs = Feed(size=1000)
        self._seq = 0
        self._status_writes: dict[tuple[str, str], asyncio.Task[None]] = {}
        # Last persisted status of each workload being restored, for its reconciler
        # factory (restart counters); only while restore() starts that workload.
        self.restored: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = asyncio.Lock()  # applies, removes and starts happen one at a time
        # Fleet (gxo/daemon/fleet.py): several daemons on one PostgreSQL state.
        self.fleet: str | None = None
        self.member: str = default_member()
        self.lease_ttl = 10.0
        self.heartbeat: asyncio.Task[None] | None = None  # the liveness lease's renewal
        # Workloads a user's apply or start is starting: they begin afresh (fleet.py).
        self.fresh: set[tuple[str, str]] = set()
        # The webhook router (--http) and the workload: stream taps of event sources.
        self.sources = SourceHub()
        # Paused workloads (control:wait_for_signal): each instance's broker, the RPCs'
        # decisions (gxo/daemon/pauses.py).
        self.pauses = PauseBook(self)

    async def _db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # After the writes queued before it (gxo/daemon/writer.py): reads see them, and a
        # delete lands after them.
        await writer_of(self).flush()
        return await asyncio.to_thread(fn, *args, **kwargs)

    # -- start / stop ---------------------------------------------------------------------

    async def restore(self) -> None:
        """Daemon start: runs left Running by a dead daemon become Failed, playbooks come
        back and each lifecycle goes on by its policy (gxo/daemon/restore.py)."""
        from gxo.daemon.restore import restore

        await restore(self)

    async def shutdown(self, grace: float = 10.0) -> None:
        """Stop reconcilers and cancel instances; their history is written before return
        (gxo/daemon/restore.py)."""
        from gxo.daemon.restore import shutdown

        await shutdown(self, grace)

    # -- apply / remove ---------------------------------------------------------------------

    def _applied(
        self, loaded: LoadedPlaybook, source: str, path: str, variables: dict[str, Any]
    ) -> Applied:
        checksums = {
            w.name: workload_checksum(loaded, w.name, variables) for w in loaded.playbook.workloads
        }
        digest = hashlib.sha256(
            (source + json.dumps(variables, sort_keys=True, default=str)).encode()
        ).hexdigest()
        confinement = self.workspaces.confinement(loaded.playbook.name) if self.workspaces else None
        return Applied(
            loaded.playbook.name, source, path, variables, loaded, checksums, digest, confinement
        )

    async def apply(
        self, source: str, path: str, variables: dict[str, Any], *, sync: bool = False
    ) -> dict[str, Any]:
        """``sync``: a fleet member takes up what another member applied (already
        persisted, its run_once workloads already run there): only the local side."""
        try:
            loaded = await asyncio.to_thread(_load, source, path, variables)
            if self.require_sandbox:  # gxo daemon --require-sandbox (docs/sandbox.md)
                require_sandboxed(loaded.playbook)
            if self.workspaces is not None:  # literal path params outside: refused here
                confined = self.workspaces.confinement(loaded.playbook.name)
                await asyncio.to_thread(check_literal_paths, loaded, confined.resolver())
        except GxoError as exc:  # nothing of the old version is touched
            raise DaemonError("INVALID_ARGUMENT", str(exc)) from None
        async with self._lock:
            try:  # webhook paths (--http, one owner each), workload: names
                self.sources.check(loaded, self.playbooks, listening=not sync)
            except GxoError as exc:
                raise DaemonError("INVALID_ARGUMENT", str(exc)) from None
            new = self._applied(loaded, source, path, variables)
            old = self.playbooks.get(new.name)
            before = old.checksums if old else {}
            added = [n for n in new.checksums if n not in before]
            changed = [n for n in new.checksums if n in before and before[n] != new.checksums[n]]
            unchanged = [n for n in new.checksums if n in before and before[n] == new.checksums[n]]
            removed = [n for n in before if n not in new.checksums]
            if sync:
                record = await self._db(self.state.get_playbook, new.name)
                if record is None or record.checksum != new.checksum:
                    return {"playbook": new.name, "skipped": True}  # superseded meanwhile
            else:
                await self._db(
                    self.state.put_playbook,
                    new.name,
                    source=source,
                    path=path,
                    checksum=new.checksum,
                    variables=variables,
                )
            # Instances of what changed or went away end before the new version starts.
            for name in changed + removed:
                await self._stop_workload(new.name, name, reason=None)
            self.playbooks[new.name] = new
            for name in removed:
                self.logs.forget((new.name, name))
                if not sync:
                    await self._db(self.state.delete_workload, new.name, name)
            started: list[str] = []
            # run_once workloads downstream of a long-running one run in its instances,
            # not at apply; the others run now, with the stream producers they read.
            owners = instance_owners(new.loaded)
            once = with_stream_producers(
                new.loaded,
                [n for n in added + changed if new.policy(n) == "run_once" and n not in owners],
                set(owners),
            )
            for name in added + changed:
                if new.policy(name) != "run_once":
                    await self._start_lifecycle(new, name, fresh=not sync)
                elif name in owners:
                    roots = ", ".join(owners[name])
                    await self.set_status(
                        new.name, name, "Pending", reason=f"runs in the instances of {roots}"
                    )
            if once and not sync:
                await self._start_instance(new, once)
                started.extend(once)
            heap.request_settle()  # the new playbook's objects out of the collector's way
            log.info(
                "applied %s: %d added, %d changed, %d removed, %d unchanged",
                new.name,
                len(added),
                len(changed),
                len(removed),
                len(unchanged),
            )
        return {
            "playbook": new.name,
            "added": added,
            "changed": changed,
            "removed": removed,
            "unchanged": unchanged,
            "warnings": list(loaded.warnings),
            "started": started,
        }

    async def remove(self, playbook: str, *, sync: bool = False) -> list[str]:
        """``sync``: another fleet member removed it: stop it here, the rows are gone."""
        async with self._lock:
            applied = self.playbooks.get(playbook)
            if applied is None:
                raise DaemonError("NOT_FOUND", f"no playbook '{playbook}' is applied")
            if sync and await self._db(self.state.get_playbook, playbook) is not None:
                return []  # applied again meanwhile
            for name in applied.checksums:
                await self._stop_workload(playbook, name, reason=None)
                self.logs.forget((playbook, name))
            await self._flush_statuses(playbook)  # no status row may outlive the delete
            del self.playbooks[playbook]
            self.sources.forget(playbook)
            if not sync:
                await self._db(self.state.delete_playbook, playbook)
            log.info("removed playbook %s", playbook)
            return list(applied.checksums)

    # -- lifecycles -------------------------------------------------------------------------

    async def _start_lifecycle(self, applied: Applied, name: str, *, fresh: bool = False) -> None:
        """``fresh``: a user's apply or start (not a restore, not a fleet member's sync)."""
        policy = applied.policy(name)
        factory = self.reconcilers.get(policy)
        if factory is None:
            await self.set_status(applied.name, name, "Pending", reason=NOT_AVAILABLE)
            return
        key = (applied.name, name)
        if fresh:
            self.fresh.add(key)
        try:
            reconciler = factory(self, applied, name)
            if inspect.isawaitable(reconciler):  # a factory may read the state first
                reconciler = await reconciler
        finally:
            self.fresh.discard(key)
        self.active[(applied.name, name)] = reconciler
        await reconciler.start()

    def status_writer(self, playbook: str, workload: str) -> Callable[[dict[str, Any]], None]:
        """A synchronous ``on_status`` for a reconciler: each change is persisted in order.

        Queued on the daemon's write-behind (gxo/daemon/writer.py), which commits in
        submission order: the old reconciler's ``Stopped`` never lands after the new one's
        ``Running`` (a restarted daemon would otherwise take the service for stopped by
        the user); reads through ``_db`` see it; shutdown waits for it."""

        def on_status(status: dict[str, Any]) -> None:
            if playbook not in self.playbooks:
                return  # removed: its statuses are gone with it
            record = status  # a copy made for us (reconcile.py): ours to complete
            record["updated_at"] = now_iso()
            if self.fleet:  # `gxo ctl status` shows which member runs what
                record["member"] = self.member
            writer_of(self).set_status(playbook, workload, record)

        return on_status

    async def _flush_statuses(self, playbook: str) -> None:
        pending = [t for (p, _), t in self._status_writes.items() if p == playbook]
        if pending:
            await asyncio.wait(pending)
        await writer_of(self).flush()  # the statuses queued on the write-behind

    async def _start_instance(self, applied: Applied, workloads: list[str]) -> str:
        return (await start_instance(self, applied, workloads)).run_id

    async def run_instance(
        self,
        applied: Applied,
        root: str,
        *,
        run_id: str,
        reason: str,
        owned: bool = False,
        event: dict[str, Any] | None = None,
    ) -> Any:
        """An instance of ``root`` run to its end: what reconcilers call (see runs.py).
        ``owned``: the root's status belongs to its reconciler, not to the run.
        ``event``: the ``_gxo.event`` of an event_driven instance."""
        return await run_instance(
            self, applied, root, run_id=run_id, reason=reason, owned=owned, event=event
        )

    async def _stop_workload(self, playbook: str, name: str, *, reason: str | None) -> bool:
        """End what runs ``name``; True if something was running."""
        stopped = False
        reconciler = self.active.pop((playbook, name), None)
        if reconciler is not None:
            why = reason or "replaced by a new version of the playbook"
            await reconciler.stop(**_reason(reconciler, why))
            stopped = True
        for instance in list(self.instances.values()):
            if instance.playbook == playbook and name in instance.workloads:
                instance.stopped.add(name)
                instance.engine.cancel()
                if instance.task is not None:
                    await asyncio.wait([instance.task])
                stopped = True
        if reason is not None and stopped:
            await self.set_status(playbook, name, "Stopped", reason=reason)
        return stopped

    async def stop(self, ref: str) -> dict[str, Any]:
        async with self._lock:
            playbook, name = self.resolve(ref)
            # Fleet: a standby member must not stop (and mark Stopped) what another runs.
            elsewhere = getattr(self.active.get((playbook, name)), "held_elsewhere", None)
            if elsewhere:
                raise DaemonError(
                    "FAILED_PRECONDITION",
                    f"workload '{playbook}/{name}' runs on fleet member {elsewhere}: stop it there",
                )
            if not await self._stop_workload(playbook, name, reason=STOPPED_BY_USER):
                current = await self.status(f"{playbook}/{name}")
                raise DaemonError(
                    "FAILED_PRECONDITION",
                    f"workload '{playbook}/{name}' is not running (status {current['status']})",
                )
            return await self.status(f"{playbook}/{name}")

    async def start(self, ref: str) -> tuple[dict[str, Any], str]:
        async with self._lock:
            playbook, name = self.resolve(ref)
            applied = self.playbooks[playbook]
            ended = self.active.get((playbook, name))
            if ended is not None and getattr(ended, "gave_up", False):
                # It gave up on its own (crash-loop limit, restart policy) or had ended
                # before a daemon restart: a user's start begins afresh with a new
                # reconciler (stopping the old one ends a fleet lease's renewal too).
                del self.active[(playbook, name)]
                await ended.stop(**_reason(ended, "started again by request"))
            if (
                any(i.playbook == playbook and name in i.workloads for i in self.instances.values())
                or (playbook, name) in self.active
            ):
                raise DaemonError(
                    "FAILED_PRECONDITION", f"workload '{playbook}/{name}' is already running"
                )
            run_id = ""
            if applied.policy(name) == "run_once":
                selected = with_stream_producers(applied.loaded, [name])
                run_id = await self._start_instance(applied, selected)
            elif applied.policy(name) not in self.reconcilers:
                raise DaemonError(
                    "FAILED_PRECONDITION",
                    f"cannot start '{playbook}/{name}': {applied.policy(name)} {NOT_AVAILABLE}",
                )
            else:
                await self._start_lifecycle(applied, name, fresh=True)
            return await self.status(f"{playbook}/{name}"), run_id

    # -- queries ----------------------------------------------------------------------------

    def resolve(self, ref: str) -> tuple[str, str]:
        """``WORKLOAD`` (unique across playbooks) or ``PLAYBOOK/WORKLOAD`` → (playbook,
        workload)."""
        if "/" in ref:
            playbook, _, name = ref.partition("/")
            applied = self.playbooks.get(playbook)
            if applied is None or name not in applied.checksums:
                raise DaemonError("NOT_FOUND", f"no workload '{ref}'")
            return playbook, name
        owners = [p for p, a in self.playbooks.items() if ref in a.checksums]
        if not owners:
            raise DaemonError("NOT_FOUND", f"no workload '{ref}' in any applied playbook")
        if len(owners) > 1:
            choices = ", ".join(f"{p}/{ref}" for p in sorted(owners))
            raise DaemonError(
                "FAILED_PRECONDITION", f"workload name '{ref}' is ambiguous: use one of {choices}"
            )
        return owners[0], ref

    async def set_status(self, playbook: str, workload: str, status: str, **extra: Any) -> None:
        """Queued (gxo/daemon/writer.py): later reads through ``_db`` see it."""
        writer = writer_of(self)
        current = writer.pending_status(playbook, workload)
        if current is None:  # nothing queued for it: the row is up to date
            current = await asyncio.to_thread(self.state.get_status, playbook, workload) or {}
        record = {
            "status": status,
            "reason": extra.get("reason"),
            "restarts": extra.get("restarts", current.get("restarts", 0)),
            "last_exit": extra.get("last_exit", current.get("last_exit")),
            "next_run": extra.get("next_run"),
            "last_run_id": extra.get("last_run_id", current.get("last_run_id")),
            "updated_at": now_iso(),
        }
        if current.get("restart_times"):  # a supervisor's crash-loop window (restore)
            record["restart_times"] = current["restart_times"]
        writer.set_status(playbook, workload, record)

    def _row(self, applied: Applied, name: str, stored: dict[str, Any] | None) -> dict[str, Any]:
        row = {"status": "Pending", "reason": None, "restarts": 0, "last_exit": None}
        row.update(stored or {})
        reconciler = self.active.get((applied.name, name))
        if reconciler is not None:
            row.update(reconciler.status())
        paused = self.pauses.paused(applied.name, name)
        if paused is not None and row.get("status") == "Running":
            row.update(status="Paused", reason=f"waits for an answer: {paused['prompt']}")
        row.update(playbook=applied.name, workload=name, policy=applied.policy(name))
        return row

    async def list_workloads(self, playbook: str = "") -> list[dict[str, Any]]:
        if playbook and playbook not in self.playbooks:
            raise DaemonError("NOT_FOUND", f"no playbook '{playbook}' is applied")
        stored = {
            (p, w): s for p, w, s in await self._db(self.state.list_statuses, playbook or None)
        }
        rows: list[dict[str, Any]] = []
        for name in sorted(self.playbooks):
            if playbook and name != playbook:
                continue
            applied = self.playbooks[name]
            rows.extend(self._row(applied, w, stored.get((name, w))) for w in applied.checksums)
        return rows

    async def status(self, ref: str) -> dict[str, Any]:
        playbook, name = self.resolve(ref)
        stored = await self._db(self.state.get_status, playbook, name)
        return self._row(self.playbooks[playbook], name, stored)

    async def runs(self, ref: str, limit: int = 50) -> list[dict[str, Any]]:
        playbook, name = self.resolve(ref)
        rows = await self._db(self.state.list_runs, playbook, name, limit)
        return [{**row, "playbook": playbook, "workload": name} for row in rows]

    def health(self) -> dict[str, Any]:
        from gxo import __version__

        return {
            "status": "SERVING",
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "playbooks": len(self.playbooks),
            "workloads": sum(len(a.checksums) for a in self.playbooks.values()),
            "state": self.state_url,
            "socket": self.socket,
        }
