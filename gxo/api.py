"""GXO's public API: what front ends (CLI, TUI, REPL, test runner, daemon) and
embedders use. Nothing here imports a front end.

    loaded = load_playbook("site.gxo.yaml")
    result = asyncio.run(run_playbook(loaded, extra_vars={"env": "prod"}))
    print(result.status, result.report())

To watch a run, subscribe to its event bus before starting it::

    bus = EventBus()
    sub = bus.subscribe()
    engine = Engine(loaded, bus=bus)
    task = asyncio.create_task(engine.run())
    async for event in sub: ...
"""

from __future__ import annotations

from typing import Any

from gxo.config.loader import LoadedPlaybook, load_playbook
from gxo.engine.context import ModuleContext, RunContext, Status, WorkloadState
from gxo.engine.events import Event, EventBus, EventKind, Subscription
from gxo.engine.report import build_report, write_report
from gxo.engine.scheduler import Engine, RunResult, default_concurrency
from gxo.errors import GxoError
from gxo.modules.base import REGISTRY

__all__ = [
    "REGISTRY",
    "Engine",
    "Event",
    "EventBus",
    "EventKind",
    "GxoError",
    "LoadedPlaybook",
    "ModuleContext",
    "RunContext",
    "RunResult",
    "Status",
    "Subscription",
    "WorkloadState",
    "build_report",
    "default_concurrency",
    "load_playbook",
    "run_playbook",
    "write_report",
]


async def run_playbook(loaded: LoadedPlaybook, **options: Any) -> RunResult:
    """Run a loaded playbook once; ``options`` are :class:`Engine` keyword arguments."""
    return await Engine(loaded, **options).run()
