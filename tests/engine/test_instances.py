"""Daemon instances: which workloads an instance runs, and running only them.

``instance_workloads`` picks the root and its run_once downstream; ``Engine(only=...,
initial_results=...)`` runs exactly those, reading upstream results from what the
daemon stored.
"""

from __future__ import annotations

import pytest

from gxo.config.loader import load_playbook
from gxo.engine.context import Status
from gxo.engine.events import EventBus, EventKind
from gxo.engine.instances import instance_roots, instance_workloads, standalone_workloads
from gxo.engine.scheduler import Engine
from gxo.errors import GxoError
from gxo.state.store import MemoryStore

HEAD = 'schemaVersion: "1.0.0"\nname: inst\nworkloads:\n'
SUPERVISE = "lifecycle: { policy: supervise }"
SCHEDULED = 'lifecycle: { policy: scheduled, cron: "* * * * *" }'


def load(body: str):
    return load_playbook(text=HEAD + body)


def identity(params: str = "{}") -> str:
    return f"process: {{ module: control:identity, params: {params} }}"


# -- selection -------------------------------------------------------------------------

STATE_AND_ORDER = f"""
  - name: up
    {identity("{ v: 1 }")}
    register: up_out
  - name: svc
    {SUPERVISE}
    {identity('{ seen: "{{ up_out.v }}" }')}
    register: svc_out
  - name: reads_svc
    {identity('{ x: "{{ svc_out.seen }}" }')}
    register: reads_out
  - name: after_reader
    depends_on: [reads_svc]
    {identity()}
  - name: status_watcher
    {identity('{ s: "{{ _gxo.workloads.svc.status }}" }')}
  - name: unrelated
    {identity()}
"""


def test_state_reference_depends_on_and_workload_status_are_followed() -> None:
    loaded = load(STATE_AND_ORDER)
    assert instance_workloads(loaded, "svc") == [
        "svc",
        "reads_svc",
        "after_reader",
        "status_watcher",
    ]
    # upstream and unrelated workloads are not part of it
    assert "up" not in instance_workloads(loaded, "svc")


def test_depends_on_edge_alone() -> None:
    loaded = load(
        f"""
  - name: tick
    {SCHEDULED}
    {identity()}
  - name: cleanup
    depends_on: [tick]
    {identity()}
"""
    )
    assert instance_workloads(loaded, "tick") == ["tick", "cleanup"]


def test_stream_consumers_and_their_downstream() -> None:
    loaded = load(
        f"""
  - name: gen
    {SCHEDULED}
    process: {{ module: data:generate_from_list, params: {{ items: [1, 2, 3] }} }}
  - name: doubled
    stream_inputs: [gen]
    process: {{ module: data:map, params: {{ fields: {{ n: "{{{{ record.item * 2 }}}}" }} }} }}
  - name: sink
    stream_inputs: [doubled]
    process: {{ module: control:barrier }}
    register: sink_out
  - name: report
    {identity('{ done: "{{ sink_out }}" }')}
"""
    )
    assert instance_workloads(loaded, "gen") == ["gen", "doubled", "sink", "report"]


def test_diamond_lists_each_workload_once_in_playbook_order() -> None:
    # the join is declared first: order is the playbook's, not the traversal's
    loaded = load(
        f"""
  - name: join
    {identity('{ l: "{{ left_out }}", r: "{{ right_out }}" }')}
  - name: root
    {SUPERVISE}
    {identity("{ v: 1 }")}
    register: root_out
  - name: right
    {identity('{ v: "{{ root_out.v }}" }')}
    register: right_out
  - name: left
    {identity('{ v: "{{ root_out.v }}" }')}
    register: left_out
"""
    )
    assert instance_workloads(loaded, "root") == ["join", "root", "right", "left"]


def test_downstream_lifecycle_workload_roots_its_own_instance() -> None:
    loaded = load(
        f"""
  - name: root
    {SCHEDULED}
    {identity("{ v: 1 }")}
    register: root_out
  - name: server
    {SUPERVISE}
    {identity('{ v: "{{ root_out.v }}" }')}
    register: server_out
  - name: behind_server
    {identity('{ v: "{{ server_out.v }}" }')}
  - name: also_behind_root
    depends_on: [root, server]
    {identity()}
"""
    )
    # `server` and what only it leads to are not reached; a workload that waits for
    # both is reached through the root.
    assert instance_workloads(loaded, "root") == ["root", "also_behind_root"]
    assert instance_workloads(loaded, "server") == ["server", "behind_server", "also_behind_root"]


