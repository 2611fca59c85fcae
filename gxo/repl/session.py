"""The REPL's state: the loaded playbook, variables, registered results, secrets.

A :class:`ReplSession` lives as long as one ``gxo repl``. It owns one
:class:`~gxo.template.SecretRegistry` (so a secret seen once stays redacted in
everything printed afterwards) and one :class:`~gxo.state.MemoryStore` that
every ``:run`` writes its registered results to, so a later ``:run`` or an
expression sees them. It talks to the kernel only through its public classes.

A ``:run`` is an :class:`ActiveRun` while its engine run goes on. Its workloads that
wait for a human (``control:wait_for_signal``) wait on the run's own
:class:`~gxo.engine.signals.QueueBroker`: the prompt comes back while they are paused
(the run goes on in the background, independent branches too) and ``:resume`` /
``:reject`` answer them (:mod:`gxo.repl.commands`). One run at a time: ``:run`` and
``:load`` are refused until it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gxo.config.models import REGISTER_PATTERN, Policy
from gxo.config.variables import render_playbook_vars
from gxo.engine.context import WorkloadState
from gxo.engine.payload_form import local_identity
from gxo.engine.signals import Pending, QueueBroker
from gxo.errors import UsageError
from gxo.state.store import MemoryStore
from gxo.template.engine import TemplateEngine
from gxo.template.secrets import SecretRegistry

if TYPE_CHECKING:
    from gxo.config.loader import LoadedPlaybook
    from gxo.engine.events import EventBus
    from gxo.engine.scheduler import RunResult
    from gxo.engine.signals import SignalBroker
    from gxo.modules.testkit import ModuleRun

__all__ = ["ActiveRun", "ReplSession", "RunPlan"]

_VAR_NAME = re.compile(REGISTER_PATTERN)


@dataclass
class RunPlan:
    """What ``:run TARGET`` needs: ``base`` always runs, ``missing`` only if the user agrees.

    ``base`` is the target plus the stream producers it reads from (they must run
    in the same engine run). ``missing`` are dependencies with no usable result in
    this session (never run, or failed), with their own stream producers.
    """

    target: str
    base: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass(eq=False)
class ActiveRun:
    """A ``:run`` whose engine run has not ended.

    ``task`` runs the engine; ``broker`` holds its pauses. ``settled`` is set when the
    prompt should come back: the run ended, or a workload of it waits for an answer.
    ``announced`` are the pauses already shown (their futures), so each is shown once.
    """

    plan: RunPlan
    selected: set[str]
    broker: QueueBroker
    task: asyncio.Task[RunResult]
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    announced: set[asyncio.Future[Any]] = field(default_factory=set)
    watcher: asyncio.Task[None] | None = None

    def open_pauses(self) -> dict[str, Pending]:
        """The pauses nobody has decided yet (resumed, rejected or timed out)."""
        return {name: p for name, p in self.broker.pending.items() if not p.future.done()}

    async def cancel(self) -> None:
        """Interrupt the run (paused workloads too) and wait until it cleaned up."""
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.shield(self.task)
        if self.watcher is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(self.watcher)


class ReplSession:
    """Everything a REPL session knows between two inputs."""

    def __init__(
        self, variables: Mapping[str, Any] | None = None, *, workspace: Path | None = None
    ) -> None:
        self.secrets = SecretRegistry()
        self.templates = TemplateEngine(self.secrets)
        self.workspace = (workspace or Path.cwd()).resolve()
        self.run_id = uuid.uuid4().hex[:12]
        #: -e overrides and ``:set`` values; they win over playbook vars, as with ``gxo run -e``
        self.overrides: dict[str, Any] = dict(variables or {})
        self.playbook_vars: dict[str, Any] = {}
        self.loaded: LoadedPlaybook | None = None
        self.store = MemoryStore()
        self.states: dict[str, WorkloadState] = {}
        self.active: ActiveRun | None = None  # the :run in progress (paused), if any
        self.identity = local_identity("repl")  # who resumes from this session

    # -- playbook ----------------------------------------------------------------

    def load(self, path: str | Path) -> list[str]:
        """Load a playbook (replacing the current one); returns warnings to show.

        Registered results and workload statuses belong to the previous playbook
        and are cleared; -e and ``:set`` values are kept.
        """
        from gxo.config.loader import load_playbook

        self.require_idle()
        loaded = load_playbook(Path(path).expanduser(), extra_names=set(self.overrides))
        warnings = list(loaded.warnings)
        self.loaded = loaded
        self.store = MemoryStore()
        self.states = {w.name: WorkloadState(w) for w in loaded.playbook.workloads}
        self.playbook_vars, problems = self._render_playbook_vars()
        warnings.extend(problems)
        return warnings

    def _render_playbook_vars(self) -> tuple[dict[str, Any], list[str]]:
        """Playbook vars rendered the way a run renders them, but a bad var is only reported."""
        assert self.loaded is not None
        return render_playbook_vars(
            self.loaded.playbook.vars, self.overrides, self.templates, lenient=True
        )

    @property
    def workload_names(self) -> list[str]:
        return [w.name for w in self.loaded.playbook.workloads] if self.loaded else []

    def declared_registers(self) -> dict[str, str]:
        """Register key → workload, for every workload of the loaded playbook."""
        if self.loaded is None:
            return {}
        return {w.register_key: w.name for w in self.loaded.playbook.workloads if w.register_key}

    # -- templates ---------------------------------------------------------------

    @property
    def variables(self) -> dict[str, Any]:
        return {**self.playbook_vars, **self.overrides}

    def gxo_view(self) -> dict[str, Any]:
        workloads = {name: state.public() for name, state in self.states.items()}
        view = {
            "run_id": self.run_id,
            "workspace": str(self.workspace),
            "workloads": workloads,
            "tasks": workloads,  # legacy alias, as in a run
            "resume_payload": None,
        }
        if self.loaded is not None:  # _gxo.playbook_dir and _gxo.playbook, as in a run
            from gxo.config.select import playbook_info

            view.update(playbook_info(self.loaded))
        return view

    def context(self) -> ChainMap[str, Any]:
        """Names visible to expressions, with the engine's precedence:
        ``_gxo`` > registered results > variables."""
        return ChainMap({"_gxo": self.gxo_view()}, self.store.snapshot(copy=False), self.variables)

    def evaluate(self, text: str) -> Any:
        """Evaluate ``{{ expr }}``, a bare expression, or a template with text around it."""
        # The engine's own rule: exactly one {{ expr }} (or a bare expression) gives the
        # native value; any other template ("hi {{ name }}", "{% for %}") gives a string.
        return self.templates.evaluate(text.strip(), self.context())

    def set_variable(self, name: str, expression: str) -> Any:
        if not _VAR_NAME.fullmatch(name):
            raise UsageError(
                f"invalid variable name {name!r}: use letters, digits and _ (not first)"
            )
        if name == "_gxo":
            raise UsageError("'_gxo' is reserved for run information")
        value = self.evaluate(expression)
        self.overrides[name] = value
        return value

    def redact(self, value: Any) -> Any:
        return self.secrets.redact(value)

    # -- running workloads -------------------------------------------------------

    def _require_loaded(self) -> LoadedPlaybook:
        if self.loaded is None:
            raise UsageError("no playbook loaded: use ':load FILE' (or start 'gxo repl PLAYBOOK')")
        return self.loaded

    def satisfied(self, name: str) -> bool:
        """Whether ``name`` already ran in this session with a result dependents may use."""
        state = self.states.get(name)
        return state is not None and state.status.terminal and state.satisfies_dependents

    def plan(self, target: str) -> RunPlan:
        """Which workloads ``:run target`` runs, and which dependencies are missing."""
        loaded = self._require_loaded()
        if target not in self.states:
            import difflib

            close = difflib.get_close_matches(target, self.workload_names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UsageError(
                f"unknown workload '{target}'{hint}; workloads: {', '.join(self.workload_names)}"
            )
        workload = loaded.playbook.workload(target)
        if workload.lifecycle.policy != Policy.run_once:
            raise UsageError(
                f"workload '{target}' has lifecycle '{workload.lifecycle.policy.value}': "
                "only run_once workloads run here (long-running ones need 'gxo daemon')"
            )
        graph = loaded.graph
        assert graph is not None  # load_playbook validated it

        def with_producers(name: str, into: set[str]) -> None:
            if name in into:
                return
            into.add(name)
            for producer in graph.stream_deps[name]:
                with_producers(producer, into)

        base: set[str] = set()
        with_producers(target, base)
        missing: set[str] = set()
        frontier = set(base)
        while frontier:
            name = frontier.pop()
            for dep in graph.state_deps[name] | graph.order_deps[name]:
                if dep in base or dep in missing or self.satisfied(dep):
                    continue
                added: set[str] = set()
                with_producers(dep, added)
                added -= base | missing
                missing |= added
                frontier |= added
        order = graph.order()
        return RunPlan(target, [n for n in order if n in base], [n for n in order if n in missing])

    def require_idle(self) -> None:
        """UsageError while a ``:run`` is still in progress (paused)."""
        if self.active is None:
            return
        paused = ", ".join(self.active.open_pauses()) or "none yet"
        raise UsageError(
            f"':run {self.active.plan.target}' is still in progress (paused: {paused}): "
            "answer it with :resume or :reject first (:paused lists the pauses)"
        )

    def start_run(self, plan: RunPlan, selected: set[str], *, bus: EventBus) -> ActiveRun:
        """Start the engine run of ``:run`` as a task; it becomes :attr:`active` until it ends."""
        self.require_idle()
        broker = QueueBroker(identity=self.identity)
        task = asyncio.create_task(
            self.run_workloads(selected, bus=bus, signals=broker), name=f"gxo-repl:{plan.target}"
        )
        active = ActiveRun(plan, set(selected), broker, task)
        self.active = active

        def ended(_: object) -> None:
            if self.active is active:
                self.active = None

        task.add_done_callback(ended)
        return active

    def paused(self) -> dict[str, Pending]:
        """Workloads of the active run waiting for an answer."""
        return self.active.open_pauses() if self.active is not None else {}

    def pause_of(self, workload: str) -> tuple[ActiveRun, Pending]:
        """The open pause of ``workload``; a clear UsageError when there is none."""
        paused = self.paused()
        if workload in paused:
            assert self.active is not None
            return self.active, paused[workload]
        if not paused:
            raise UsageError(
                f"'{workload}' is not paused: no workload is (a ':run' whose workload "
                "waits for a signal pauses)"
            )
        import difflib

        close = difflib.get_close_matches(workload, list(paused), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UsageError(f"'{workload}' is not paused{hint}; paused: {', '.join(paused)}")

    async def close(self) -> None:
        """End of the session: a run still in progress (paused) is cancelled cleanly."""
        if self.active is not None:
            await self.active.cancel()

    async def run_workloads(
        self,
        selected: set[str],
        *,
        bus: EventBus | None = None,
        signals: SignalBroker | None = None,
    ) -> RunResult:
        """Run exactly ``selected`` in one engine run, the rest keeping their session outcome.

        ``signals`` answers the run's paused workloads (without it, a workload that waits
        for a signal fails: nobody could answer it).
        """
        from gxo.engine.scheduler import Engine

        loaded = self._require_loaded()
        # A re-run replaces the old result; a stale one must not survive a failure or skip.
        for name in selected:
            key = loaded.playbook.workload(name).register_key
            if key:
                self.store.delete(key)
        engine = Engine(
            loaded,
            extra_vars=self.overrides,
            workspace=self.workspace,
            run_id=self.run_id,
            store=self.store,
            bus=bus,
            secrets=self.secrets,
            only=set(selected),
            prior_states=self.states,
            signals=signals,
        )
        # Live: while the run is paused, :state and _gxo.workloads show where it is.
        for name in selected:
            self.states[name] = engine.states[name]
        try:
            return await engine.run()
        finally:
            # Also after Ctrl-C: what ran (or was interrupted) is what the session shows.
            for name in selected:
                self.states[name] = engine.states[name]

    async def run_module(self, name: str, params: dict[str, Any]) -> ModuleRun:
        """One ad-hoc module call, through the engine's path (rendering, validation)."""
        from gxo.modules.testkit import run_module

        return await run_module(
            name,
            params,
            variables=self.variables,
            state=self.store.snapshot(),
            workspace=self.workspace,
        )
