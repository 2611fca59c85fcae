"""Test doubles for module authors: run one module, or a playbook from a string.

``run_module`` drives a module through the same path the engine uses —
template rendering, params validation, retry/timeout — with in-memory input
streams and a collected output stream::

    result = await run_module("data:filter", {"condition": "record.n > 1"},
                              inputs=[{"n": 1}, {"n": 2}])
    assert result.records == [{"n": 2}]
    assert result.status == "Completed"
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gxo.config.models import AccessMode, Process, Workload
from gxo.engine.context import RunContext, Status, WorkloadState
from gxo.engine.events import Event, EventBus
from gxo.engine.runner import WorkloadRunner
from gxo.engine.streams import Channel, MergedReader, StreamWriter
from gxo.errors import UpstreamFailedError
from gxo.state.store import MemoryStore

__all__ = ["ModuleRun", "run_module", "run_playbook_text"]

_COLLECTOR = "__collector__"


@dataclass
class ModuleRun:
    """What one module call produced."""

    status: str
    summary: Any
    error: str | None
    records: list[dict[str, Any]]
    logs: list[tuple[str, str]]  # (stream, line)
    counters: dict[str, int]
    state: WorkloadState
    events: list[Event] = field(default_factory=list)
    run: RunContext | None = None

    @property
    def ok(self) -> bool:
        return self.status == Status.COMPLETED.value


async def run_module(
    name: str,
    params: dict[str, Any] | None = None,
    *,
    inputs: list[dict[str, Any]] | dict[str, list[dict[str, Any]]] | None = None,
    variables: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    workspace: str | Path | None = None,
    workload: dict[str, Any] | None = None,
    buffer_size: int = 100,
    keep_run_open: bool = False,
) -> ModuleRun:
    """Run module ``name`` once, as workload ``under_test``.

    ``inputs`` is a list of records (one producer named ``input``) or a mapping of
    producer name → records. ``state`` pre-registers results; ``workload`` adds
    workload fields (``timeout``, ``retry``, ``loop``, ``register`` ...).
    ``keep_run_open`` skips end-of-run cleanups so a test can use a server the
    module left running; call ``await result.run.run_deferred()`` afterwards.
    """
    streams = {"input": inputs} if isinstance(inputs, list) else dict(inputs or {})
    spec_fields = {"name": "under_test", "process": Process(module=name, params=params or {})}
    spec_fields.update(workload or {})
    if streams:
        spec_fields["stream_inputs"] = list(streams)
    wl = Workload.model_validate(spec_fields)
    root = Path(await asyncio.to_thread(os.path.abspath, workspace)) if workspace else Path.cwd()
    wstate = WorkloadState(wl)
    bus = EventBus()
    events: list[Event] = []
    bus.add_listener(events.append)
    run = RunContext(
        run_id="test",
        workspace=root,
        variables=dict(variables or {}),
        states={"under_test": wstate},
        store=MemoryStore(dict(state or {})),
        bus=bus,
        access_mode=AccessMode.deep_copy,
    )
    channels = []
    for producer, records in streams.items():
        ch = Channel(producer, "under_test", max(len(records), 1))
        for record in records:
            await ch.put(record)
        ch.close()
        channels.append(ch)
    reader = MergedReader("under_test", channels)
    out = Channel("under_test", _COLLECTOR, buffer_size)
    writer = StreamWriter("under_test", [out])
    collected: list[dict[str, Any]] = []

    async def collect() -> None:
        # A failed module closes its output as failed: keep what it emitted before.
        with contextlib.suppress(UpstreamFailedError):
            while (batch := await out.get_batch()) is not None:
                collected.extend(batch)

    collector = asyncio.create_task(collect())
    try:
        await WorkloadRunner(run).execute(wstate, reader, writer)
    finally:
        writer.close()
        await collector
        if not keep_run_open:
            await run.run_deferred()
    return ModuleRun(
        status=wstate.status.value,
        summary=wstate.summary,
        error=wstate.error,
        records=collected,
        logs=[(stream, line) for _, stream, line in wstate.logs],
        counters=dict(wstate.counters),
        state=wstate,
        events=events,
        run=run,
    )


async def run_playbook_text(text: str, *, source: str = "<string>", **engine_options: Any) -> Any:
    """Load ``text`` as a playbook and run it; returns the :class:`RunResult`."""
    from gxo.config.loader import load_playbook
    from gxo.engine.scheduler import Engine

    extra = engine_options.get("extra_vars") or {}
    loaded = load_playbook(text=text, name=source, extra_names=set(extra))
    return await Engine(loaded, **engine_options).run()
