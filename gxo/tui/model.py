"""What the UI shows about a run, kept current from engine events.

:class:`RunModel` is an :class:`~gxo.engine.events.EventBus` listener: it runs
inside ``emit``, so it only records facts and bumps version counters — no
rendering, no Textual. Widgets poll the versions on a timer (10 Hz) and redraw
what changed, which batches thousands of events per second into a few repaints.

Run status ("progress never lies"): ``run_status`` is "Pending" until
RUN_STARTED, "Running" after it, and takes its final value only from
RUN_FINISHED, which the engine emits after announcing every workload's final
status — so it never says Completed while a workload is still running.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gxo.engine.events import Event, EventKind

if TYPE_CHECKING:
    from gxo.config.loader import LoadedPlaybook
    from gxo.engine.context import WorkloadState

__all__ = ["LinkView", "LogLine", "PausedView", "RunModel", "WorkloadView"]

LOG_LIMIT = 2000  # lines kept per workload for the log panel
RATE_POINTS = 24  # records/s samples kept per stream link (6 s at the engine's 0.25 s)


@dataclass
class WorkloadView:
    name: str
    module: str
    level: int
    inputs: list[tuple[str, str]]  # (producer, edge kind)
    status: str = "Pending"
    attempts: int = 0
    duration_ms: float | None = None
    reason: str | None = None
    error: str | None = None
    retry: str | None = None  # last "attempt N failed ..." while retrying
    iterations_total: int | None = None
    iterations_done: int = 0
    version: int = 0


@dataclass(frozen=True, slots=True)
class LogLine:
    seq: int
    workload: str
    stream: str  # stdout | stderr | log
    level: str
    text: str
    time: float = 0.0  # wall clock (epoch seconds): the all-workloads view shows it


@dataclass
class LinkView:
    producer: str
    consumer: str
    sent: int = 0
    delivered: int = 0
    depth: int = 0
    capacity: int = 0
    dropped: int = 0
    closed: bool = False
    rates: deque[float] = field(default_factory=lambda: deque(maxlen=RATE_POINTS))
    _last: tuple[float, int] | None = None

    @property
    def full(self) -> bool:
        """The buffer is at capacity: a blocking producer is waiting (back-pressure)."""
        return self.capacity > 0 and self.depth >= self.capacity

    def update(self, stats: Mapping[str, Any], now: float) -> None:
        delivered = int(stats.get("delivered", 0))
        if self._last is not None and now > self._last[0]:
            self.rates.append(max(0.0, (delivered - self._last[1]) / (now - self._last[0])))
        self._last = (now, delivered)
        self.sent = int(stats.get("sent", 0))
        self.delivered = delivered
        self.depth = int(stats.get("depth", 0))
        self.capacity = int(stats.get("capacity", 0))
        self.dropped = int(stats.get("dropped", 0))
        self.closed = bool(stats.get("closed", False))


@dataclass(frozen=True, slots=True)
class PausedView:
    """A workload waiting for a human (``control:wait_for_signal``).

    ``token`` is the resume token when the run's broker issued one (the daemon sends it
    in the event as ``token``, to subscribers allowed to resume); "" for a local run,
    which is answered through the session's approvals instead. ``since`` and
    ``expires_at`` are wall-clock times (``expires_at`` None: no timeout).
    """

    workload: str
    token: str
    prompt: str
    schema: Mapping[str, Any] | None = None
    since: float = 0.0
    expires_at: float | None = None


def _epoch(value: Any) -> float | None:
    """A time as epoch seconds: a number, or an ISO 8601 string (what a daemon may send)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value:
        from datetime import datetime

        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


