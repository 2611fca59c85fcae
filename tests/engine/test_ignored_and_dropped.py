"""Ignored failures and dropped records reach the events and the report."""

from __future__ import annotations

from gxo.engine.events import EventBus, EventKind


async def test_ignored_failure_and_drops_are_in_status_events_and_report(run_yaml) -> None:
    bus = EventBus()
    sub = bus.subscribe()
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: lossy
        channel_policy: { buffer_size: 2, overflow_strategy: drop_oldest }
        workloads:
          - name: flaky
            ignore_errors: true
            process: { module: control:assert, params: { condition: "false" } }
          - name: strict
            depends_on: [flaky]
            process: { module: control:identity, params: {} }
          - name: fast
            process: { module: data:generate_from_list, params: { items: [1, 2, 3, 4, 5] } }
          - name: slow
            stream_inputs: [fast]
            process: { module: control:barrier }
        """,
        bus=bus,
    )
    finals = {
        e.workload: e.data
        async for e in sub
        if e.kind == EventKind.WORKLOAD_STATUS and e.data["status"] != "Running"
    }
    assert finals["flaky"]["ignored"] is True and "ignored" not in finals["strict"]
    assert finals["fast"]["records_dropped"] == 3 and "records_dropped" not in finals["slow"]
    assert result.status == "Completed"
    assert result.states["flaky"].ignored and not result.states["strict"].ignored
    report = result.report()["workloads"]
    assert report["flaky"]["ignored"] is True
    assert all("ignored" not in report[n] for n in ("strict", "fast", "slow"))
    assert report["fast"]["records_dropped"] == 3
