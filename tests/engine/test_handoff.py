"""A finishing pipeline's task runs the last pipeline it makes ready (issue 19).

Instead of a new task per workload, the task that completes a workload goes on with
the last dependent it made ready, after one loop step (where a new task would have
started). What must not change: start order, interleaving of independent branches,
cancelling one workload, the run's task bookkeeping.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

from gxo.config.loader import load_playbook
from gxo.engine.context import Status
from gxo.engine.events import EventBus, EventKind
from gxo.engine.scheduler import Engine


def engine_for(text: str, **options: Any) -> Engine:
    loaded = load_playbook(text=textwrap.dedent(text).lstrip(), name="pb.gxo.yaml")
    return Engine(loaded, workspace="temp", **options)


def running_order(bus: EventBus) -> list[str | None]:
    seen: list[str | None] = []

    def listen(event: Any) -> None:
        if event.kind == EventKind.WORKLOAD_STATUS and event.data["status"] == "Running":
            seen.append(event.workload)

    bus.add_listener(listen)
    return seen


def identity(name: str, deps: list[str] | None = None) -> str:
    dep = f", depends_on: [{', '.join(deps)}]" if deps else ""
    return f"  - {{ name: {name}, process: {{ module: control:identity, params: {{}} }}{dep} }}"


async def test_chains_interleave_and_siblings_start_in_order() -> None:
    lines = ['schemaVersion: "1.0.0"', "name: order", "workloads:"]
    lines += [identity("a1"), identity("a2", ["a1"]), identity("a3", ["a2"])]
    lines += [identity("b1"), identity("b2", ["b1"]), identity("b3", ["b2"])]
    lines += [identity("c1", ["a3"]), identity("c2", ["a3"]), identity("c3", ["a3"])]
    bus = EventBus()
    order = running_order(bus)
    engine = engine_for("\n".join(lines) + "\n", bus=bus)
    result = await engine.run()
    assert result.status == "Completed"
    # One loop step per workload, as with a task each: the chains take turns (no
    # chain runs through in one step), and a3's dependents start in the order a3's
    # end makes them ready (the last one in a3's task, after the others' tasks).
    assert order[:6] == ["a1", "b1", "a2", "b2", "a3", "b3"]
    graph = engine.graph
    made_ready = [
        graph.pipelines[i].members[0] for i in graph.pipelines[graph.pipeline_of["a3"]].dependents
    ]
    assert sorted(made_ready) == ["c1", "c2", "c3"]
    assert order[6:] == made_ready
    assert not engine._tasks  # every pipeline's task left the set as it ended


async def test_a_continued_workload_is_cancelled_alone(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    text = f"""
    schemaVersion: "1.0.0"
    name: handoff-cancel
    workloads:
      - name: first
        process: {{ module: control:identity, params: {{}} }}
      - name: slow
        depends_on: [first]
        process:
          module: exec
          params: {{ command: sh, args: ["-c", "echo $$ > {pidfile}; exec sleep 30"] }}
      - name: cleanup
        depends_on: [slow]
        when: "always()"
        process: {{ module: control:identity, params: {{ ran: true }} }}
      - name: after_cleanup
        depends_on: [cleanup]
        process: {{ module: control:identity, params: {{}} }}
    """
    engine = engine_for(text)
    task = asyncio.ensure_future(engine.run())
    for _ in range(1000):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.005)
    assert engine.states["slow"].status is Status.RUNNING
    # slow runs in the task that ran first: found by its name all the same
    assert engine.cancel_workload("slow") is True
    result = await asyncio.wait_for(task, 10)
    assert result.states["slow"].error == "cancelled by the user"
    # the task went on after the cancelled workload: its hook and what follows ran
    assert {n: s.status.value for n, s in result.states.items()} == {
        "first": "Completed",
        "slow": "Failed",
        "cleanup": "Completed",
        "after_cleanup": "Completed",
    }
    assert not engine._tasks


async def test_the_concurrency_limit_holds_for_continued_pipelines() -> None:
    # first makes 6 ready at once: with --concurrency 2 one is continued, one more gets
    # a task, the rest wait in the queue; each one that ends hands its slot on.
    lines = ['schemaVersion: "1.0.0"', "name: limit", "workloads:", identity("first")]
    lines += [
        f"  - {{ name: w{i}, depends_on: [first], process: {{ module: exec, "
        f'params: {{ command: sleep, args: ["0.05"] }} }} }}'
        for i in range(6)
    ]
    bus = EventBus()
    running: set[str] = set()
    most = 0

    def listen(event: Any) -> None:
        nonlocal most
        if event.kind != EventKind.WORKLOAD_STATUS:
            return
        if event.data["status"] == "Running":
            running.add(event.workload)
            most = max(most, len(running))
        else:
            running.discard(event.workload)

    bus.add_listener(listen)
    result = await engine_for("\n".join(lines) + "\n", bus=bus, concurrency=2).run()
    assert result.status == "Completed"
    assert most == 2


def test_statuses_and_event_kinds_hash_as_the_str_they_equal() -> None:
    assert {Status.COMPLETED: 1}["Completed"] == 1
    assert "workload_status" in {EventKind.WORKLOAD_STATUS}
    assert hash(Status.FAILED) == hash("Failed")


def test_quiet_progress_gets_failures_and_lost_records_only() -> None:
    from gxo.runtime import progress_filters

    bus = EventBus()
    got: list[tuple[str | None, str]] = []
    bus.add_listener(
        lambda e: got.append((e.workload, e.data["status"])),
        **progress_filters(verbose=False, quiet=True),
    )
    # What the quiet printer never shows is not even built...
    assert not bus.wants_status("Completed") and not bus.wants_status("Running")
    assert not bus.wants(EventKind.RUN_STARTED) and not bus.wants(EventKind.WARNING)
    # ...except a status that reports lost records, and failures.
    assert bus.wants_status("Completed", 3) and bus.wants_status("Failed")
    status = EventKind.WORKLOAD_STATUS
    bus.publish(status, "a", {"status": "Completed"})
    bus.publish(status, "b", {"status": "Completed", "records_dropped": 3})
    bus.publish(status, "c", {"status": "Failed"})
    bus.publish(status, "d", {"status": "Skipped", "records_dropped": 1})
    assert got == [("b", "Completed"), ("c", "Failed"), ("d", "Skipped")]
    # Another listener that takes every status: the quiet one still gets only its own.
    every: list[str | None] = []
    bus.add_listener(lambda e: every.append(e.workload))
    assert bus.wants_status("Completed")
    bus.publish(status, "e", {"status": "Completed"})
    assert every == ["e"] and got[-1] == ("d", "Skipped")
