"""SPEC §3 execution semantics, end to end through the Engine."""

from __future__ import annotations

import time

import pytest

from gxo.engine.events import EventBus, EventKind


def statuses(result) -> dict[str, str]:
    return {name: s.status.value for name, s in result.states.items()}


async def test_registered_results_flow_and_dependencies_are_inferred(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: infer
        workloads:
          - name: consumer            # listed first: order comes from the data, not the file
            process: { module: control:identity, params: { got: "{{ produced.value + 1 }}" } }
            register: consumed
          - name: producer
            process: { module: control:identity, params: { value: 41 } }
            register: produced
        """
    )
    assert result.status == "Completed"
    assert result.states["consumer"].summary == {"got": 42}
    assert result.states["producer"].finished_at <= result.states["consumer"].started_at


async def test_failure_skips_dependents_transitively_and_fails_the_run(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: failing
        workloads:
          - name: broken
            process: { module: control:assert, params: { condition: "false", fail_message: boom } }
            register: b
          - name: child
            process: { module: control:identity, params: { x: "{{ b }}" } }
            register: c
          - name: grandchild
            process: { module: control:identity, params: { x: "{{ c }}" } }
          - name: independent
            process: { module: control:identity, params: { ok: true } }
        """
    )
    assert result.status == "Failed"
    assert result.exit_code == 1
    assert statuses(result) == {
        "broken": "Failed",
        "child": "Skipped",
        "grandchild": "Skipped",
        "independent": "Completed",
    }
    assert result.states["broken"].error == "boom"
    assert result.states["child"].reason == "dependency failed: 'broken' is Failed"
    assert "dependency failed" in result.states["grandchild"].reason


async def test_ignore_errors_lets_dependents_run_and_status_is_visible(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: ignored
        workloads:
          - name: flaky
            ignore_errors: true
            process: { module: exec, params: { command: sh, args: ["-c", "echo out; echo err >&2; exit 3"] } }
            register: flaky_out
          - name: check
            process:
              module: control:assert
              params:
                condition: >-
                  _gxo.workloads.flaky.status == 'Failed' and flaky_out.exit_code == 3
                  and flaky_out.stdout == 'out' and flaky_out.stderr == 'err'
        """
    )
    assert result.status == "Completed"
    assert result.exit_code == 0
    flaky = result.states["flaky"]
    assert flaky.status.value == "Failed"
    assert flaky.summary["exit_code"] == 3  # kept in the report despite the failure
    assert "exited with code 3" in flaky.error
    assert result.states["check"].status.value == "Completed"


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("false", "Skipped"),
        ("0", "Skipped"),
        ("''", "Skipped"),
        ("'false'", "Skipped"),
        ("none", "Skipped"),
        ('"[]"', "Skipped"),
        ('"{}"', "Skipped"),
        ("'{{ n > 5 }}'", "Skipped"),
        ("n > 1", "Completed"),
        ("'{{ n > 1 }}'", "Completed"),
        ("true", "Completed"),
        ("\"'yes'\"", "Completed"),
    ],
)
async def test_when_truthiness(run_yaml, when: str, expected: str) -> None:
    result = await run_yaml(
        f"""
        schemaVersion: "1.0.0"
        name: when
        vars: {{ n: 2 }}
        workloads:
          - name: maybe
            when: {when}
            process: {{ module: control:identity, params: {{}} }}
        """
    )
    assert result.states["maybe"].status.value == expected
    if expected == "Skipped":
        assert result.states["maybe"].reason == "when condition is false"


async def test_skipped_by_when_satisfies_dependents(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: skip-ok
        workloads:
          - name: optional
            when: "false"
            process: { module: control:identity, params: {} }
          - name: after
            depends_on: [optional]
            process: { module: control:identity, params: { s: "{{ _gxo.workloads.optional.status }}" } }
        """
    )
    assert statuses(result) == {"optional": "Skipped", "after": "Completed"}
    assert result.states["after"].summary == {"s": "Skipped"}


