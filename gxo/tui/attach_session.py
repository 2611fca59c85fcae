"""``gxo ui --attach``: the daemon's workloads, fed into the same model as a local run.

A local run's :class:`~gxo.tui.model.RunModel` listens to the engine's event bus; here
the events come from the daemon (``StreamEvents``, JSON payloads in the proto) and are
turned back into :class:`~gxo.engine.events.Event` objects for the same model, so every
panel of ``gxo ui`` works unchanged. What events cannot say is polled: ``ListWorkloads``
(the reconcilers' own statuses: Restarting, Stopped, the crash-loop Failed, restarts,
next run) and, once at attach, ``GetLogs`` (each workload's recent lines, which the
shared event feed may already have dropped).

Workloads are named ``PLAYBOOK/WORKLOAD`` (what ``gxo ctl`` accepts); the DAG panel
lists them by playbook. The daemon does not send definitions, so there are no edges
and the "module" shown is the lifecycle policy.

The ctl client is synchronous (grpc): calls go through ``asyncio.to_thread`` and the
event stream is read by a thread that hands each event to the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from gxo.config.models import ChannelPolicy
from gxo.engine.events import Event, EventKind
from gxo.tui.approvals import RemoteApprovals
from gxo.tui.model import LOG_LIMIT, RunModel, WorkloadView

__all__ = ["AttachSession", "RemoteState"]

POLL_SECONDS = 1.0
LOG_TAIL = 200  # lines per workload fetched at attach
EVENT_TAIL = 2000  # recent events replayed at attach (summaries, iterations, stream stats)
EARLY_LIMIT = 500  # events of workloads not listed yet, kept until the next listing
# Events a daemon's many runs would make meaningless for one header: the header shows
# the connection instead.
_SKIPPED = {EventKind.RUN_STARTED, EventKind.RUN_FINISHED}


def _join(*parts: str | None) -> str | None:
    return " · ".join(p for p in parts if p) or None


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


@dataclass
class RemoteState:
    """What the details panel reads from an engine's WorkloadState, from the daemon."""

    name: str
    policy: str
    status: str = "Pending"
    summary: Any = None
    error: str | None = None
    attempts: int = 0
    iterations: list[dict[str, Any]] = field(default_factory=list)
    rendered_params: Any = None
    records_in: int = 0
    records_out: int = 0
    started_at: float | None = None  # wall clock of the last Running
    final_ms: float | None = None
    status_time: float = 0.0  # wall time of the newest status applied (event or row)
    facts: str | None = None
    reason: str | None = (
        None  # the latest status's own reason  # "restarts N · last exit C": the daemon's, kept under any reason
    )
    workload: Any = None

    def __post_init__(self) -> None:
        process = SimpleNamespace(module=self.policy, params={})
        self.workload = SimpleNamespace(name=self.name, process=process, when=None, loop=None)

    @property
    def duration_ms(self) -> float | None:
        if self.status == "Running" and self.started_at is not None:
            return max(0.0, (time.time() - self.started_at) * 1000)
        return self.final_ms


class _RemoteLoaded:
    """The slice of LoadedPlaybook the panels use."""

    def __init__(self, socket: str) -> None:
        self.socket = socket
        self.playbook = SimpleNamespace(name="daemon", channel_policy=ChannelPolicy())

    def workload_location(self, name: str, *where: Any) -> str:
        return f"{name.partition('/')[0]} (applied to the daemon at {self.socket})"


