"""Run-time state shared by the engine, and the context a module performs in."""

from __future__ import annotations

import asyncio
import time
from collections import ChainMap, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gxo.config.models import AccessMode, Workload
from gxo.engine.confine import PathResolver
from gxo.engine.events import EventBus, EventKind
from gxo.engine.signals import SignalBroker
from gxo.engine.streams import MergedReader, StreamWriter
from gxo.errors import ModuleError
from gxo.state.store import MemoryStore, Store, copy_record
from gxo.template.engine import TemplateEngine

if TYPE_CHECKING:
    from gxo.engine.connections import ConnectionManager
    from gxo.engine.kvstore import KVStores

__all__ = ["ModuleContext", "RunContext", "Status", "WorkloadState"]

T = TypeVar("T")
LOG_TAIL = 1000  # log lines kept per workload for the report, TUI and REPL


class Status(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    # daemon lifecycles
    PAUSED = "Paused"
    RESTARTING = "Restarting"
    STOPPED = "Stopped"

    # Hashed as the str it equals (Enum hashes the member's name, in Python): a status
    # in a set or as a dict key costs a C call, and equal values hash alike.
    __hash__ = str.__hash__

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.SKIPPED, Status.STOPPED})
_DEEP_COPY = AccessMode.deep_copy
# Members as module globals: ``Status.X`` costs a metaclass attribute lookup (~10x a
# global) and the engine reads them several times per workload.
_COMPLETED, _FAILED, _SKIPPED = Status.COMPLETED, Status.FAILED, Status.SKIPPED