async def test_loop_registers_list_in_item_order_with_custom_var(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: loop
        workloads:
          - name: each
            loop: [3, 1, 2]
            loop_control: { loop_var: n, parallel: 3 }
            process: { module: exec, params: { command: sh, args: ["-c", "sleep 0.0{{ n }}; echo {{ n }}"] } }
            register: outs
          - name: check
            process:
              module: control:assert
              params: { condition: "outs | map(attribute='stdout') | list == ['3', '1', '2']" }
        """
    )
    assert result.status == "Completed", result.states["check"].error
    assert [i["status"] for i in result.states["each"].iterations] == ["Completed"] * 3


async def test_loop_from_template_and_one_failed_iteration_fails_it(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: loop-fail
        vars: { items: [1, 2, 3] }
        workloads:
          - name: each
            loop: "{{ items }}"
            process: { module: control:assert, params: { condition: "item != 2", fail_message: "two is bad" } }
            register: r
        """
    )
    each = result.states["each"]
    assert each.status.value == "Failed"
    assert each.error == "loop iteration 1 failed: two is bad"
    assert [i["status"] for i in each.iterations] == ["Completed", "Failed", "Completed"]
    assert len(each.summary) == 3


async def test_loop_over_a_mapping_iterates_key_value_items(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: loop-map
        vars: { m: { a: 1 } }
        workloads:
          - name: each
            loop: "{{ m }}"
            process: { module: control:identity, params: { k: "{{ item.key }}" } }
        """
    )
    assert result.states["each"].summary == [{"k": "a"}]  # like '| dict2items'


async def test_loop_parallelism_is_bounded(run_yaml) -> None:
    start = time.monotonic()
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: parallel
        workloads:
          - name: each
            loop: [1, 2, 3, 4]
            loop_control: { parallel: 2 }
            process: { module: exec, params: { command: sleep, args: ["0.2"] } }
        """
    )
    elapsed = time.monotonic() - start
    assert result.status == "Completed"
    assert 0.38 < elapsed < 2.0  # two waves of 0.2 s, not one and not four


async def test_retry_backoff_delays_and_attempts(run_yaml, tmp_path) -> None:
    counter = tmp_path / "count"
    bus = EventBus()
    events = []
    bus.add_listener(events.append)
    result = await run_yaml(
        f"""
        schemaVersion: "1.0.0"
        name: retry
        workloads:
          - name: flaky
            retry: {{ attempts: 4, delay: 10ms, backoff_factor: 3, max_delay: 50ms }}
            process:
              module: exec
              params:
                command: sh
                args: ["-c", "n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; [ $n -ge 4 ]"]
        """,
        bus=bus,
    )
    flaky = result.states["flaky"]
    assert flaky.status.value == "Completed"
    assert flaky.attempts == 4
    delays = [e.data["delay"] for e in events if e.kind == EventKind.WORKLOAD_RETRYING]
    assert delays == [0.01, 0.03, 0.05]  # 10ms, ×3, capped at 50ms


async def test_retry_exhausted_reports_attempts(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: retry-fail
        workloads:
          - name: never
            retry: { attempts: 3, delay: 1ms, jitter: 0.5 }
            process: { module: exec, params: { command: "false" } }
        """
    )
    never = result.states["never"]
    assert never.status.value == "Failed"
    assert never.attempts == 3
    assert never.error == "command exited with code 1"


async def test_template_errors_are_not_retried(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: no-retry
        workloads:
          - name: bad
            retry: { attempts: 5, delay: 1s }
            process: { module: control:identity, params: { x: "{{ 1 / 0 }}" } }
        """
    )
    bad = result.states["bad"]
    assert bad.attempts == 1
    assert bad.error.startswith("param 'x': ZeroDivisionError")


async def test_timeout_fails_the_attempt(run_yaml) -> None:
    start = time.monotonic()
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: timeout
        workloads:
          - name: slow
            timeout: 200ms
            process: { module: exec, params: { command: sleep, args: ["30"] } }
        """
    )
    assert time.monotonic() - start < 5
    assert result.states["slow"].status.value == "Failed"
    assert result.states["slow"].error == "timed out after 200ms"


async def test_undefined_name_at_runtime_names_workload_param_and_name(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: undefined
        workloads:
          - name: first
            process: { module: control:identity, params: { a: 1 } }
            register: first_out
          - name: second
            process: { module: control:identity, params: { nested: { url: "{{ first_out.missing_key }}" } } }
        """
    )
    assert result.states["second"].error == (
        "param 'nested.url': undefined name 'missing_key' in '{{ first_out.missing_key }}'"
    )


