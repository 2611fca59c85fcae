"""``workload_report`` (a daemon's history entry of one workload) is ``build_report``
of a run of that workload alone."""

from __future__ import annotations

from gxo.engine.report import workload_report
from gxo.engine.scheduler import RunResult


async def test_workload_report_is_the_report_of_a_run_of_that_workload_alone(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: one
        workloads:
          - name: ok
            process: { module: control:identity, params: { n: 1 } }
          - name: bad
            ignore_errors: true
            process: { module: control:assert, params: { condition: "false" } }
        """
    )
    started = result.started_at.isoformat().replace("+00:00", "Z")
    for name, state in result.states.items():
        status = str(state.status)
        alone = RunResult(
            result.playbook,
            result.run_id,
            status,
            result.started_at,
            state.duration_ms or 0.0,
            {name: state},
            [],
            result.secrets,
        )
        expected = alone.report()
        assert expected["workloads"][name]["status"] == status
        assert (
            workload_report(result.playbook, result.run_id, status, started, state, result.secrets)
            == expected
        )
