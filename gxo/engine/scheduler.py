"""The scheduler: runs a validated playbook's workloads as a DAG on asyncio.

Scheduling unit is the *pipeline* (workloads joined by streams, see
:mod:`gxo.engine.dag`): a pipeline starts when every workload it waits for has
ended, and all its members run at the same time, holding one concurrency slot
between them — a consumer never waits for a slot its own producer needs.

``cancel()`` (SIGINT/SIGTERM, quitting the TUI) cancels every running workload,
waits for each to clean up (child processes are killed), and ends the run with
status ``Interrupted``. ``cancel_workload(name)`` (``x`` in ``gxo ui``) cancels one
workload the same way; the rest of the run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import tempfile
import time
import types
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Collection, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gxo.config.loader import LoadedPlaybook
from gxo.config.variables import render_playbook_vars
from gxo.engine.confine import Confinement, PathResolver
from gxo.engine.context import RunContext, Status, WorkloadState
from gxo.engine.dag import Pipeline, WorkloadGraph
from gxo.engine.events import EventBus, EventKind
from gxo.engine.instances import check_selection, missing_upstream, outside_views, scoped_shape
from gxo.engine.runner import WorkloadRunner, set_status, skip_for_check
from gxo.engine.signals import Announce, PauseRequest, Resolution, SignalBroker
from gxo.engine.streams import Channel, MergedReader, StreamWriter
from gxo.errors import GxoError, TemplateError
from gxo.state.store import Store
from gxo.template.engine import TemplateEngine
from gxo.template.limits import interrupted as _render_interrupted
from gxo.template.references import status_calls
from gxo.template.secrets import SecretRegistry, SecretStr

__all__ = ["Engine", "RunResult", "default_concurrency"]

STATS_INTERVAL = 0.25
# After an interruption, each always()/cancelled() workload gets this long to run.
INTERRUPT_GRACE = 30.0
WAIT_FOR_SIGNAL = "control:wait_for_signal"


@functools.cache
def default_concurrency() -> int:
    return (os.cpu_count() or 1) * 4


# Workspaces created and resolved lately: a daemon starts thousands of instances per
# second in one workspace, and mkdir + resolve cost 0.3-0.8 ms of system calls each.
# Checked again after WORKSPACE_RECHECK seconds (a directory removed meanwhile is
# created again).
WORKSPACE_RECHECK = 1.0
_WORKSPACES: dict[tuple[Path, int], tuple[Path, float]] = {}
# The same entries by the Engine's ``workspace`` argument (a daemon passes the same
# str or Path object per playbook: its hash is cached, no Path is built per instance).
_WORKSPACES_BY_ARG: dict[tuple[str | Path, int], tuple[Path, float]] = {}


def _prepared_workspace(path: Path, mode: int) -> Path:
    """``path`` created (with ``mode``) and resolved; cached for WORKSPACE_RECHECK s."""
    key = (path, mode)
    now = time.monotonic()
    cached = _WORKSPACES.get(key)
    if cached is not None and now - cached[1] < WORKSPACE_RECHECK:
        return cached[0]
    try:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
    except OSError as exc:
        raise GxoError(f"cannot create workspace {path}: {exc.strerror}") from None
    resolved = path.resolve()
    if len(_WORKSPACES) > 256:  # many workspaces (tests): start afresh
        _WORKSPACES.clear()
    _WORKSPACES[key] = (resolved, now)
    return resolved


_SHAPES: weakref.WeakKeyDictionary[WorkloadGraph, dict[tuple[str, ...], dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)


class _Plan:
    """The pipelines an instance run schedules: those with a member in the run.

    A pipeline outside the run would end at once (nothing of it runs), so a pipeline of
    the run waits for the nearest pipelines of the run upstream of it, through outside
    ones: the same order as scheduling every pipeline of the playbook, without a task per
    outside pipeline (a daemon's instance of one workload of a 1,000-workload playbook).
    """

    __slots__ = ("dependents", "deps", "order")

    def __init__(
        self,
        order: list[Pipeline],
        deps: dict[int, int],
        dependents: Mapping[int, Collection[int]],
    ) -> None:
        self.order = order
        self.deps = deps
        self.dependents = dependents

    @classmethod
    def build(cls, pipelines: list[Pipeline], inside: Mapping[str, Any]) -> _Plan:
        order = [p for p in pipelines if any(m in inside for m in p.members)]
        chosen = {p.index for p in order}
        nearest: dict[int, set[int]] = {}  # outside pipeline -> nearest chosen upstream

        def upstream(index: int) -> set[int]:
            found: set[int] = set()
            stack = list(pipelines[index].deps)
            seen: set[int] = set()
            while stack:
                d = stack.pop()
                if d in seen:
                    continue
                seen.add(d)
                if d in chosen:
                    found.add(d)
                elif d in nearest:
                    found |= nearest[d]
                else:
                    stack.extend(pipelines[d].deps)
            return found

        deps: dict[int, int] = {}
        dependents: dict[int, list[int]] = {i: [] for i in chosen}
        for p in order:
            ups = upstream(p.index)
            deps[p.index] = len(ups)
            for u in sorted(ups):
                dependents[u].append(p.index)
        return cls(order, deps, dependents)


@types.coroutine
def _next_step() -> Generator[None, None, None]:
    """Resume in the loop's next step: ``asyncio.sleep(0)`` without its coroutine."""
    yield


class _RunSlots(asyncio.Semaphore):
    """The run's concurrency limit: a pipeline takes a slot, loop iterations borrow."""

    def try_acquire(self) -> bool:
        """``acquire()`` without a coroutine, when it would not wait: True if taken."""
        # locked() without its generator: no slot, or waiters (even cancelled ones,
        # which acquire() then sorts out) -> False.
        if self._value <= 0 or self._waiters:
            return False
        self._value -= 1  # what acquire() does when the semaphore is not locked
        return True


class _Lazy(Mapping[str, Any]):
    """A mapping computed on first use."""

    def __init__(self, build: Callable[[], Mapping[str, Any]]) -> None:
        self._build: Callable[[], Mapping[str, Any]] | None = build
        self._data: Mapping[str, Any] = {}

    def _get(self) -> Mapping[str, Any]:
        if self._build is not None:
            self._data, self._build = self._build(), None
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


class _Index:
    """Per graph: each workload's position in the playbook, selections already checked."""

    __slots__ = ("checked", "positions")

    def __init__(self, workloads: list[Any]) -> None:
        self.positions = {w.name: i for i, w in enumerate(workloads)}
        self.checked: set[tuple[tuple[str, ...], bool]] = set()


_INDEXES: weakref.WeakKeyDictionary[WorkloadGraph, _Index] = weakref.WeakKeyDictionary()


def _index(graph: WorkloadGraph, workloads: list[Any]) -> _Index:
    index = _INDEXES.get(graph)
    if index is None or len(index.positions) != len(workloads):
        index = _INDEXES[graph] = _Index(workloads)
    return index


_PLANS: weakref.WeakKeyDictionary[WorkloadGraph, dict[tuple[str, ...], _Plan]] = (
    weakref.WeakKeyDictionary()
)


class _PauseTap:
    """The run's signal broker, telling the engine when a workload pauses (and with
    which token) so its ``paused()`` hooks can start."""

    def __init__(
        self, inner: SignalBroker, on_pause: Callable[[PauseRequest, Mapping[str, Any]], None]
    ) -> None:
        self.inner = inner
        self.on_pause = on_pause

    def __getattr__(self, name: str) -> Any:  # the broker's own API (QueueBroker.pending)
        return getattr(self.inner, name)

    async def wait(self, request: PauseRequest, announce: Announce) -> Resolution:
        def tapped(**data: Any) -> None:
            announce(**data)
            self.on_pause(request, data)

        return await self.inner.wait(request, tapped)


_HOOKS: weakref.WeakKeyDictionary[WorkloadGraph, dict[str, list[str]]] = weakref.WeakKeyDictionary()


def _all_pause_hooks(graph: WorkloadGraph, workloads: list[Any]) -> dict[str, list[str]]:
    """Every ``paused()`` hook of a playbook, by the ``control:wait_for_signal`` it waits for."""
    candidates = [w for w in workloads if w.when is not None and "paused" in _status_calls(w.when)]
    if not candidates:  # most playbooks: no O(playbook) map of modules
        return {}
    modules = {w.name: w.process.module for w in workloads}
    of = graph.pipeline_of
    hooks: dict[str, list[str]] = {}
    for w in candidates:
        if len(graph.pipelines[of[w.name]].members) != 1:
            continue
        for dep in graph.upstream[w.name]:
            if modules.get(dep) == WAIT_FOR_SIGNAL and of[dep] != of[w.name]:
                hooks.setdefault(dep, []).append(w.name)
    return hooks


def _status_calls(when: Any) -> frozenset[str]:
    if not isinstance(when, str) or "(" not in when:
        return frozenset()
    return status_calls(when)


def _was_cancelled(state: WorkloadState) -> bool:
    if state.status == Status.FAILED:
        return (state.error or "").startswith("cancelled")
    return state.status == Status.SKIPPED and (
        state.reason == "run interrupted" or (state.reason or "").startswith(DEPENDENCY_CANCELLED)
    )


_FAILED = Status.FAILED  # a global: ``Status.X`` costs ~10x more (read per workload)
DEPENDENCY_CANCELLED = "dependency cancelled"  # skipped: a dependency was cancelled


class RunStatus:
    COMPLETED = "Completed"
    FAILED = "Failed"
    INTERRUPTED = "Interrupted"


@dataclass(repr=False)
class RunResult:
    """The outcome of a run."""

    playbook: str
    run_id: str
    status: str
    started_at: datetime
    duration_ms: float
    states: dict[str, WorkloadState]
    warnings: list[str] = field(default_factory=list)
    secrets: SecretRegistry | None = None
    check: bool = False  # gxo run --check (docs/check-mode.md)

    def __repr__(self) -> str:
        # Kept O(1): at exit, asyncio.run (3.11) reprs the main task's result while
        # checking the SIGINT handler; a full dataclass repr of 10,000 workload
        # states cost over a second there.
        return (
            f"<RunResult {self.playbook} {self.run_id} {self.status} {len(self.states)} workloads>"
        )

    @property
    def exit_code(self) -> int:
        return {RunStatus.COMPLETED: 0, RunStatus.FAILED: 1, RunStatus.INTERRUPTED: 130}[
            self.status
        ]

    def report(self) -> dict[str, Any]:
        from gxo.engine.report import build_report

        return build_report(self)


class Engine:
    """Runs one playbook once. Create a new Engine for each run."""

    def __init__(
        self,
        loaded: LoadedPlaybook,
        *,
        extra_vars: Mapping[str, Any] | None = None,
        concurrency: int | None = None,
        workspace: str | Path | Confinement | None = None,
        run_id: str | None = None,
        store: Store | None = None,
        bus: EventBus | None = None,
        secrets: SecretRegistry | None = None,
        resume_payload: Any = None,
        only: set[str] | None = None,
        prior_states: Mapping[str, WorkloadState] | None = None,
        initial_results: Mapping[str, Any] | None = None,
        results_store: Store | None = None,
        allow_lifecycles: bool = False,
        gxo_extra: Mapping[str, Any] | None = None,
        stream_taps: Callable[[str], list[Channel]] | None = None,
        signals: SignalBroker | None = None,
        check: bool = False,
        diff: bool = False,
    ) -> None:
        """``only`` alone (the REPL's ``:run``): the others stay in the run as Skipped
        "not selected" (or keep their ``prior_states`` outcome).

        ``only`` with ``initial_results`` (a daemon instance, see
        :mod:`gxo.engine.instances`; pass ``{}`` when nothing is upstream): the run *is*
        ``only`` — the others are neither run, reported nor announced. Templates read
        upstream register keys from ``initial_results`` (the run's own store wins), and
        ``_gxo.workloads.X`` of an outside workload reads ``Completed`` when X's register
        key has a value (in the store or ``initial_results``: it ran in an earlier run),
        else ``Pending`` (no result, or X registers nothing). A
        dependency outside the run counts as satisfied, except that a workload whose
        templates read the register key of an outside workload that has no result
        fails with an error saying so (rather than an undefined-name error).

        ``results_store``: where registered results go (the daemon's persistent store);
        it replaces ``store``. ``allow_lifecycles``: run non-``run_once`` workloads
        (their module runs once; restarts are the caller's business); without it the
        engine refuses them. ``gxo_extra``: more names under ``_gxo`` (a daemon passes
        ``{"event": ...}`` to an event_driven instance); the built-in names win.
        """
        self.loaded = loaded
        self.gxo_extra = dict(gxo_extra or {})
        # _gxo.playbook_dir / _gxo.playbook.{name,path} (gxo/config/select.py).
        from gxo.config.select import playbook_info

        for info_key, value in playbook_info(loaded).items():
            self.gxo_extra.setdefault(info_key, value)
        # stream_taps(producer): more links the producer writes to, read outside the run
        # (the daemon's workload: event sources, gxo/daemon/sources/workload.py).
        self.stream_taps = stream_taps
        self.playbook = loaded.playbook
        graph: WorkloadGraph | None = loaded.graph
        if graph is None:
            from gxo.config.validate import validate_playbook

            graph = validate_playbook(loaded)
        if not graph.pipelines:
            graph.build_pipelines()
        self.graph = graph
        self.extra_vars = dict(extra_vars or {})
        self.concurrency = max(1, concurrency or default_concurrency())
        self.workspace_arg = workspace
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.store = results_store if results_store is not None else store
        self.bus = bus or EventBus()
        self.secrets = secrets if secrets is not None else SecretRegistry()  # an empty one is falsy
        self.resume_payload = resume_payload
        self.signals = signals  # who answers control:wait_for_signal (gxo.engine.signals)
        # gxo run --check / --diff (docs/check-mode.md): passed on to the RunContext
        self.check = check
        self.diff = diff
        self.only = only
        self.initial_results = dict(initial_results) if initial_results is not None else None
        # An instance run leaves the unselected workloads out altogether.
        self.scoped = only is not None and initial_results is not None
        inside = only if self.scoped else None
        if inside is not None:  # an instance: O(its size), not O(the playbook's)
            index = _index(self.graph, self.playbook.workloads)
            key = (tuple(sorted(inside)), allow_lifecycles)
            if key not in index.checked:
                check_selection(self.playbook, only, allow_lifecycles)
                index.checked.add(key)
            workloads = self.playbook.workloads
            positions = sorted(index.positions[name] for name in inside)
            self.states: dict[str, WorkloadState] = {
                workloads[i].name: WorkloadState(workloads[i]) for i in positions
            }
        else:
            check_selection(self.playbook, only, allow_lifecycles)
            self.states = {w.name: WorkloadState(w) for w in self.playbook.workloads}
        # With ``only``: a workload not selected keeps its outcome from an earlier run
        # (the REPL's ``:run``), so ``_gxo.workloads.X`` and dependency checks see it.
        for name, prior in (prior_states or {}).items():
            if (
                only is not None
                and name not in only
                and name in self.states
                and prior.status.terminal
            ):
                self.states[name] = prior
        self._tasks: set[asyncio.Task[None]] = set()
        self._cancelled = False
        self._interrupts = 0  # cancel() calls: a second one ends the always() phase too
        # paused() hooks: waiting workload -> the hooks started when it pauses (and the
        # pause each saw, for _gxo.pause); see _pause_hooks.
        self._hooks: dict[str, list[str]] = {}
        self._pauses: dict[str, dict[str, Any]] = {}
        self._release_hooks: Callable[[str], None] | None = None
        self._failed_upstream: set[str] = set()  # skipped because something upstream failed
        # cancel_workload(): workload -> its error ("cancelled by the user"); the runner
        # reads it when the cancellation reaches the workload.
        self._user_cancels: dict[str, str] = {}
        self._members: dict[str, asyncio.Task[None]] = {}  # members of multi-member pipelines
        self._done: asyncio.Event | None = None
        self._all_channels: list[Channel] = []
        self._readers: dict[str, MergedReader] = {}
        self._writers: dict[str, StreamWriter] = {}
        self.run_context: RunContext | None = None

    # -- public --------------------------------------------------------------------

    def cancel(self) -> None:
        """Interrupt the run: running workloads are cancelled and cleaned up."""
        self._cancelled = True
        self._interrupts += 1
        for task in list(self._tasks):
            task.cancel()
        if self._done is not None:
            self._done.set()

    def cancel_workload(self, name: str, reason: str = "cancelled by the user") -> bool:
        """Cancel one workload of the run: a running one's task is cancelled (its child
        processes are killed, as on an interruption), a pending one never starts. It
        ends ``Failed`` with the error ``reason`` (prefixed ``cancelled: `` unless it
        starts with "cancelled"), which status functions and summaries count as
        cancelled: its dependents are skipped ("dependency cancelled") unless their
        ``when`` calls a status function (``cancelled()``, ``always()``), and
        independent workloads go on. False when there is nothing to cancel (it ended
        already, or the whole run is being interrupted); KeyError for an unknown name.
        """
        state = self.states[name]
        if self._cancelled or state.status.terminal or name in self._user_cancels:
            return False
        if self.only is not None and name not in self.only:
            return False  # not part of this run (kept from an earlier one)
        error = reason if reason.startswith("cancelled") else f"cancelled: {reason}"
        if state.status == Status.PENDING:
            self._user_cancels[name] = error
            state.error = error  # _run_member ends it when its turn comes, without running
            set_status(self.bus, state, Status.FAILED)
            return True
        task = self._members.get(name) or next(
            (t for t in self._tasks if t.get_name() == f"gxo:{name}"), None
        )
        if task is None or task.done():
            return False
        self._user_cancels[name] = error
        task.cancel()
        return True

    async def run(self) -> RunResult:
        started_wall = datetime.now(UTC)
        started = time.monotonic()
        warnings = list(self.loaded.warnings)
        workspace, temp_dir = self._workspace()
        templates = TemplateEngine(self.secrets)
        status = RunStatus.COMPLETED
        stats_task: asyncio.Task[None] | None = None
        try:
            if self.bus.wants(EventKind.RUN_STARTED):  # its edges and levels cost O(graph)
                self.bus.emit(
                    EventKind.RUN_STARTED,
                    playbook=self.playbook.name,
                    run_id=self.run_id,
                    workspace=str(workspace),
                    workloads=list(self.states),
                    **self._shape(),
                )
            variables = self._render_vars(templates, workspace)
            self._hooks = self._pause_hooks()
            signals = self.signals
            if signals is not None and self._hooks:
                signals = _PauseTap(signals, self._paused)
            run = RunContext(
                run_id=self.run_id,
                workspace=workspace,
                variables=variables,
                states=self.states,
                store=self.store,
                templates=templates,
                bus=self.bus,
                access_mode=self.playbook.state_policy.access_mode,
                resume_payload=self.resume_payload,
                initial_results=self.initial_results,
                outside=self._outside_views() if self.scoped else None,
                gxo_extra=self.gxo_extra,
                signals=signals,
                paths=self._paths(workspace),
                check=self.check,
                diff=self.diff,
            )
            self.run_context = run
            self._connect_streams()
            if self._all_channels and self.bus.wants(EventKind.STREAM_STATS):
                stats_task = asyncio.create_task(self._stats_loop())
            await self._schedule(WorkloadRunner(run))
        except TemplateError as exc:  # playbook vars failed to render
            status = RunStatus.FAILED
            param = exc.param_path or ""
            if exc.location is None and param.startswith("vars."):
                exc.location = self.loaded.location(("vars", param.split(".")[1]))
            warnings.append(str(exc))
            self._finish_unstarted("run aborted: playbook vars failed to render")
        except asyncio.CancelledError:
            self.cancel()
            await self._await_tasks()
            self._mark_interrupted()
            raise
        finally:
            if stats_task is not None:
                stats_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stats_task
                self._emit_stats()
            if self.run_context is not None:  # end-of-run cleanups, on every path
                warnings.extend(await self.run_context.run_deferred())
            if temp_dir is not None:
                shutil.rmtree(temp_dir, ignore_errors=True)
        if self._cancelled:
            status = RunStatus.INTERRUPTED
        elif any(s.status == _FAILED and not s.ignored for s in self.states.values()):
            status = RunStatus.FAILED
        duration_ms = round((time.monotonic() - started) * 1000, 3)
        self.bus.emit(
            EventKind.RUN_FINISHED, status=status, duration_ms=duration_ms, run_id=self.run_id
        )
        self.bus.close()
        return RunResult(
            self.playbook.name,
            self.run_id,
            status,
            started_wall,
            duration_ms,
            self.states,
            warnings,
            self.secrets,
            check=self.check,
        )

    # -- setup -------------------------------------------------------------------------

    def _workspace(self) -> tuple[Path, Path | None]:
        arg = self.workspace_arg
        confined = isinstance(arg, Confinement)  # a confined workspace is private: 0700
        if isinstance(arg, Confinement):
            arg = arg.root
        if arg is not None and str(arg) == "temp":
            temp = Path(tempfile.mkdtemp(prefix="gxo-workspace-"))
            return temp, temp
        mode = 0o700 if confined else 0o777
        if arg is not None:  # the daemon's case: found by the argument, no Path made
            cached = _WORKSPACES_BY_ARG.get((arg, mode))
            if cached is not None and time.monotonic() - cached[1] < WORKSPACE_RECHECK:
                return cached[0], None
        path = Path(arg).expanduser() if arg is not None else Path.cwd()
        prepared = _prepared_workspace(path, mode)
        if arg is not None:
            if len(_WORKSPACES_BY_ARG) > 256:
                _WORKSPACES_BY_ARG.clear()
            _WORKSPACES_BY_ARG[(arg, mode)] = _WORKSPACES[(path, mode)]
        return prepared, None

    def _paths(self, workspace: Path) -> PathResolver | None:
        """The confined resolver when ``workspace`` was a :class:`Confinement`."""
        arg = self.workspace_arg
        if not isinstance(arg, Confinement):
            return None
        return PathResolver(workspace, confined=True, allow=arg.allow)

    def _render_vars(self, templates: TemplateEngine, workspace: Path) -> dict[str, Any]:
        """Playbook vars (templated values rendered in order) overlaid by -e overrides.

        They see ``_gxo`` as far as it is known before any workload runs (run_id,
        workspace, playbook_dir, playbook): ``data: "{{ _gxo.playbook_dir }}/data"``.
        """
        if not self.playbook.vars:  # nothing to render (a daemon's usual instance)
            return dict(self.extra_vars)
        gxo = {"run_id": self.run_id, "workspace": str(workspace), **self.gxo_extra}
        context = {**self.extra_vars, "_gxo": gxo}
        rendered, _ = render_playbook_vars(self.playbook.vars, context, templates)
        rendered.update(self.extra_vars)
        return rendered

    def _connect_streams(self) -> None:
        """One channel per stream link; readers and writers for the workloads that have links."""
        policy = self.playbook.channel_policy
        by_consumer: dict[str, list[Channel]] = {}
        # Every workload may get taps; else only producers with links (not O(playbook)).
        by_producer: dict[str, list[Channel]] = (
            {n: [] for n in self.states} if self.stream_taps is not None else {}
        )
        stream_deps = self.graph.stream_deps
        links = (
            ((c, stream_deps[c]) for c in self.states if stream_deps.get(c))
            if self.scoped  # an instance: its own workloads' links only
            else stream_deps.items()
        )
        for consumer, producers in links:
            if consumer not in self.states:
                continue
            for producer in producers:
                if producer not in self.states:
                    # Outside an instance: its stream is not replayed, the consumer reads none of it.
                    continue
                ch = Channel(producer, consumer, policy.buffer_size, policy.overflow_strategy)
                by_consumer.setdefault(consumer, []).append(ch)
                by_producer.setdefault(producer, []).append(ch)
                self._all_channels.append(ch)
        if self.stream_taps is not None:
            for name, chans in by_producer.items():
                chans.extend(self.stream_taps(name))
        # Only workloads with links get their own reader/writer up front; the others
        # get unconnected ones when they start (most workloads of most playbooks).
        self._readers = {n: MergedReader(n, chans) for n, chans in by_consumer.items()}
        self._writers = {n: StreamWriter(n, chans) for n, chans in by_producer.items() if chans}

    # -- scheduling --------------------------------------------------------------------

    async def _schedule(self, runner: WorkloadRunner) -> None:
        pipelines = self.graph.pipelines
        dependents: Mapping[int, Collection[int]] | list[set[int]]
        waiting: dict[int, int] | list[int]  # by pipeline index
        if self.scoped:  # an instance: only its own pipelines, not the whole playbook's
            plan = self._plan()
            order, dependents = plan.order, plan.dependents
            waiting = dict(plan.deps)
        else:  # every pipeline: lists (a pipeline's index is its position)
            order = pipelines
            waiting = [len(p.deps) for p in pipelines]
            dependents = [p.dependents for p in pipelines]
        remaining = len(order)
        done = self._done = asyncio.Event()
        semaphore = _RunSlots(self.concurrency)
        runner.slots = semaphore  # loop iterations beyond the first borrow from it
        runner.cancel_reasons = self._user_cancels
        if remaining == 0:
            return

        # paused() hooks start when the workload they wait for pauses, not when it ends:
        # (waiting pipeline, hook pipeline) pairs, each released once, whichever first.
        of = self.graph.pipeline_of
        early = {(of[d], of[h]) for d, hs in self._hooks.items() for h in hs}
        released: set[tuple[int, int]] = set()
        slot_free = {h for _, h in early}  # a paused workload may hold the only slot

        def release(pair: tuple[int, int]) -> None:
            if pair in released:
                return
            released.add(pair)
            waiting[pair[1]] -= 1
            if waiting[pair[1]] == 0:
                launch(pipelines[pair[1]])

        def on_pause(name: str) -> None:
            if not self._cancelled:
                for hook in self._hooks.get(name, ()):
                    release((of[name], of[hook]))

        self._release_hooks = on_pause

        # Ready pipelines beyond the concurrency limit wait here, not as tasks blocked
        # on the semaphore (each such task cost a future and two more loop steps:
        # ~10 % of the engine's time per workload). FIFO, as the semaphore's waiters
        # were; the semaphore still enforces the limit (loop iterations borrow from it).
        queued: deque[Pipeline] = deque()
        running: dict[int, asyncio.Task[None]] = {}  # pipeline index -> its task
        active = 0  # started pipelines that take a slot and have not finished
        # While a pipeline's task hands its slot and dependents on: the last pipeline
        # it makes ready, which that task runs next (after a loop step, as a new task
        # would start) instead of a new task for it; the others get tasks, in order.
        handoff: list[Pipeline] | None = None

        def launch(pipe: Pipeline) -> None:
            nonlocal active
            if pipe.index not in slot_free:
                if active >= self.concurrency:
                    queued.append(pipe)
                    return
                active += 1
            if handoff is not None:
                if handoff:  # an earlier one: started first, as before
                    start(handoff.pop())
                handoff.append(pipe)
                return
            start(pipe)

        def start(pipe: Pipeline) -> None:
            task = asyncio.create_task(run_pipeline(pipe), name=f"gxo:{pipe.members[0]}")
            self._tasks.add(task)
            running[pipe.index] = task

        async def run_pipeline(pipe: Pipeline) -> None:
            nonlocal remaining, active, handoff
            try:
                while True:
                    ended = False
                    try:
                        # The slot, taken without a coroutine when one is free (`async
                        # with` costs three); loop iterations borrow from the same semaphore.
                        slot = pipe.index not in slot_free
                        if slot and not semaphore.try_acquire():
                            await semaphore.acquire()
                        try:
                            if len(pipe.members) > 1:
                                await self._run_members(runner, pipe.members)
                            elif (member := self._member(runner, pipe.members[0])) is not None:
                                # _run_member, inlined: one coroutine level less
                                state, reader, writer, calls = member
                                try:
                                    if calls:
                                        await self._run_with_status(
                                            runner, state, reader, writer, calls
                                        )
                                    else:
                                        await runner.execute(state, reader, writer)
                                except asyncio.CancelledError:
                                    if not self._cancelled_alone(pipe.members[0]):
                                        raise
                        finally:
                            if slot:
                                semaphore.release()
                        ended = True
                        if not self._cancelled and _render_interrupted():
                            # A signal stopped a CPU-bound render, and the workload ended
                            # before the blocked loop could run its handler: the run is
                            # interrupted all the same (exit 130), nothing more starts.
                            self.cancel()
                    finally:
                        remaining -= 1
                        if remaining == 0:
                            done.set()
                        if ended and not self._cancelled:
                            handoff = []
                        if pipe.index not in slot_free:
                            active -= 1
                            if not self._cancelled:  # the freed slot goes to the longest waiting
                                while queued and active < self.concurrency:
                                    launch(queued.popleft())
                    if self._cancelled:
                        handoff = None
                        return
                    for dep_index in dependents[pipe.index]:
                        if (pipe.index, dep_index) in early:
                            release((pipe.index, dep_index))
                            continue
                        waiting[dep_index] -= 1
                        if waiting[dep_index] == 0:
                            launch(pipelines[dep_index])
                    following, handoff = handoff, None
                    if not following:
                        return
                    task = running.pop(pipe.index)
                    pipe = following[0]
                    running[pipe.index] = task
                    task.set_name(f"gxo:{pipe.members[0]}")  # cancel_workload finds it so
                    await _next_step()  # as a new task would: after those started before
            finally:  # the task leaves self._tasks as it ends (no done callback)
                handoff = None  # in case the hand-over itself raised
                self._tasks.discard(running.pop(pipe.index))

        for pipe in order:
            if waiting[pipe.index] == 0:
                launch(pipe)
        await done.wait()
        await self._await_tasks()
        self._release_hooks = None
        # launch and run_pipeline refer to each other (and to self): without this the
        # whole run is cyclic garbage, left to the cycle collector (a daemon's cost).
        launch = start = run_pipeline = release = None  # type: ignore[assignment]  # noqa: F811
        if self._cancelled:
            await self._after_interrupt(runner)
            self._mark_interrupted()

    async def _run_members(self, runner: WorkloadRunner, names: list[str]) -> None:
        """The members of a pipeline joined by streams, each in its own task, together."""
        members = [asyncio.create_task(self._run_member(runner, m)) for m in names]
        self._members.update(zip(names, members, strict=True))
        try:
            await asyncio.gather(*members)
        except BaseException:
            for m in members:
                m.cancel()
            await asyncio.gather(*members, return_exceptions=True)
            raise
        finally:
            for member in names:
                self._members.pop(member, None)

    async def _run_member(self, runner: WorkloadRunner, name: str) -> None:
        member = self._member(runner, name)
        if member is None:
            return
        state, reader, writer, calls = member
        try:
            if calls:
                await self._run_with_status(runner, state, reader, writer, calls)
            else:
                await runner.execute(state, reader, writer)
        except asyncio.CancelledError:
            if not self._cancelled_alone(name):
                raise

    def _member(
        self, runner: WorkloadRunner, name: str
    ) -> tuple[WorkloadState, MergedReader, StreamWriter, frozenset[str] | None] | None:
        """What ``name`` runs with: its state, input, output and the status functions its
        ``when`` calls (then its ``when`` decides, whatever its dependencies' outcome).
        None when it ended here without running (or is outside the run)."""
        state = self.states.get(name)
        reader = self._readers.get(name) or MergedReader(name)
        writer = self._writers.get(name) or StreamWriter(name)
        if state is None:  # outside an instance run: nothing to run, report or announce
            reader.abandon()
            writer.close()
            return None
        if name in self._user_cancels:  # cancelled while pending (cancel_workload)
            reader.abandon()
            writer.close(failed=True)
            return None
        if self.only is not None and name not in self.only:
            if not state.status.terminal:  # else: kept from an earlier run (prior_states)
                runner.skip(state, "not selected")
            reader.abandon()
            writer.close()
            return None
        if self.check and self._skipped_for_check(runner, state, reader, writer):
            return None
        when = state.workload.when
        calls = _status_calls(when) if when is not None else None
        if calls:
            return state, reader, writer, calls
        for dep in self.graph.upstream[name]:
            dep_state = self.states.get(dep)
            if dep_state is None:
                problem = self._missing_upstream(name, dep)
                if problem is not None:
                    state.error = problem
                    set_status(self.bus, state, Status.FAILED)
                    reader.abandon()
                    writer.close(failed=not state.workload.ignore_errors)
                    return None
                continue
            if not dep_state.satisfies_dependents:
                if _was_cancelled(dep_state):  # not a failure: failure() stays false below
                    reason = f"{DEPENDENCY_CANCELLED}: '{dep}' was cancelled"
                else:
                    reason = f"dependency failed: '{dep}' is {dep_state.status.value}"
                    self._failed_upstream.add(name)
                runner.skip(state, reason, blocked=True)
                reader.abandon()
                writer.close(failed=True)
                return None
        return state, reader, writer, None

    def _cancelled_alone(self, name: str) -> bool:
        """In ``name``'s task, on a CancelledError: True when cancel_workload() cancelled
        it alone (the task goes on: the run does), False to let the cancellation go up."""
        if self._cancelled or name not in self._user_cancels:
            return False
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return True

    def _skipped_for_check(
        self, runner: WorkloadRunner, state: WorkloadState, reader: Any, writer: Any
    ) -> bool:
        """gxo run --check: skip ``state`` when something it needs was not run (whatever
        its ``when``: there is no result to give it). docs/check-mode.md"""
        for dep in self.graph.upstream[state.name]:
            dep_state = self.states.get(dep)
            if dep_state is not None and dep_state.check_outcome == "not run":
                skip_for_check(runner, state, dep)
                reader.abandon()
                writer.close(failed=True)
                return True
        return False

    # -- status functions (when: always(), failure(), ...) -------------------------------

    async def _run_with_status(
        self,
        runner: WorkloadRunner,
        state: WorkloadState,
        reader: MergedReader,
        writer: StreamWriter,
        calls: frozenset[str],
    ) -> None:
        """Run a workload whose ``when`` calls a status function: no dependency-failed
        skip; its ``when`` sees the functions bound to its own dependencies."""
        name = state.name
        deps: list[WorkloadState] = []
        for dep in self.graph.upstream[name]:
            dep_state = self.states.get(dep)
            if dep_state is None:
                problem = self._missing_upstream(name, dep)
                if problem is not None:
                    state.error = problem
                    set_status(self.bus, state, Status.FAILED)
                    reader.abandon()
                    writer.close(failed=not state.workload.ignore_errors)
                    return
                continue
            deps.append(dep_state)
        names = self._status_functions(deps)
        local: dict[str, Any] | None = None
        if "paused" in calls and self.run_context is not None:
            pause = next((self._pauses[d.name] for d in deps if d.name in self._pauses), None)
            local = {"_gxo": {**self.run_context.gxo, "pause": pause}}
        failed = any(self._is_failure(d) for d in deps)
        if failed:
            self._failed_upstream.add(name)  # if its when is false, it is blocked
        await runner.execute(
            state,
            reader,
            writer,
            when_names=names,
            local=local,
            blocked_if_false=failed
            or any(d.status.terminal and not d.satisfies_dependents for d in deps),
        )
        if state.status != Status.SKIPPED or not state.blocked:
            self._failed_upstream.discard(name)

    def _status_functions(self, deps: list[WorkloadState]) -> dict[str, Any]:
        def success() -> bool:
            return not self._cancelled and all(d.satisfies_dependents for d in deps)

        def failure() -> bool:
            return any(self._is_failure(d) for d in deps)

        def always() -> bool:
            return True

        def cancelled() -> bool:
            return self._cancelled or any(_was_cancelled(d) for d in deps)

        def paused() -> bool:
            return any(d.name in self._pauses for d in deps)

        return {
            "success": success,
            "failure": failure,
            "always": always,
            "cancelled": cancelled,
            "paused": paused,
        }

    def _is_failure(self, dep: WorkloadState) -> bool:
        """A dependency that failed (not ignored, not cancelled), or was skipped because
        something upstream of it failed."""
        if dep.status == Status.FAILED:
            return not dep.ignored and not _was_cancelled(dep)
        return (
            dep.status == Status.SKIPPED
            and dep.blocked
            and (
                dep.name in self._failed_upstream
                or (dep.reason or "").startswith("dependency failed")  # a stream's producer
            )
        )

    def _pause_hooks(self) -> dict[str, list[str]]:
        """Waiting workload -> the ``paused()`` hooks downstream of it in this run
        (single-member pipelines, the waiting one in another pipeline)."""
        every = _HOOKS.get(self.graph)
        if every is None:  # once per graph: a daemon starts many instances of one
            every = _HOOKS[self.graph] = _all_pause_hooks(self.graph, self.playbook.workloads)
        if not every:
            return {}
        hooks: dict[str, list[str]] = {}
        for dep, names in every.items():
            inside = [h for h in names if h in self.states]
            if dep in self.states and inside:
                hooks[dep] = inside
        return hooks

    def _paused(self, request: PauseRequest, data: Mapping[str, Any]) -> None:
        """A waiting workload is now Paused: its ``paused()`` hooks may start."""
        token = data.get("token") or None
        if token:  # usable in params, redacted in every output
            self.secrets.add(token)
            token = SecretStr(token)
        expires = None
        if request.timeout is not None:
            from datetime import timedelta

            expires = (datetime.now(UTC) + timedelta(seconds=request.timeout)).isoformat(
                timespec="milliseconds"
            )
        self._pauses[request.workload] = {
            "workload": request.workload,
            "run_id": request.run_id,
            "prompt": request.prompt,
            "expires_at": expires,
            "token_id": data.get("token_id"),
            "token": token,
        }
        if self._release_hooks is not None:
            self._release_hooks(request.workload)

    async def _after_interrupt(self, runner: WorkloadRunner) -> None:
        """After an interruption: the workloads whose ``when`` calls ``always()`` or
        ``cancelled()`` still run (cleanup, notify), in dependency order, each within
        INTERRUPT_GRACE seconds; a second interruption ends this phase too."""
        hooks = {
            n
            for n, s in self.states.items()
            if s.status == Status.PENDING
            and {"always", "cancelled"} & _status_calls(s.workload.when)
            and (self.only is None or n in self.only)
        }
        if not hooks:
            return
        from gxo.template.limits import clear_interrupt

        clear_interrupt()  # the signal's flag would fail every render of the hooks
        interrupts = self._interrupts
        progress = True
        while progress and self._interrupts == interrupts:
            progress = False
            for name, state in self.states.items():
                if state.status != Status.PENDING:
                    continue
                ups = [self.states[d] for d in self.graph.upstream[name] if d in self.states]
                if any(u.status == Status.PENDING for u in ups):
                    continue  # decided on a later pass
                progress = True
                if name not in hooks:
                    state.reason, state.blocked = "run interrupted", True
                    set_status(self.bus, state, Status.SKIPPED)
                    continue
                task = asyncio.create_task(self._run_hook(runner, name))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                await asyncio.gather(task, return_exceptions=True)
                if self._interrupts != interrupts:
                    break

    async def _run_hook(self, runner: WorkloadRunner, name: str) -> None:
        state = self.states[name]
        try:
            async with asyncio.timeout(INTERRUPT_GRACE):
                await self._run_member(runner, name)
        except TimeoutError:
            state.error = f"cancelled: still running {INTERRUPT_GRACE:g}s after the interruption"
            set_status(self.bus, state, Status.FAILED)

    # -- instance runs -------------------------------------------------------------------

    def _shape(self) -> dict[str, Any]:
        """Edges and levels for RUN_STARTED, limited to the workloads of this run."""
        if not self.scoped:
            return {"edges": [list(e) for e in self.graph.edges()], "levels": self.graph.levels()}
        # A daemon starts the same instance shape again and again: computed once per
        # graph and selection (listeners only read event data).
        shapes = _SHAPES.get(self.graph)
        if shapes is None:
            shapes = _SHAPES[self.graph] = {}
        key = tuple(self.states)
        shape = shapes.get(key)
        if shape is None:
            shape = shapes[key] = scoped_shape(self.graph, self.states)
        return shape

    def _outside_views(self) -> Mapping[str, dict[str, Any]]:
        # Built on first use: most instances never read ``_gxo.workloads`` of a workload
        # outside them, and building them all costs O(playbook) per instance.
        # Not through self: the engine holds this view, and a lambda on self would make
        # every run a reference cycle.
        playbook, states, store, initial = (
            self.playbook,
            self.states,
            self.store,
            self.initial_results,
        )
        return _Lazy(lambda: outside_views(playbook, states, store, initial))

    def _plan(self) -> _Plan:
        """The pipelines of an instance run and their order (cached per graph and run)."""
        plans = _PLANS.get(self.graph)
        if plans is None:
            plans = _PLANS[self.graph] = {}
        key = tuple(self.states)
        plan = plans.get(key)
        if plan is None:
            plan = plans[key] = _Plan.build(self.graph.pipelines, self.states)
        return plan

    def _missing_upstream(self, name: str, dep: str) -> str | None:
        return missing_upstream(
            self.playbook, self.graph, name, dep, self.store, self.initial_results
        )

    async def _await_tasks(self) -> None:
        while self._tasks:
            tasks = list(self._tasks)
            await asyncio.gather(*tasks, return_exceptions=True)
            # A pipeline's task leaves the set itself, unless cancelled before it ran.
            self._tasks.difference_update(tasks)

    def _mark_interrupted(self) -> None:
        for state in self.states.values():
            if state.status == Status.RUNNING:
                state.error = state.error or "cancelled: the run was interrupted"
                set_status(self.bus, state, Status.FAILED)
        self._finish_unstarted("run interrupted")

    def _finish_unstarted(self, reason: str) -> None:
        """Workloads that never started end Skipped (blocked), announced like any other."""
        for state in self.states.values():
            if state.status == Status.PENDING:
                state.reason, state.blocked = reason, True
                set_status(self.bus, state, Status.SKIPPED)

    # -- stream statistics -------------------------------------------------------------

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            self._emit_stats()

    def _emit_stats(self) -> None:
        if self._all_channels:
            self.bus.emit(EventKind.STREAM_STATS, links=[ch.stats() for ch in self._all_channels])