@dataclass(repr=False)
class WorkloadState:
    """What the engine knows about one workload during and after a run."""

    workload: Workload
    status: Status = Status.PENDING
    reason: str | None = None  # why Skipped
    blocked: bool = False  # Skipped because something upstream failed (propagates)
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    summary: Any = None
    records_in: int = 0
    records_out: int = 0
    records_dropped: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    iterations: list[dict[str, Any]] = field(default_factory=list)
    rendered_params: Any = None
    # gxo run --check: "ran" (read-only, run for real), "predicted" or "not run"
    check_outcome: str | None = None
    diffs: list[str] = field(default_factory=list)  # --diff: unified diffs, redacted
    _logs: deque[tuple[float, str, str]] | None = field(default=None, repr=False)

    @property
    def logs(self) -> deque[tuple[float, str, str]]:
        """The last LOG_TAIL ``(time, stream, line)`` entries (created on first use)."""
        if self._logs is None:
            self._logs = deque(maxlen=LOG_TAIL)
        return self._logs

    @property
    def name(self) -> str:
        return self.workload.name

    def __repr__(self) -> str:
        # Kept O(1): asyncio (3.11) reprs a finished main task's result at exit.
        return f"<WorkloadState {self.workload.name} {self.status.value}>"

    @property
    def duration_ms(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else time.monotonic()
        # Milliseconds to 3 decimals: µs rounded to an integer, then scaled (round(x, 3)
        # of a float costs ~10x, through decimal conversion; read twice per workload).
        return round((end - self.started_at) * 1_000_000) / 1000

    @property
    def ignored(self) -> bool:
        """Failed, but under ``ignore_errors``: dependents run and the run still succeeds."""
        return self.status == Status.FAILED and self.workload.ignore_errors

    @property
    def satisfies_dependents(self) -> bool:
        """Whether workloads that depend on this one may run."""
        status = self.status
        if status is _COMPLETED:
            return True
        if status is _SKIPPED:
            return not self.blocked
        if status is _FAILED:
            return self.workload.ignore_errors
        return False

    def public(self) -> dict[str, Any]:
        """The view templates get as ``_gxo.workloads.<name>``."""
        return {
            "status": self.status.value,
            "reason": self.reason,
            "error": self.error,
            "attempts": self.attempts,
            "summary": self.summary,
            "records_in": self.records_in,
            "records_out": self.records_out,
        }


# The secret NAMEs the templates of a run's workloads name (params, when, loop), by
# the workload models of the run: a daemon starts thousands of runs of the same models.
_SECRET_NAMES: dict[tuple[int, ...], tuple[tuple[Workload, ...], list[str]]] = {}
_SECRET_NAMES_MAX = 4096


def _secret_names_of(states: Mapping[str, WorkloadState]) -> list[str]:
    """``SecretRegistry.preload_names`` of the workloads' templates, sorted (cached)."""
    workloads = tuple(s.workload for s in states.values())
    key = tuple(map(id, workloads))
    entry = _SECRET_NAMES.get(key)
    if entry is not None and all(a is b for a, b in zip(entry[0], workloads, strict=True)):
        return entry[1]
    from gxo.template.secrets import secret_names

    names = sorted(
        secret_names([(getattr(w.process, "params", None), w.when, w.loop) for w in workloads])
    )
    if len(_SECRET_NAMES) >= _SECRET_NAMES_MAX:
        _SECRET_NAMES.clear()
    _SECRET_NAMES[key] = (workloads, names)
    return names


class _WorkloadsView(Mapping[str, Any]):
    """``_gxo.workloads``: a live, read-only view (built per access, never stale).

    ``outside``: fixed views of workloads that are not part of this run (the
    upstream of a daemon instance), so ``_gxo.workloads.X`` still resolves.
    """

    def __init__(
        self, states: dict[str, WorkloadState], outside: Mapping[str, dict[str, Any]] | None = None
    ) -> None:
        self._states = states
        self._outside = outside if outside is not None else {}  # may be lazy: not len()

    def __getitem__(self, key: str) -> dict[str, Any]:
        state = self._states.get(key)
        if state is None:
            return dict(self._outside[key])
        return state.public()

    def __iter__(self) -> Iterator[str]:
        yield from self._states
        yield from (k for k in self._outside if k not in self._states)

    def __len__(self) -> int:
        return len(self._states) + sum(1 for k in self._outside if k not in self._states)


class RunContext:
    """Everything shared by the workloads of one run."""

    def __init__(
        self,
        *,
        run_id: str,
        workspace: Path,
        variables: dict[str, Any],
        states: dict[str, WorkloadState],
        store: Store | None = None,
        templates: TemplateEngine | None = None,
        bus: EventBus | None = None,
        access_mode: AccessMode = AccessMode.deep_copy,
        resume_payload: Any = None,
        initial_results: Mapping[str, Any] | None = None,
        outside: Mapping[str, dict[str, Any]] | None = None,
        gxo_extra: Mapping[str, Any] | None = None,
        signals: SignalBroker | None = None,
        paths: PathResolver | None = None,
        check: bool = False,
        diff: bool = False,
    ) -> None:
        self.run_id = run_id
        # gxo run --check: modules predict instead of changing anything (docs/check-mode.md);
        # --diff: modules that can describe a change as a diff do (ModuleContext.add_diff)
        self.check = check
        self.diff = diff
        # The one resolver of path params (gxo/engine/confine.py); confined or not.
        self.paths = paths if paths is not None else PathResolver(workspace)
        self.signals = signals
        self.workspace = workspace
        self.variables = variables
        self.states = states
        self.store: Store = store if store is not None else MemoryStore()
        self.templates = templates or TemplateEngine()
        self.secrets = self.templates.secrets
        if self.paths.confined:  # secret('file://...') stays inside the roots too
            self.secrets.confine_files(self.paths.contains, self.paths.describe_roots())
        # Where templates are rendered: params, when, loop (not the whole model: 10x faster).
        for name in _secret_names_of(states):
            self.secrets.preload(name)
        self.bus = bus or EventBus()
        self.bus.set_redactor(self.secrets.redact)
        self.access_mode = access_mode
        self._deferred: list[Callable[[], Awaitable[None]]] = []
        self._connections: ConnectionManager | None = None  # created on first use
        self._kv: KVStores | None = None  # data:kv stores, created on first use
        workloads_view = _WorkloadsView(states, outside)
        self.gxo = {
            "run_id": run_id,
            "workspace": str(workspace),
            "workloads": workloads_view,
            "tasks": workloads_view,  # legacy alias
            "resume_payload": resume_payload,
        }
        for key, value in (gxo_extra or {}).items():  # e.g. a daemon instance's ``event``
            self.gxo.setdefault(key, value)
        # Results registered before this run (a daemon instance's upstream): read
        # when the store has no value of its own under that key.
        self.initial_results: Mapping[str, Any] = initial_results or {}
        self._registered = _StoreView(self.store, self.initial_results)
        # Registered results as the modules returned them, before redaction: only
        # test:assert reads them (it compares true values and redacts its output).
        # In memory, for this run, and only for results a secret was redacted from.
        self._unredacted: dict[str, Any] = {}

    def template_context(
        self, extra: Mapping[str, Any] | None = None, *, unredacted: bool = False
    ) -> ChainMap[str, Any]:
        """Names visible to templates: extra > registered results > vars, plus ``_gxo``."""
        maps: list[Mapping[str, Any]] = [{"_gxo": self.gxo}, self._registered, self.variables]
        if unredacted and self._unredacted:
            maps.insert(1, self._unredacted)
        if extra:
            maps.insert(0, extra)
        return ChainMap(*maps)  # type: ignore[arg-type]

    def register(self, key: str | None, value: Any) -> Any:
        """Redact ``value``, store it under ``key`` (if any) and return the redacted value."""
        redacted = self.secrets.redact(value)
        if key:
            self.store.set(key, redacted)
            if redacted is not value and self.secrets.is_secret(value):
                self._unredacted[key] = value
            else:
                self._unredacted.pop(key, None)
        return redacted

    def defer(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._deferred.append(callback)

    @property
    def connections(self) -> ConnectionManager:
        """The run's network handles by ``connection_id`` (gxo/engine/connections.py)."""
        if self._connections is None:
            from gxo.engine.connections import ConnectionManager

            self._connections = ConnectionManager()
        return self._connections

    @property
    def kv(self) -> KVStores:
        """The run's key-value stores (``data:kv``, gxo/engine/kvstore.py)."""
        if self._kv is None:
            from gxo.engine.kvstore import KVStores

            self._kv = KVStores()
        return self._kv

    async def run_deferred(self, grace: float = 10.0) -> list[str]:
        """Run end-of-run callbacks, last registered first, ``grace`` seconds each; returns their errors."""
        errors = []
        while self._deferred:
            callback = self._deferred.pop()
            try:
                async with asyncio.timeout(grace):
                    await callback()
            except Exception as exc:
                errors.append(f"cleanup failed: {type(exc).__name__}: {exc}")
        if self._connections is not None:  # every socket the run opened, on every path
            await self._connections.aclose()
        if self._kv is not None:  # the run's key-value state ends with it
            self._kv.clear()
        return errors

    def log(self, workload: str, line: str, *, stream: str = "log", level: str = "info") -> None:
        line = self.secrets.redact_str(line) if self.secrets else line
        state = self.states.get(workload)
        if state is not None:
            state.logs.append((time.time(), stream, line))
        self.bus.emit(EventKind.LOG, workload, stream=stream, level=level, line=line)


class _StoreView(Mapping[str, Any]):
    """Registered results as a mapping for templates (no copy: rendering never mutates)."""

    def __init__(self, store: Store, fallback: Mapping[str, Any] | None = None) -> None:
        self._store = store
        self._fallback = fallback or {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._store:
            if key in self._fallback:
                return self._fallback[key]
            raise KeyError(key)
        return self._store.get(key, copy=False)

    def __contains__(self, key: object) -> bool:
        return key in self._store or key in self._fallback

    def __iter__(self) -> Iterator[str]:
        keys = self._store.keys()
        yield from keys
        if self._fallback:
            seen = set(keys)
            yield from (k for k in self._fallback if k not in seen)

    def __len__(self) -> int:
        if not self._fallback:
            return len(self._store.keys())
        return len(set(self._store.keys()) | set(self._fallback))


class ModuleContext:
    """What a module's ``perform`` gets besides its params.

    Streams: ``async for record in ctx.records()`` (or ``ctx.batches()``) reads the
    merged ``stream_inputs``; ``await ctx.emit(record)`` writes the output stream.
    Templates: ``ctx.render(value, record=r)`` renders with the workload's context
    plus extra names. Everything logged or published is redacted.
    """

    def __init__(
        self,
        run: RunContext,
        state: WorkloadState,
        *,
        reader: MergedReader | None = None,
        writer: StreamWriter | None = None,
        local_vars: Mapping[str, Any] | None = None,
        iteration: int | None = None,
    ) -> None:
        self.run = run
        self.state = state
        self.workload = state.workload.name
        self.input = reader if reader is not None else MergedReader(self.workload)
        self.output = writer if writer is not None else StreamWriter(self.workload)
        self.local_vars = dict(local_vars) if local_vars else {}
        self.iteration = iteration
        policy = state.workload.state_policy
        access = policy.access_mode if policy else run.access_mode
        self.deep_copy = access == _DEEP_COPY

    # -- identity --------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def workspace(self) -> Path:
        return self.run.workspace

    def resolve_path(self, path: str | Path, *, param: str = "path") -> Path:
        """A path param relative to the run's workspace (absolute paths are kept).

        In a confined run (the daemon, ``gxo run --confine``) a path outside the
        workspace and the allowed directories raises a ``ConfinementError`` naming
        this workload, ``param`` and the path (gxo/engine/confine.py).
        """
        return self.run.paths.resolve(path, workload=self.workload, param=param)

    # -- check mode ----------------------------------------------------------------

    @property
    def check(self) -> bool:
        """True under ``gxo run --check``: predict, change nothing."""
        return self.run.check

    @property
    def diff(self) -> bool:
        """True under ``--diff``: describe changes (made or predicted) with :meth:`add_diff`."""
        return self.run.diff

    def add_diff(self, text: str) -> None:
        """Add a unified diff of what this workload changes (or would): shown by
        ``--diff`` on the console and in the report, redacted; never registered.
        Ignored without ``--diff`` (test :attr:`diff` first to skip the work)."""
        if text and self.run.diff:
            self.state.diffs.append(self.run.secrets.redact_str(text))

    # -- streams -----------------------------------------------------------------

    @property
    def has_input(self) -> bool:
        return self.input.connected

    @property
    def has_output(self) -> bool:
        return self.output.connected

    def records(self) -> AsyncIterator[dict[str, Any]]:
        return self.input.__aiter__()

    def batches(self, max_records: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        return self.input.batches(max_records)

    def input_from(self, producer: str) -> MergedReader:
        return self.input.by_producer(producer)

    async def emit(self, record: dict[str, Any]) -> None:
        await self.output.send(record)

    async def emit_many(self, records: Iterable[dict[str, Any]]) -> None:
        await self.output.send_many(records)

    # -- templates ---------------------------------------------------------------

    def template_context(self, **extra: Any) -> ChainMap[str, Any]:
        if self.local_vars:
            extra = {**self.local_vars, **extra}
        return self.run.template_context(extra)

    def render(self, value: Any, *, path: str = "", **extra: Any) -> Any:
        result = self.run.templates.render(
            value, self.template_context(**extra), path=path, workload=self.workload
        )
        return copy_record(result) if self.deep_copy and isinstance(result, dict | list) else result

    def render_unredacted(self, value: Any, *, path: str = "") -> Any:
        """Render against registered results as modules returned them, secrets in clear.

        For comparisons only (test:assert): whatever comes out must be redacted
        before it reaches an output.
        """
        context = self.run.template_context(self.local_vars or None, unredacted=True)
        result = self.run.templates.render(value, context, path=path, workload=self.workload)
        return copy_record(result) if self.deep_copy and isinstance(result, dict | list) else result

    def evaluate(self, expression: Any, *, path: str = "", **extra: Any) -> Any:
        result = self.run.templates.evaluate(
            expression, self.template_context(**extra), path=path, workload=self.workload
        )
        return copy_record(result) if self.deep_copy and isinstance(result, dict | list) else result

    def truthy(self, expression: Any, *, path: str = "", **extra: Any) -> bool:
        from gxo.template.filters import is_truthy

        return is_truthy(self.evaluate(expression, path=path, **extra))

    def compile(self, template: str, *, bare: bool = False) -> Callable[..., Any]:
        """A fast renderer for a per-record template: ``fn(**extra) -> value``."""
        engine = self.run.templates
        compiled = engine.compile_bare(template) if bare else engine.compile(template)
        return engine.renderer(compiled, self.template_context(), workload=self.workload)

    # -- state -------------------------------------------------------------------

    def get_state(self, key: str, default: Any = None) -> Any:
        store = self.run.store
        if key not in store and key in self.run.initial_results:
            value = self.run.initial_results[key]
            return copy_record(value) if self.deep_copy else value
        return store.get(key, default, copy=self.deep_copy)

    def publish(self, summary: dict[str, Any]) -> None:
        """Make ``summary`` visible now (and again on each call), before perform returns.

        Long-lived modules (a mock server) use it to expose what they observe.
        """
        key = self.state.workload.register_key if self.iteration is None else None
        redacted = self.state.summary = self.run.register(key, summary)
        self.run.bus.emit(EventKind.WORKLOAD_SUMMARY, self.workload, summary=redacted)

    def defer(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` when the whole run ends (servers, connections)."""
        self.run.defer(callback)

    @property
    def connections(self) -> ConnectionManager:
        """The run's connection manager: sockets by ``connection_id``, closed at run end."""
        return self.run.connections

    # -- observability -----------------------------------------------------------

    def log(self, line: str, *, stream: str = "log", level: str = "info") -> None:
        self.run.log(self.workload, line, stream=stream, level=level)

    def count(self, name: str, n: int = 1) -> None:
        """Add to a named counter shown in the report (``skipped``, ``dead_lettered`` ...)."""
        self.state.counters[name] = self.state.counters.get(name, 0) + n

    def redact(self, value: Any) -> Any:
        return self.run.secrets.redact(value)

    def redact_excerpt(self, text: str, limit: int, suffix: str = "…") -> str:
        """``text`` redacted *then* cut to ``limit`` characters (a secret cut in half is masked)."""
        return self.run.secrets.redact_excerpt(text, limit, suffix)

    def fail(self, message: str, *, summary: dict[str, Any] | None = None) -> ModuleError:
        """An error to ``raise``: ``raise ctx.fail("bad thing", summary=partial)``."""
        return ModuleError(message, summary=summary, workload=self.workload)

    async def to_thread(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run blocking code off the event loop."""
        return await asyncio.to_thread(fn, *args, **kwargs)
