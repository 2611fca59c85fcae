"""One run of a playbook inside the UI's event loop.

Workloads that wait for a human (``control:wait_for_signal``) wait on the session's
:class:`~gxo.engine.signals.QueueBroker`; the Resume tab answers them through
``approvals`` (:mod:`gxo.tui.approvals`).

Textual runs on asyncio, and so does the engine: the run is an ordinary task on
the same loop. The engine is cooperative (blocking module work goes to threads),
and the UI only reads what :class:`~gxo.tui.model.RunModel` recorded, so neither
side blocks the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gxo.api import Engine, EventBus, GxoError, LoadedPlaybook, RunResult, write_report
from gxo.engine.payload_form import local_identity
from gxo.engine.signals import QueueBroker
from gxo.tui.approvals import LocalApprovals
from gxo.tui.model import RunModel

__all__ = ["RunSession"]


class RunSession:
    """Owns an :class:`Engine`, its event bus, its task and the model the UI reads."""

    def __init__(
        self,
        loaded: LoadedPlaybook,
        *,
        variables: dict[str, Any] | None = None,
        concurrency: int | None = None,
        workspace: str | None = None,
        report: Path | None = None,
        run_id: str | None = None,
        on_done: Callable[[RunSession], None] | None = None,
        only: set[str] | None = None,
        previous: RunSession | None = None,
    ) -> None:
        """``only`` with ``previous``: run just those workloads (``R`` failed only, ``s``
        from the selected one); the others keep ``previous``'s outcome and registered
        results, as the REPL's ``:run`` does."""
        from gxo.state.store import MemoryStore, Store

        self.loaded = loaded
        self.only = only
        self.report = report
        self.bus = EventBus()
        # control:wait_for_signal pauses wait here; the Resume tab's form answers them.
        self.signals = QueueBroker(identity=local_identity("ui"))
        self.approvals = LocalApprovals(self.signals)
        prior: dict[str, Any] | None = None
        # One store per run, kept: a partial re-run reads the results of what it keeps.
        self.store: Store = MemoryStore()
        if previous is not None and only is not None:
            prior = dict(previous.engine.states)
            self.store = previous.store
        self.engine: Engine = Engine(
            loaded,
            extra_vars=variables or {},
            concurrency=concurrency,
            # as gxo run: relative paths resolve against the playbook's directory
            workspace=workspace if workspace is not None else str(loaded.base_dir),
            bus=self.bus,
            run_id=run_id,
            signals=self.signals,
            store=self.store,
            only=only,
            prior_states=prior,
        )
        self.model = RunModel.from_loaded(loaded)
        self.model.attach(self.engine.states)
        if prior is not None:
            self.model.keep_outcomes(
                {n: s for n, s in self.engine.states.items() if n not in (only or ())}
            )
        self.bus.add_listener(self.model)
        self.result: RunResult | None = None
        self.error: GxoError | None = None  # the run could not start (workspace, ...)
        self.crash: str | None = None  # a kernel bug: shown, never swallowed
        self.report_error: str | None = None
        self.cancelling = False
        self._on_done = on_done
        self.task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"gxo-ui:{self.loaded.playbook.name}")

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    async def cancel(self) -> None:
        """Interrupt the run and wait until every workload cleaned up (children killed)."""
        if self.task is None:
            return
        self.cancelling = True
        self.engine.cancel()
        # Shielded: if the UI itself is torn down meanwhile, the run still finishes
        # its cleanup instead of being abandoned half-way.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self.task)

    async def _run(self) -> None:
        try:
            self.result = await self.engine.run()
        except GxoError as exc:
            self.error = exc
        except Exception:  # a kernel bug: keep the UI alive and show it
            self.crash = traceback.format_exc()
        if self.result is not None and self.report is not None:
            try:
                write_report(self.result, self.report)
            except OSError as exc:
                self.report_error = f"cannot write report {self.report}: {exc.strerror or exc}"
        if self._on_done is not None:
            self._on_done(self)

    # -- outcome ------------------------------------------------------------------------

    @property
    def exit_code(self) -> int:
        if self.result is not None:
            return self.result.exit_code
        if self.error is not None:
            return self.error.exit_code
        return 1