def test_run_once_root_and_unknown_root() -> None:
    loaded = load(STATE_AND_ORDER)
    assert instance_workloads(loaded, "unrelated") == ["unrelated"]
    with pytest.raises(GxoError, match="unknown workload 'nope'"):
        instance_workloads(loaded, "nope")


# -- running an instance ---------------------------------------------------------------

INSTANCE = f"""
  - name: up
    {identity("{ v: 1 }")}
    register: up_out
  - name: plain_up
    {identity()}
  - name: svc
    {SUPERVISE}
    depends_on: [plain_up]
    {identity('{ seen: "{{ up_out.v }}", up: "{{ _gxo.workloads.up.status }}", plain: "{{ _gxo.workloads.plain_up.status }}" }')}
    register: svc_out
  - name: down
    {identity('{ x: "{{ svc_out.seen }}" }')}
    register: down_out
  - name: unrelated
    {identity()}
"""


async def test_instance_runs_only_its_workloads_with_upstream_results() -> None:
    loaded = load(INSTANCE)
    names = instance_workloads(loaded, "svc")
    events = []
    bus = EventBus()
    bus.add_listener(events.append)
    store = MemoryStore()
    result = await Engine(
        loaded,
        only=set(names),
        initial_results={"up_out": {"v": 7}},
        results_store=store,
        run_id="tick-1",
        allow_lifecycles=True,
        bus=bus,
    ).run()
    assert result.status == "Completed" and result.run_id == "tick-1"
    assert list(result.states) == ["svc", "down"]
    # upstream results come from initial_results; an upstream workload with a result
    # reads Completed, one without (no register key) Pending
    assert result.states["svc"].summary == {"seen": 7, "up": "Completed", "plain": "Pending"}
    assert result.states["down"].summary == {"x": 7}
    report = result.report()
    assert set(report["workloads"]) == {"svc", "down"} and report["run_id"] == "tick-1"
    # results go to the given store; the upstream ones are not copied into it
    assert store.snapshot() == {"svc_out": result.states["svc"].summary, "down_out": {"x": 7}}
    started = next(e for e in events if e.kind == EventKind.RUN_STARTED)
    assert started.data["workloads"] == ["svc", "down"]
    assert started.data["edges"] == [["svc", "down", "state"]]
    assert started.data["levels"] == [["svc"], ["down"]]
    announced = {e.workload for e in events if e.kind == EventKind.WORKLOAD_STATUS}
    assert announced == {"svc", "down"}


async def test_store_value_wins_over_initial_results() -> None:
    loaded = load(INSTANCE)
    result = await Engine(
        loaded,
        only={"down"},
        initial_results={"svc_out": {"seen": "old"}},
        store=MemoryStore({"svc_out": {"seen": "fresh"}}),
    ).run()
    assert result.states["down"].summary == {"x": "fresh"}


async def test_missing_upstream_result_fails_the_reader_with_a_clear_error() -> None:
    loaded = load(INSTANCE)
    result = await Engine(
        loaded, only={"svc", "down"}, initial_results={}, allow_lifecycles=True
    ).run()
    svc = result.states["svc"]
    assert svc.status == Status.FAILED
    assert svc.error == (
        "reads 'up_out', registered by 'up', which is outside this instance and has no "
        "result yet (it must complete before 'svc' can run)"
    )
    # its dependent is skipped as after any failure; the run fails
    assert result.states["down"].status == Status.SKIPPED
    assert result.status == "Failed"


async def test_upstream_behind_a_guard_or_depends_on_only_is_satisfied() -> None:
    loaded = load(
        f"""
  - name: up
    {identity("{ v: 1 }")}
    register: up_out
  - name: waits
    depends_on: [up]
    {identity()}
  - name: guarded
    {identity('{ v: "{{ up_out | default(0) }}" }')}
"""
    )
    result = await Engine(loaded, only={"waits", "guarded"}, initial_results={}).run()
    assert result.states["waits"].status == Status.COMPLETED
    assert result.states["guarded"].summary == {"v": 0}


