"""control:barrier waits for workloads that produce no stream (upstream CI fan-in).

Upstream's Flow-Control example lists plain build steps in a barrier's
``stream_inputs``; they are waited for like ``depends_on``: the barrier starts
after they ended, and is Skipped ("dependency failed") if one failed.
"""

from __future__ import annotations

import pytest

from gxo.config.loader import load_playbook
from gxo.errors import PlaybookValidationError


def statuses(result) -> dict[str, str]:
    return {name: s.status.value for name, s in result.states.items()}


FAN_IN = """
schemaVersion: "1.0.0"
name: fan-in
workloads:
  - name: build_backend
    process: {{ module: control:assert, params: {{ condition: "{backend_ok}", fail_message: backend broke }} }}
    ignore_errors: {ignore}
  - name: build_frontend
    process: {{ module: control:identity, params: {{ built: frontend }} }}
  - name: test_frontend
    depends_on: [build_frontend]
    process: {{ module: control:identity, params: {{ tested: frontend }} }}
  - name: test_barrier
    process: {{ module: control:barrier }}
    stream_inputs: [build_backend, build_frontend, test_frontend]
    register: barrier
  - name: deploy_stage
    when: "{{{{ _gxo.workloads.test_barrier.status == 'Completed' }}}}"
    process: {{ module: control:identity, params: {{ deployed: true }} }}
"""


async def test_barrier_waits_for_non_stream_inputs_like_depends_on(run_yaml) -> None:
    result = await run_yaml(FAN_IN.format(backend_ok="true", ignore="false"))
    assert result.status == "Completed"
    assert set(statuses(result).values()) == {"Completed"}
    barrier = result.states["test_barrier"]
    assert barrier.summary == {
        "synchronized_streams": ["build_backend", "build_frontend", "test_frontend"],
        "records_discarded": 0,
    }
    for name in ("build_backend", "build_frontend", "test_frontend"):
        assert result.states[name].finished_at <= barrier.started_at
    assert barrier.finished_at <= result.states["deploy_stage"].started_at


async def test_a_failed_input_skips_the_barrier_and_what_follows(run_yaml) -> None:
    result = await run_yaml(FAN_IN.format(backend_ok="false", ignore="false"))
    assert result.status == "Failed"
    assert statuses(result) == {
        "build_backend": "Failed",
        "build_frontend": "Completed",
        "test_frontend": "Completed",
        "test_barrier": "Skipped",
        "deploy_stage": "Skipped",
    }
    assert result.states["test_barrier"].reason == "dependency failed: 'build_backend' is Failed"


async def test_an_ignored_failure_lets_the_barrier_complete(run_yaml) -> None:
    result = await run_yaml(FAN_IN.format(backend_ok="false", ignore="true"))
    assert result.status == "Completed"
    assert result.states["test_barrier"].status.value == "Completed"
    assert result.states["deploy_stage"].status.value == "Completed"


async def test_barrier_mixes_streams_and_plain_workloads(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: mixed
        workloads:
          - name: gen
            process: { module: data:generate_from_list, params: { items: [1, 2, 3] } }
          - name: step
            process: { module: control:identity, params: { ok: true } }
          - name: wait
            process: { module: control:barrier }
            stream_inputs: [step, gen]
        """
    )
    assert result.status == "Completed"
    assert result.states["wait"].summary == {
        "synchronized_streams": ["step", "gen"],
        "records_discarded": 3,
    }
    assert result.states["wait"].records_in == 3
    assert result.states["gen"].records_out == 3


def test_graph_has_order_edges_for_plain_inputs_and_stream_edges_for_producers() -> None:
    loaded = load_playbook(
        text="""
schemaVersion: "1.0.0"
name: edges
workloads:
  - { name: gen, process: { module: data:generate_from_list, params: { items: [1] } } }
  - { name: step, process: { module: control:identity, params: {} } }
  - { name: wait, process: { module: control:barrier }, stream_inputs: [step, gen] }
"""
    )
    assert sorted(loaded.graph.edges()) == [("gen", "wait", "stream"), ("step", "wait", "order")]


def test_other_consumers_still_reject_inputs_that_produce_no_stream() -> None:
    with pytest.raises(PlaybookValidationError) as info:
        load_playbook(
            text="""
schemaVersion: "1.0.0"
name: not-a-barrier
workloads:
  - { name: step, process: { module: control:identity, params: {} } }
  - { name: fwd, process: { module: passthrough }, stream_inputs: [step] }
"""
        )
    assert "stream input 'step' (module control:identity) does not produce a stream" in str(
        info.value
    )
    assert ":6:" in str(info.value)  # the line of fwd's stream_inputs
