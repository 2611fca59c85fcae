"""The kernel hook ``:run`` relies on: ``Engine(only=..., prior_states=...)``."""

from __future__ import annotations

from gxo.config.loader import load_playbook
from gxo.engine.context import Status, WorkloadState
from gxo.engine.events import EventBus, EventKind
from gxo.engine.scheduler import Engine
from gxo.state.store import MemoryStore

PLAYBOOK = """
schemaVersion: "1.0.0"
name: prior
workloads:
  - name: a
    process: { module: control:identity, params: { v: 1 } }
    register: a_out
  - name: b
    process: { module: control:identity, params: { seen: "{{ _gxo.workloads.a.status }}", v: "{{ a_out.v }}" } }
"""


async def test_unselected_workload_keeps_its_earlier_outcome() -> None:
    loaded = load_playbook(text=PLAYBOOK)
    store = MemoryStore()
    first = await Engine(loaded, store=store, only={"a"}).run()
    assert first.states["a"].status == Status.COMPLETED
    assert first.states["b"].reason == "not selected"

    events = []
    bus = EventBus()
    bus.add_listener(events.append)
    prior = {"a": first.states["a"], "b": first.states["b"]}
    second = await Engine(loaded, store=store, only={"b"}, prior_states=prior, bus=bus).run()
    assert second.states["b"].summary == {"seen": "Completed", "v": 1}
    assert second.states["a"] is first.states["a"] and second.states["a"].status == Status.COMPLETED
    # the kept workload is neither re-run nor re-announced
    statuses = [e.workload for e in events if e.kind == EventKind.WORKLOAD_STATUS]
    assert "a" not in statuses and "b" in statuses


async def test_without_prior_states_unselected_is_skipped() -> None:
    loaded = load_playbook(text=PLAYBOOK)
    pending = {"a": WorkloadState(loaded.playbook.workload("a"))}  # not terminal: ignored
    result = await Engine(
        loaded, store=MemoryStore({"a_out": {"v": 2}}), only={"b"}, prior_states=pending
    ).run()
    assert (
        result.states["a"].status == Status.SKIPPED and result.states["a"].reason == "not selected"
    )
    assert result.states["b"].summary == {"seen": "Skipped", "v": 2}


async def test_prior_states_need_only() -> None:
    loaded = load_playbook(text=PLAYBOOK)
    done = await Engine(loaded).run()
    # without `only` every workload runs: earlier outcomes are not reused
    again = await Engine(loaded, prior_states=done.states).run()
    assert again.states["a"] is not done.states["a"]
    assert again.states["b"].summary == {"seen": "Completed", "v": 1}