class AttachSession:
    """Stands where a RunSession stands for the run screen: ``model``, ``loaded``,
    ``engine.states``, ``cancelling``; plus stop/start of a workload."""

    def __init__(self, client: Any, *, poll: float = POLL_SECONDS) -> None:
        self.client = client
        self.socket = str(client.path)
        self.poll = poll
        self.loaded = _RemoteLoaded(self.socket)
        self.states: dict[str, RemoteState] = {}
        self.engine = SimpleNamespace(states=self.states)
        self.model = RunModel(f"daemon {self.socket}", [], [])
        self.model.level_labels = []
        # RemoteState has what the panels read of a WorkloadState (duck-typed).
        self.model.attach(self.states)  # type: ignore[arg-type]
        self.cancelling = False
        self.error: str | None = None  # the connection was lost
        self.layout_version = 0  # bumped when workloads come or go (the DAG is rebuilt)
        self._early: list[Any] = []
        self._log_seen: dict[str, float] = {}  # newest history line per workload (dedupe)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._poller: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closed = False
        # The Resume tab answers the daemon's pauses through its RPCs.
        self.approvals = RemoteApprovals(client, on_change=self._wake.set)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """List the workloads, load their recent logs, then follow events and statuses."""
        from gxo.ctl.client import pb

        self._loop = asyncio.get_running_loop()
        await self.refresh()
        for name in list(self.states):
            request = pb.GetLogsRequest(name=name, tail=LOG_TAIL, follow=False)
            lines = await asyncio.to_thread(self._drain, "GetLogs", request)
            for line in lines:
                self._log_seen[name] = max(self._log_seen.get(name, 0.0), line.time)
                data = {"stream": line.stream, "level": line.level, "line": line.line}
                self.model(Event(EventKind.LOG, name, data, line.time))
        self.model.run_status = "Running"
        self.model.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._follow, name="gxo-attach", daemon=True)
        self._thread.start()
        self._poller = asyncio.create_task(self._poll(), name="gxo-attach-poll")

    def _drain(self, method: str, request: Any) -> list[Any]:
        return list(self.client.stream(method, request))

    async def close(self) -> None:
        self._closed = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        self.client.close()  # ends the stream: the thread sees CANCELLED and returns
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)

    # -- the daemon's statuses ----------------------------------------------------------

    async def refresh(self) -> None:
        from gxo.ctl.client import pb

        reply = await asyncio.to_thread(
            self.client.call, "ListWorkloads", pb.ListWorkloadsRequest()
        )
        self._apply_rows(list(reply.workloads))

    async def _poll(self) -> None:
        from gxo.ctl.client import CtlError

        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.refresh()
            except CtlError as exc:
                self._lost(exc.message)
                return

    def _apply_rows(self, rows: list[Any]) -> None:
        model = self.model
        names = [f"{r.playbook}/{r.workload}" for r in rows]
        if names != [n for level in model.levels for n in level]:
            self._layout(rows)
        for row, name in zip(rows, names, strict=True):
            self._apply_row(name, row)
        model.version += 1
        if self._early:
            # Events that arrived before their playbook was listed; those of a workload
            # still unknown (removed again meanwhile) are dropped, not kept forever.
            early, self._early = self._early, []
            for event in early:
                if f"{event.playbook}/{event.workload}" in self.states:
                    self._on_event(event)

    def _layout(self, rows: list[Any]) -> None:
        """Workloads came or went: rebuild the views (keeping what is known of the rest)."""
        model = self.model
        levels: dict[str, list[str]] = {}
        for row in rows:
            name = f"{row.playbook}/{row.workload}"
            levels.setdefault(row.playbook, []).append(name)
            if name not in self.states:
                self.states[name] = RemoteState(name, row.policy or "run_once")
        old_views = model.workloads
        model.workloads = {}
        for i, names in enumerate(levels.values()):
            for name in names:
                view = old_views.get(name) or WorkloadView(name, self.states[name].policy, i, [])
                view.level = i
                model.workloads[name] = view
        for name in [n for n in self.states if n not in model.workloads]:
            del self.states[name]
            model.logs.pop(name, None)
        for name in model.workloads:
            model.logs.setdefault(name, deque(maxlen=LOG_LIMIT))
        model.levels = list(levels.values())
        model.level_labels = [f"playbook {p}" for p in levels]
        self.layout_version += 1

    def _apply_row(self, name: str, row: Any) -> None:
        state, view = self.states[name], self.model.workloads[name]
        updated = _epoch(row.updated_at) if row.updated_at else 0.0
        facts = []
        if row.restarts:
            facts.append(f"restarts {row.restarts}")
        if row.HasField("last_exit") and row.policy != "run_once":
            facts.append(f"last exit {row.last_exit}")
        if state.facts != (" · ".join(facts) or None):
            state.facts = " · ".join(facts) or None
            if updated < state.status_time:  # the status stays; its facts line moves on
                view.reason = _join(state.reason, state.facts)
                view.version += 1
        extra = [f"next run {row.next_run}"] if row.next_run else []
        reason = _join(row.reason, *extra, state.facts)
        if updated < state.status_time or (view.status, view.reason) == (row.status, reason):
            return  # an event already told something newer
        state.status_time = updated
        if row.status == "Running" and state.status != "Running":
            state.started_at = updated or time.time()
        state.status = view.status = row.status or "Pending"
        state.reason = row.reason or None
        if row.status == "Failed" and row.reason and not state.error:
            state.error = row.reason
        view.reason = reason
        view.version += 1

    # -- the event stream ---------------------------------------------------------------

    def _follow(self) -> None:
        """Thread: read StreamEvents until the channel closes; each event to the loop."""
        from gxo.ctl.client import CtlError, pb

        request = pb.StreamEventsRequest(follow=True, tail=EVENT_TAIL)
        why = "the daemon closed the event stream"
        try:
            for event in self.client.stream("StreamEvents", request):
                self._to_loop(self._on_event, event)
        except CtlError as exc:
            why = exc.message
        except Exception as exc:  # a closed channel at shutdown
            why = str(exc) or type(exc).__name__
        if not self._closed:
            self._to_loop(self._lost, why)

    def _to_loop(self, fn: Any, *args: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is gone (UI closed)
            self._loop.call_soon_threadsafe(fn, *args)

    def _lost(self, why: str) -> None:
        if self._closed or self.error is not None:
            return
        self.error = why
        self.model.run_status = "Interrupted"
        self.model.warnings.append(f"lost the daemon: {why}")
        self.model.version += 1

    def _on_event(self, pb_event: Any) -> None:
        try:
            kind = EventKind(pb_event.kind)
        except ValueError:
            return  # a kind this UI does not know (a newer daemon)
        if kind in _SKIPPED:
            return
        name = f"{pb_event.playbook}/{pb_event.workload}" if pb_event.workload else None
        if name is not None and name not in self.states:
            if len(self._early) < EARLY_LIMIT:
                self._early.append(pb_event)
            self._wake.set()  # a playbook applied since the last listing
            return
        try:
            data = json.loads(pb_event.data_json) if pb_event.data_json else {}
        except ValueError:
            data = {}
        when = pb_event.time
        if name is not None and not self._update_state(kind, name, data, when):
            return
        if kind is EventKind.STREAM_STATS:
            prefix = f"{pb_event.playbook}/"
            data = {
                **data,
                "links": [
                    {
                        **link,
                        "producer": prefix + str(link.get("producer")),
                        "consumer": prefix + str(link.get("consumer")),
                    }
                    for link in data.get("links", ())
                ],
            }
        self.model(Event(kind, name, data, when))
        if kind is EventKind.WORKLOAD_STATUS and name is not None:
            state = self.states[name]
            view = self.model.workloads[name]
            view.reason = _join(data.get("reason"), state.facts)
            if state.policy != "run_once" and state.status != "Running":
                # A reconciler decides next (Restarting, Failed by the crash-loop guard):
                # ask soon, once its status write has landed, not at the next poll.
                assert self._loop is not None
                self._loop.call_later(0.1, self._wake.set)

    def _update_state(self, kind: EventKind, name: str, data: dict[str, Any], when: float) -> bool:
        """Keep the remote state in step; False: the event is stale, drop it."""
        state = self.states[name]
        if kind is EventKind.LOG:
            return when > self._log_seen.get(name, 0.0)  # not already in the GetLogs history
        if kind is EventKind.WORKLOAD_SUMMARY:
            state.summary = data.get("summary")
        elif kind is EventKind.WORKLOAD_ITERATION:
            state.iterations.append(data)
        elif kind is EventKind.WORKLOAD_STATUS:
            if when < state.status_time:  # older than what the daemon's row already said
                if data.get("status") == state.status and data.get("duration_ms") is not None:
                    state.final_ms = data["duration_ms"]  # only its duration is news
                    self.model.workloads[name].duration_ms = state.final_ms
                    self.model.workloads[name].version += 1
                return False
            state.status_time = when
            status = str(data.get("status", state.status))
            if status == "Running":
                if state.status != "Running":
                    state.started_at = when
                    state.iterations = []
                state.error = None
            else:
                state.final_ms = data.get("duration_ms")
                state.error = data.get("error")
            state.status = status
            state.reason = data.get("reason")
            state.attempts = int(data.get("attempts") or state.attempts)
        return True

    # -- actions ------------------------------------------------------------------------

    async def act(self, action: str, name: str) -> str:
        """``stop`` or ``start`` a workload; the daemon's message (CtlError on refusal)."""
        from gxo.ctl.client import pb

        method = {"stop": "StopWorkload", "start": "StartWorkload"}[action]
        reply = await asyncio.to_thread(self.client.call, method, pb.WorkloadRequest(name=name))
        self._wake.set()
        return f"{name}: {reply.message or action} ({reply.status.status})"