async def test_bad_rendered_params_fail_with_a_module_params_error(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: params
        vars: { codes: "not-a-list" }
        workloads:
          - name: run
            process: { module: exec, params: { command: "true", ok_exit_codes: "{{ codes }}" } }
        """
    )
    assert result.states["run"].error.startswith("module 'exec' params: param 'ok_exit_codes'")


async def test_deep_copy_protects_state_and_unsafe_reference_shares_it(run_yaml) -> None:
    # A module that mutates what it read: control:identity returns params, which
    # are rendered from state; mutate them through the summary of a second reader.
    from gxo.engine.context import ModuleContext
    from gxo.modules.base import FreeParams, Module, register

    @register("tests:mutator", layer="test")
    class Mutator(Module):
        """Mutates the list it was given (a misbehaving module)."""

        Params = FreeParams

        async def perform(self, ctx: ModuleContext, params: FreeParams) -> dict:
            data = params.model_extra["data"]
            data.append("mutated")
            return {"seen": len(data)}

    text = """
        schemaVersion: "1.0.0"
        name: copy
        state_policy: {{ access_mode: {mode} }}
        workloads:
          - name: source
            process: {{ module: control:identity, params: {{ items: [1, 2] }} }}
            register: src
          - name: mutate
            process: {{ module: "tests:mutator", params: {{ data: "{{{{ src['items'] }}}}" }} }}
            register: m
          - name: after
            depends_on: [mutate]
            process: {{ module: control:identity, params: {{ items: "{{{{ src['items'] }}}}" }} }}
    """
    safe = await run_yaml(text.format(mode="deep_copy"))
    assert safe.states["after"].summary == {"items": [1, 2]}
    shared = await run_yaml(text.format(mode="unsafe_direct_reference"))
    assert shared.states["after"].summary == {"items": [1, 2, "mutated"]}


async def test_extra_vars_override_playbook_vars_and_vars_are_templated(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: vars
        vars: { env: dev, base: "https://{{ env }}.example", port: 1 }
        workloads:
          - name: show
            process: { module: control:identity, params: { base: "{{ base }}", port: "{{ port }}" } }
        """,
        extra_vars={"env": "prod", "port": 8080},
    )
    assert result.states["show"].summary == {"base": "https://prod.example", "port": 8080}


async def test_gxo_context_exposes_run_id_and_workspace(run_yaml, tmp_path) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: ctx
        workloads:
          - name: show
            process:
              module: control:identity
              params: { run: "{{ _gxo.run_id }}", ws: "{{ _gxo.workspace }}", legacy: "{{ _gxo.tasks | length }}" }
        """,
        workspace=tmp_path / "ws",
        run_id="abc",
    )
    assert result.states["show"].summary == {
        "run": "abc",
        "ws": str((tmp_path / "ws").resolve()),
        "legacy": 1,
    }


async def test_relative_paths_resolve_in_the_workspace(run_yaml, tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: ws
        workloads:
          - name: where
            process: { module: exec, params: { command: pwd, cwd: sub } }
        """,
        workspace=tmp_path,
    )
    assert result.states["where"].summary["stdout"] == str((tmp_path / "sub").resolve())


async def test_temp_workspace_is_removed_after_the_run(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: temp
        workloads:
          - name: where
            process: { module: exec, params: { command: pwd } }
        """,
        workspace="temp",
    )
    from pathlib import Path

    ws = Path(result.states["where"].summary["stdout"])
    assert ws.name.startswith("gxo-workspace-")
    assert not ws.exists()


async def test_concurrency_limit_is_respected(run_yaml) -> None:
    start = time.monotonic()
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: conc
        workloads:
          - { name: a, process: { module: exec, params: { command: sleep, args: ["0.2"] } } }
          - { name: b, process: { module: exec, params: { command: sleep, args: ["0.2"] } } }
          - { name: c, process: { module: exec, params: { command: sleep, args: ["0.2"] } } }
        """,
        concurrency=1,
    )
    assert result.status == "Completed"
    assert time.monotonic() - start >= 0.58