class RunModel:
    """Event listener that accumulates the view of one run."""

    def __init__(
        self,
        playbook: str,
        workloads: list[WorkloadView],
        levels: list[list[str]],
        *,
        clock: Any = time.monotonic,
    ) -> None:
        self.playbook = playbook
        self.workloads: dict[str, WorkloadView] = {w.name: w for w in workloads}
        self.levels = levels
        # Headings of the levels in the DAG panel (None: "level N"); `gxo ui --attach`
        # groups the daemon's workloads by playbook.
        self.level_labels: list[str] | None = None
        self.run_status = "Pending"
        self.run_id: str | None = None
        self.run_duration_ms: float | None = None
        self.links: dict[tuple[str, str], LinkView] = {}
        self.logs: dict[str, deque[LogLine]] = {w.name: deque(maxlen=LOG_LIMIT) for w in workloads}
        self.log_seq = 0
        self.paused: dict[str, PausedView] = {}
        self.warnings: list[str] = []
        self.version = 0  # bumped on every change
        self.links_version = 0
        self.started_at: float | None = None  # monotonic, for the header clock
        self._clock = clock
        self._states: Mapping[str, WorkloadState] | None = None

    @classmethod
    def from_loaded(cls, loaded: LoadedPlaybook, **kwargs: Any) -> RunModel:
        graph = loaded.graph  # set by validation
        if graph is None:
            from gxo.config.validate import validate_playbook

            graph = validate_playbook(loaded)
        levels = graph.levels()
        level_of = {name: i for i, names in enumerate(levels) for name in names}
        inputs: dict[str, list[tuple[str, str]]] = {n: [] for n in graph.names}
        for producer, consumer, kind in graph.edges():
            inputs[consumer].append((producer, kind))
        views = [
            WorkloadView(w.name, w.process.module, level_of[w.name], inputs[w.name])
            for w in loaded.playbook.workloads
        ]
        model = cls(loaded.playbook.name, views, levels, **kwargs)
        capacity = loaded.playbook.channel_policy.buffer_size
        for producer, consumer, kind in graph.edges():
            if kind == "stream":  # shown (idle) before the first statistics arrive
                model.links[(producer, consumer)] = LinkView(producer, consumer, capacity=capacity)
        return model

    def attach(self, states: Mapping[str, WorkloadState]) -> None:
        """The engine's states: live durations and details of running workloads."""
        self._states = states

    def keep_outcomes(self, states: Mapping[str, WorkloadState]) -> None:
        """Workloads a partial re-run does not run show their earlier outcome."""
        for name, state in states.items():
            view = self.workloads.get(name)
            if view is None or not state.status.terminal:
                continue
            view.status = state.status.value
            view.attempts = state.attempts
            view.duration_ms = state.duration_ms
            view.reason = state.reason
            view.error = state.error
            view.version += 1
        self.version += 1

    # -- queries -------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.run_status not in ("Pending", "Running")

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for w in self.workloads.values():
            out[w.status] = out.get(w.status, 0) + 1
        return out

    def elapsed(self) -> float:
        if self.run_duration_ms is not None:
            return self.run_duration_ms / 1000
        if self.started_at is None:
            return 0.0
        return self._clock() - self.started_at

    def live_duration(self, name: str) -> float | None:
        """A running workload's duration so far (events carry it only on transitions)."""
        view = self.workloads[name]
        if view.status == "Running" and self._states is not None and name in self._states:
            return self._states[name].duration_ms
        return view.duration_ms

    @property
    def any_running(self) -> bool:
        return any(w.status == "Running" for w in self.workloads.values())

    def log_lines(self, workload: str) -> deque[LogLine]:
        return self.logs.get(workload, deque())

    def all_log_lines(self, after: int = 0) -> list[LogLine]:
        """Every workload's lines newer than sequence number ``after``, interleaved in
        the order they were logged (each workload keeps its last LOG_LIMIT)."""
        fresh: list[LogLine] = []
        for lines in self.logs.values():
            for line in reversed(lines):
                if line.seq <= after:
                    break
                fresh.append(line)
        fresh.sort(key=lambda line: line.seq)
        return fresh

    # -- events --------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        handler = self._handlers.get(event.kind)
        if handler is not None:
            handler(self, event)
            self.version += 1

    def _on_run_started(self, event: Event) -> None:
        self.run_status = "Running"
        self.run_id = event.data.get("run_id")
        self.started_at = self._clock()

    def _on_run_finished(self, event: Event) -> None:
        self.run_duration_ms = event.data.get("duration_ms")
        self.run_status = str(event.data.get("status", "Completed"))

    def _on_status(self, event: Event) -> None:
        view = self._view(event)
        if view is None:
            return
        data = event.data
        view.status = str(data.get("status", view.status))
        view.attempts = int(data.get("attempts") or view.attempts)
        view.duration_ms = data.get("duration_ms")
        view.reason = data.get("reason")
        view.error = data.get("error")
        if view.status != "Running":
            view.retry = None
        if view.status == "Paused":
            token = data.get("token") or data.get("resume_token")
            schema = data.get("payload_schema")
            expires = data.get("expires_at")
            self.paused[view.name] = PausedView(
                view.name,
                str(token or ""),
                str(data.get("prompt") or ""),
                schema if isinstance(schema, Mapping) else None,
                event.time,
                _epoch(expires),
            )
        else:
            self.paused.pop(view.name, None)
        view.version += 1

    def _on_retrying(self, event: Event) -> None:
        view = self._view(event)
        if view is None:
            return
        data = event.data
        view.attempts = int(data.get("next_attempt") or view.attempts)
        view.retry = f"attempt {data.get('attempt')} failed: {data.get('error')}; retrying in {data.get('delay')}s"
        view.version += 1

    def _on_iteration(self, event: Event) -> None:
        view = self._view(event)
        if view is None:
            return
        view.iterations_done += 1
        state = self._states.get(view.name) if self._states is not None else None
        if state is not None:
            view.iterations_total = len(state.iterations)
        view.version += 1

    def _on_summary(self, event: Event) -> None:
        view = self._view(event)
        if view is not None:
            view.version += 1

    def _on_log(self, event: Event) -> None:
        name = event.workload
        if name not in self.logs:
            return
        self.log_seq += 1
        data = event.data
        self.logs[name].append(
            LogLine(
                self.log_seq,
                name,
                str(data.get("stream", "log")),
                str(data.get("level", "info")),
                str(data.get("line", "")),
                event.time,
            )
        )

    def _on_stream_stats(self, event: Event) -> None:
        for stats in event.data.get("links", ()):
            key = (str(stats.get("producer")), str(stats.get("consumer")))
            link = self.links.get(key)
            if link is None:
                link = self.links[key] = LinkView(*key)
            link.update(stats, event.time)
        self.links_version += 1

    def _on_warning(self, event: Event) -> None:
        self.warnings.append(str(event.data.get("message", "")))

    def _view(self, event: Event) -> WorkloadView | None:
        return self.workloads.get(event.workload) if event.workload else None

    _handlers = {
        EventKind.RUN_STARTED: _on_run_started,
        EventKind.RUN_FINISHED: _on_run_finished,
        EventKind.WORKLOAD_STATUS: _on_status,
        EventKind.WORKLOAD_RETRYING: _on_retrying,
        EventKind.WORKLOAD_ITERATION: _on_iteration,
        EventKind.WORKLOAD_SUMMARY: _on_summary,
        EventKind.LOG: _on_log,
        EventKind.STREAM_STATS: _on_stream_stats,
        EventKind.WARNING: _on_warning,
    }