async def test_root_streams_into_its_consumers() -> None:
    loaded = load(
        f"""
  - name: gen
    {SCHEDULED}
    process: {{ module: data:generate_from_list, params: {{ items: [1, 2, 3] }} }}
  - name: doubled
    stream_inputs: [gen]
    process: {{ module: data:map, params: {{ fields: {{ n: "{{{{ record.item * 2 }}}}" }} }} }}
  - name: out
    stream_inputs: [doubled]
    process: {{ module: data:format, params: {{ format: json_lines }} }}
    register: out
  - name: elsewhere
    {identity()}
"""
    )
    names = instance_workloads(loaded, "gen")
    result = await Engine(loaded, only=set(names), initial_results={}, allow_lifecycles=True).run()
    assert list(result.states) == ["gen", "doubled", "out"]
    assert result.states["doubled"].records_in == 3
    assert result.states["out"].summary["formatted_content"].splitlines() == [
        '{"n": 2}',
        '{"n": 4}',
        '{"n": 6}',
    ]


async def test_lifecycle_workload_needs_allow_lifecycles() -> None:
    loaded = load(INSTANCE)
    with pytest.raises(GxoError, match="'svc' has lifecycle 'supervise'"):
        Engine(loaded, only={"svc"}, initial_results={"up_out": {"v": 1}})
    with pytest.raises(GxoError, match="unknown workload"):
        Engine(loaded, only={"svc", "ghost"}, initial_results={}, allow_lifecycles=True)


async def test_only_without_initial_results_keeps_the_repl_meaning() -> None:
    # the REPL's `:run`: unselected workloads stay in the run as "not selected"
    loaded = load(INSTANCE)
    result = await Engine(loaded, only={"up"}).run()
    assert len(result.states) == 5
    assert result.states["down"].reason == "not selected"


def test_roots_and_standalone_workloads() -> None:
    loaded = load(INSTANCE)
    assert instance_roots(loaded) == ["svc"]
    # what runs once at apply: everything not owned by an instance
    assert standalone_workloads(loaded) == ["up", "plain_up", "unrelated"]


async def test_results_store_alone_serves_upstream_results() -> None:
    # the daemon's way: the upstream result is already in its store
    loaded = load(INSTANCE)
    store = MemoryStore({"up_out": {"v": 3}})
    result = await Engine(
        loaded,
        only=set(instance_workloads(loaded, "svc")),
        initial_results={},
        results_store=store,
        allow_lifecycles=True,
    ).run()
    assert result.status == "Completed"
    assert result.states["svc"].summary == {"seen": 3, "up": "Completed", "plain": "Pending"}
    assert result.states["down"].summary == {"x": 3}
    # a result of the run replaces the stored one; upstream ones are left alone
    assert store.get("up_out") == {"v": 3} and store.get("down_out") == {"x": 3}


STREAM_FROM_UPSTREAM = f"""
  - name: gen
    process: {{ module: data:generate_from_list, params: {{ items: [1, 2] }} }}
  - name: feed
    {SUPERVISE}
    process: {{ module: data:generate_from_list, params: {{ items: [100] }} }}
  - name: tick
    {SUPERVISE}
    {identity("{ a: 10 }")}
    register: t
  - name: mapped
    stream_inputs: [gen, feed]
    process: {{ module: data:map, params: {{ fields: {{ n: "{{{{ record.item + t.a }}}}" }} }} }}
"""


async def test_run_once_stream_producer_of_an_instance_workload_joins_the_instance() -> None:
    # `mapped` reads `tick`'s result and `gen`'s stream: records are not kept in
    # state, so `gen` runs again with each instance; the long-running `feed` does not
    loaded = load(STREAM_FROM_UPSTREAM)
    names = instance_workloads(loaded, "tick")
    assert names == ["gen", "tick", "mapped"]
    assert standalone_workloads(loaded) == []
    result = await Engine(loaded, only=set(names), initial_results={}, allow_lifecycles=True).run()
    assert result.status == "Completed"
    assert result.states["mapped"].records_in == 2  # nothing from the outside `feed`
    assert result.states["mapped"].records_out == 2


async def test_failing_supervised_root_runs_once_and_its_dependents_skip() -> None:
    # restarts are the reconciler's business: the engine runs the module once
    loaded = load(
        f"""
  - name: server
    {SUPERVISE}
    process: {{ module: exec, params: {{ command: sh, args: ["-c", "echo up; exit 3"] }} }}
    register: srv
  - name: after
    {identity('{ out: "{{ srv.stdout }}" }')}
"""
    )
    result = await Engine(
        loaded, only={"server", "after"}, initial_results={}, allow_lifecycles=True
    ).run()
    server = result.states["server"]
    assert (server.status, server.attempts) == (Status.FAILED, 1)
    assert server.summary["exit_code"] == 3 and server.summary["stdout"] == "up"
    assert result.states["after"].reason == "dependency failed: 'server' is Failed"
    assert result.exit_code == 1
