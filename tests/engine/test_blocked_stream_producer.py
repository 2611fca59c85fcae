"""A stream producer skipped because its dependency failed ends its stream as a failure.

Its consumers must end ``Skipped`` ("dependency failed"), not ``Completed`` with
zero records as if the producer had simply had nothing to say. A producer
skipped by its own false ``when`` is different: that skip satisfies dependents,
so its consumers run on an empty stream.
"""

from __future__ import annotations

import pytest


def statuses(result) -> dict[str, str]:
    return {name: s.status.value for name, s in result.states.items()}


BLOCKED = """
schemaVersion: "1.0.0"
name: blocked-producer
workloads:
  - name: broken
    process: {{ module: control:assert, params: {{ condition: "false", fail_message: boom }} }}
    register: broken_out
  - name: gen
    {link}
    process: {{ module: data:generate_from_list, params: {{ items: [1, 2, 3] }} }}
  - name: fwd
    stream_inputs: [gen]
    process: {{ module: passthrough }}
  - name: sink
    stream_inputs: [fwd]
    process: {{ module: data:format, params: {{ format: json }} }}
"""


@pytest.mark.parametrize(
    "link",
    [
        "depends_on: [broken]",  # order dependency
        'when: "{{ broken_out is defined }}"',  # state dependency through a register key
    ],
    ids=["depends_on", "register"],
)
async def test_consumers_of_a_blocked_producer_are_skipped(run_yaml, link: str) -> None:
    result = await run_yaml(BLOCKED.format(link=link))
    assert statuses(result) == {
        "broken": "Failed",
        "gen": "Skipped",
        "fwd": "Skipped",
        "sink": "Skipped",
    }
    assert result.states["gen"].reason == "dependency failed: 'broken' is Failed"
    assert result.states["fwd"].reason == "dependency failed: stream producer 'gen' failed"
    assert result.states["sink"].reason.startswith("dependency failed")
    assert result.states["fwd"].blocked and result.states["sink"].blocked
    # Nothing ran downstream: no summary was registered and nothing was read.
    assert result.states["sink"].summary is None
    assert result.states["fwd"].records_in == 0
    assert result.status == "Failed"


async def test_consumers_of_a_producer_skipped_by_its_own_when_run_on_an_empty_stream(
    run_yaml,
) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: when-skipped-producer
        workloads:
          - name: gen
            when: "false"
            process: { module: data:generate_from_list, params: { items: [1, 2, 3] } }
          - name: fwd
            stream_inputs: [gen]
            process: { module: passthrough }
        """
    )
    assert statuses(result) == {"gen": "Skipped", "fwd": "Completed"}
    assert result.states["fwd"].records_in == 0
    assert result.status == "Completed"
