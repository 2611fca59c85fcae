from __future__ import annotations


async def test_quickstart_shape_runs(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: smoke
        vars: { n: 2 }
        workloads:
          - name: a
            process: { module: control:identity, params: { x: "{{ n * 2 }}" } }
            register: a_out
          - name: b
            process: { module: control:assert, params: { condition: "a_out.x == 4" } }
        """
    )
    assert result.status == "Completed"
    assert result.states["a"].summary == {"x": 4}
    assert result.states["b"].status.value == "Completed"


async def test_results_have_constant_cost_reprs(run_yaml) -> None:
    # asyncio.run (3.11) reprs the main task's result at exit: it must stay cheap.
    result = await run_yaml(
        'schemaVersion: "1.0.0"\nname: r\nworkloads:\n  - { name: a, process: { module: control:identity, params: {} } }\n'
    )
    assert repr(result) == f"<RunResult r {result.run_id} Completed 1 workloads>"
    assert repr(result.states["a"]) == "<WorkloadState a Completed>"
