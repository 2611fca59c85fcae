"""Progress never lies: the run is announced finished only after every workload ended.

Kernel-level checks of the event order the TUI relies on, plus the same property
seen through the TUI's model (the header's status comes from it).
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest

from gxo.api import Engine, Event, EventBus, EventKind, load_playbook
from gxo.tui.format import TERMINAL
from gxo.tui.model import RunModel

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"

STREAMS_AND_IGNORED = """
schemaVersion: "1.0.0"
name: mixed
channel_policy: { buffer_size: 3 }
workloads:
  - name: numbers
    process: { module: data:generate_from_list, params: { items: "{{ range(40) | list }}" } }
  - name: forward
    process: { module: passthrough }
    stream_inputs: [numbers]
  - name: sink
    process: { module: control:barrier }
    stream_inputs: [forward]
  - name: tolerated
    ignore_errors: true
    process: { module: exec, params: { command: sh, args: ["-c", "exit 4"] } }
  - name: after_tolerated
    depends_on: [tolerated]
    loop: [1, 2, 3]
    loop_control: { parallel: 3 }
    process: { module: control:identity, params: { n: "{{ item }}" } }
"""


class Recorder:
    """Listener recording events, the engine's statuses and the model's run status at each."""

    def __init__(self, engine: Engine, model: RunModel) -> None:
        self.engine = engine
        self.model = model
        self.events: list[Event] = []
        self.model_status: list[str] = []
        self.states_at_finish: dict[str, str] = {}
        self.views_at_final_status: dict[str, str] = {}

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        before = self.model.run_status
        self.model(event)
        self.model_status.append(self.model.run_status)
        if event.kind == EventKind.RUN_FINISHED:
            self.states_at_finish = {n: s.status.value for n, s in self.engine.states.items()}
        if before in ("Pending", "Running") and self.model.finished:
            self.views_at_final_status = {n: w.status for n, w in self.model.workloads.items()}


def _engine(loaded: Any) -> tuple[Engine, Recorder]:
    bus = EventBus()
    engine = Engine(loaded, bus=bus)
    model = RunModel.from_loaded(loaded)
    model.attach(engine.states)
    recorder = Recorder(engine, model)
    bus.add_listener(recorder)
    return engine, recorder


def _assert_progress_never_lies(rec: Recorder) -> None:
    kinds = [e.kind for e in rec.events]
    assert kinds[0] == EventKind.RUN_STARTED
    assert kinds.count(EventKind.RUN_FINISHED) == 1
    assert kinds[-1] == EventKind.RUN_FINISHED, "nothing may follow RUN_FINISHED"
    seqs = [e.seq for e in rec.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # When the run is announced finished, every workload has ended.
    assert rec.states_at_finish and all(s in TERMINAL for s in rec.states_at_finish.values()), (
        rec.states_at_finish
    )
    last: dict[str, str] = {}
    for e in rec.events:
        if e.kind == EventKind.WORKLOAD_STATUS:
            last[e.workload or ""] = e.data["status"]
    assert set(last) == set(rec.engine.states), "every workload announced its outcome"
    assert all(s in TERMINAL for s in last.values()), last
    # The model (the header) said Running until the very last event, and when it
    # turned final every workload it shows had ended.
    assert all(s == "Running" for s in rec.model_status[:-1])
    assert rec.model_status[-1] == rec.events[-1].data["status"]
    assert all(s in TERMINAL for s in rec.views_at_final_status.values()), rec.views_at_final_status


@pytest.mark.parametrize("name", ["overview", "failing", "midrun_short"])
async def test_finished_after_every_terminal_status(name: str) -> None:
    if name == "midrun_short":  # midrun without its long sleep
        text = (PLAYBOOKS / "midrun.gxo.yaml").read_text().replace('"31.4159"', '"0.2"')
        loaded = load_playbook(text=text, name="midrun.gxo.yaml")
    else:
        loaded = load_playbook(PLAYBOOKS / f"{name}.gxo.yaml")
    engine, rec = _engine(loaded)
    await engine.run()
    _assert_progress_never_lies(rec)


async def test_streams_loops_and_ignored_errors() -> None:
    engine, rec = _engine(load_playbook(text=textwrap.dedent(STREAMS_AND_IGNORED)))
    result = await engine.run()
    assert result.status == "Completed"
    _assert_progress_never_lies(rec)
    # A producer is Completed only after its consumer drained it.
    order = [
        (e.workload, e.data["status"]) for e in rec.events if e.kind == EventKind.WORKLOAD_STATUS
    ]
    assert order.index(("numbers", "Completed")) > order.index(("forward", "Running"))


async def test_cancelled_run_finishes_after_everything_stopped() -> None:
    text = (PLAYBOOKS / "midrun.gxo.yaml").read_text()
    engine, rec = _engine(load_playbook(text=text, name="midrun.gxo.yaml"))
    build_running = asyncio.Event()
    engine.bus.add_listener(
        lambda e: (
            build_running.set()
            if e.workload == "build" and e.data.get("status") == "Running"
            else None
        )
    )
    task = asyncio.create_task(engine.run())
    await asyncio.wait_for(build_running.wait(), 15)
    await asyncio.sleep(0.1)  # let the command start
    engine.cancel()
    result = await task
    assert result.status == "Interrupted"
    # Workloads that never started are announced Skipped, the running one Failed,
    # all before RUN_FINISHED: the model needs nothing but events.
    _assert_progress_never_lies(rec)
    assert rec.views_at_final_status["publish"] == "Skipped"
    assert rec.views_at_final_status["build"] == "Failed"


async def test_subscription_sees_run_finished_last() -> None:
    loaded = load_playbook(PLAYBOOKS / "overview.gxo.yaml")
    bus = EventBus()
    sub = bus.subscribe(maxsize=10_000)
    engine = Engine(loaded, bus=bus)
    run = asyncio.create_task(engine.run())
    seen = [event async for event in sub]
    await run
    assert seen[-1].kind == EventKind.RUN_FINISHED
    ended = {
        e.workload
        for e in seen
        if e.kind == EventKind.WORKLOAD_STATUS and e.data["status"] in TERMINAL
    }
    assert ended == set(engine.states)