async def test_vars_template_error_fails_the_run_cleanly(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: badvars
        vars: { a: "{{ 1 / 0 }}" }
        workloads:
          - { name: x, process: { module: control:identity, params: {} } }
        """
    )
    assert result.status == "Failed"
    assert any("vars.a" in w for w in result.warnings)
    assert result.states["x"].status.value == "Skipped"


@pytest.mark.parametrize(
    ("strategy", "dropped"), [("drop_new", True), ("drop_oldest", True), ("block", False)]
)
async def test_overflow_drops_are_counted_in_the_report(
    run_yaml, strategy: str, dropped: bool
) -> None:
    result = await run_yaml(
        f"""
        schemaVersion: "1.0.0"
        name: drops
        channel_policy: {{ buffer_size: 2, overflow_strategy: {strategy} }}
        workloads:
          - name: fast
            process: {{ module: data:generate_from_list, params: {{ items: [1, 2, 3, 4, 5, 6, 7, 8] }} }}
          - name: slow
            stream_inputs: [fast]
            process: {{ module: exec, params: {{ command: "true" }} }}
        """.replace(
            'process: { module: exec, params: { command: "true" } }',
            "process: { module: control:barrier }",
        )
    )
    report = result.report()
    fast, slow = report["workloads"]["fast"], report["workloads"]["slow"]
    assert fast["records_out"] == 8
    if dropped:
        assert fast["records_dropped"] == 6 and slow["records_in"] == 2
    else:
        assert "records_dropped" not in fast and slow["records_in"] == 8


async def test_stream_producer_failure_skips_consumers_unless_ignored(run_yaml) -> None:
    text = """
        schemaVersion: "1.0.0"
        name: upstream
        workloads:
          - name: gen
            process: {{ module: data:generate_from_list, params: {{ items: "{{{{ [1, 2] + [1 / 0] }}}}" }} }}
            ignore_errors: {ignore}
          - name: fwd
            stream_inputs: [gen]
            process: {{ module: passthrough }}
          - name: sink
            stream_inputs: [fwd]
            process: {{ module: control:barrier }}
    """
    strict = await run_yaml(text.format(ignore="false"))
    assert statuses(strict) == {"gen": "Failed", "fwd": "Skipped", "sink": "Skipped"}
    assert strict.states["fwd"].reason == "dependency failed: stream producer 'gen' failed"
    lenient = await run_yaml(text.format(ignore="true"))
    assert statuses(lenient) == {"gen": "Failed", "fwd": "Completed", "sink": "Completed"}
    assert lenient.status == "Completed"


async def test_run_events_arrive_in_order_and_finish_last(run_yaml) -> None:
    bus = EventBus()
    sub = bus.subscribe()
    await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: events
        workloads:
          - { name: a, process: { module: exec, params: { command: echo, args: [hi] } } }
          - { name: b, depends_on: [a], process: { module: control:identity, params: {} } }
        """,
        bus=bus,
    )
    events = [e async for e in sub]
    kinds = [e.kind for e in events]
    assert kinds[0] == EventKind.RUN_STARTED and kinds[-1] == EventKind.RUN_FINISHED
    terminal = [
        i
        for i, e in enumerate(events)
        if e.kind == EventKind.WORKLOAD_STATUS
        and e.data["status"] in ("Completed", "Failed", "Skipped")
    ]
    assert len(terminal) == 2 and max(terminal) < len(events) - 1
    assert [e.data["line"] for e in events if e.kind == EventKind.LOG] == ["hi"]
    assert [e.seq for e in events] == sorted(e.seq for e in events)


async def test_every_final_status_is_announced_even_when_vars_fail(run_yaml) -> None:
    bus = EventBus()
    sub = bus.subscribe()
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: badvars-events
        vars: { a: "{{ 1 / 0 }}" }
        workloads:
          - { name: x, process: { module: control:identity, params: {} } }
        """,
        bus=bus,
    )
    events = [e async for e in sub]
    assert [e.kind for e in events] == [
        EventKind.RUN_STARTED,
        EventKind.WORKLOAD_STATUS,
        EventKind.RUN_FINISHED,
    ]
    assert events[1].data["status"] == "Skipped"
    assert events[1].data["reason"] == "run aborted: playbook vars failed to render"
    assert result.states["x"].reason == "run aborted: playbook vars failed to render"
