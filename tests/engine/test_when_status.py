"""`when` with status functions (success/failure/always/cancelled/paused), per-item
`when` with `loop`, and loops over a mapping — run and validate agree."""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

import pytest

from gxo.config.loader import load_playbook
from gxo.engine.events import EventBus, EventKind
from gxo.engine.signals import QueueBroker
from gxo.errors import PlaybookValidationError


def statuses(result: Any) -> dict[str, str]:
    return {name: s.status.value for name, s in result.states.items()}


FAILING = """
schemaVersion: "1.0.0"
name: status
vars: { env: prod }
workloads:
  - name: build
    process: { module: control:assert, params: { condition: "false", fail_message: boom } }
    register: built
  - name: after_build
    depends_on: [build]
    process: { module: control:identity, params: { ok: true } }
  - name: cleanup
    depends_on: [build]
    when: "always()"
    process: { module: control:identity, params: { state: "{{ _gxo.workloads.build.status }}" } }
    register: cleaned
  - name: notify
    depends_on: [build]
    when: "failure() and env == 'prod'"
    process: { module: control:identity, params: { sent: true } }
  - name: on_success
    depends_on: [build]
    when: "success()"
    process: { module: control:identity, params: { sent: true } }
  - name: after_on_success
    depends_on: [on_success]
    when: "failure()"
    process: { module: control:identity, params: { chained: true } }
  - name: after_cleanup
    depends_on: [cleanup]
    process: { module: control:identity, params: { fine: "{{ cleaned.state }}" } }
"""


async def test_status_functions_after_a_failure(run_yaml: Any) -> None:
    result = await run_yaml(FAILING)
    assert result.status == "Failed"
    assert statuses(result) == {
        "build": "Failed",
        "after_build": "Skipped",  # no status function: the dependency-failed skip
        "cleanup": "Completed",
        "notify": "Completed",
        "on_success": "Skipped",
        "after_on_success": "Completed",  # an ancestor failed: failure() is true
        "after_cleanup": "Completed",
    }
    assert result.states["cleanup"].summary == {"state": "Failed"}
    assert result.states["on_success"].blocked  # its own dependents are blocked too
    assert result.states["after_build"].reason.startswith("dependency failed")


async def test_status_functions_after_a_success(run_yaml: Any) -> None:
    text = FAILING.replace('condition: "false"', 'condition: "true"')
    result = await run_yaml(text)
    assert result.status == "Completed"
    got = statuses(result)
    assert got["cleanup"] == got["on_success"] == got["after_build"] == "Completed"
    assert got["notify"] == "Skipped" and not result.states["notify"].blocked
    assert got["after_on_success"] == "Skipped"


async def test_ignored_failure_is_not_failure(run_yaml: Any) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: ignored
        workloads:
          - name: flaky
            ignore_errors: true
            process: { module: control:assert, params: { condition: "false" } }
          - name: notify
            depends_on: [flaky]
            when: "failure()"
            process: { module: control:identity, params: {} }
          - name: go_on
            depends_on: [flaky]
            when: "success() and not cancelled()"
            process: { module: control:identity, params: {} }
        """
    )
    assert statuses(result) == {"flaky": "Failed", "notify": "Skipped", "go_on": "Completed"}
    assert result.status == "Completed"


@pytest.fixture
def engine_for():
    from gxo.engine.scheduler import Engine

    def make(text: str, **options: Any) -> Engine:
        loaded = load_playbook(text=textwrap.dedent(text).lstrip(), name="pb.gxo.yaml")
        return Engine(loaded, workspace="temp", **options)

    return make


async def test_interrupted_run_still_runs_always_and_cancelled(engine_for: Any) -> None:
    engine = engine_for(
        """
        schemaVersion: "1.0.0"
        name: interrupted
        workloads:
          - name: slow
            process: { module: exec, params: { command: sleep, args: ["30"] } }
          - name: next
            depends_on: [slow]
            process: { module: control:identity, params: {} }
          - name: cleanup
            depends_on: [next]
            when: "always()"
            process: { module: control:identity, params: { c: 1 } }
          - name: on_cancel
            depends_on: [slow]
            when: "cancelled()"
            process: { module: control:identity, params: { done: true } }
          - name: on_failure
            depends_on: [slow]
            when: "failure()"
            process: { module: control:identity, params: {} }
        """
    )
    task = asyncio.ensure_future(engine.run())
    for _ in range(400):
        if engine.states["slow"].status.value == "Running":
            break
        await asyncio.sleep(0.005)
    engine.cancel()
    result = await task
    assert result.status == "Interrupted"
    assert statuses(result) == {
        "slow": "Failed",
        "next": "Skipped",
        "cleanup": "Completed",
        "on_cancel": "Completed",
        "on_failure": "Skipped",  # cancelled is not failed
    }


async def test_per_item_when_and_mapping_loop(run_yaml: Any) -> None:
    bus = EventBus()
    iterations: list[dict[str, Any]] = []
    bus.add_listener(
        lambda e: iterations.append(e.data) if e.kind is EventKind.WORKLOAD_ITERATION else None
    )
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: items
        vars: { limit: 1 }
        workloads:
          - name: some
            loop: [1, 2, 3]
            when: "item > limit"
            process: { module: control:identity, params: { n: "{{ item }}" } }
            register: some
          - name: none
            loop: [1, 2]
            when: "item > 5"
            process: { module: control:identity, params: { n: "{{ item }}" } }
          - name: after_none
            depends_on: [none]
            process: { module: control:identity, params: {} }
          - name: mapping
            loop: { a: 1, b: 2 }
            loop_control: { loop_var: kv }
            when: "kv.value > 1 or loop_index == 0"
            process: { module: control:identity, params: { k: "{{ kv.key }}", v: "{{ kv.value }}" } }
            register: mapped
          - name: templated_mapping
            loop: "{{ {'x': 10} }}"
            process: { module: control:identity, params: { k: "{{ item.key }}" } }
            register: tm
          - name: whole
            loop: [1, 2]
            when: "limit > 5"
            process: { module: control:identity, params: {} }
        """,
        bus=bus,
    )
    assert result.status == "Completed"
    got = statuses(result)
    assert got["some"] == "Completed"
    assert [i["status"] for i in result.states["some"].iterations] == [
        "Skipped",
        "Completed",
        "Completed",
    ]
    assert result.states["some"].summary[0] == {
        "skipped": True,
        "reason": "when condition is false",
    }
    assert result.states["some"].summary[1:] == [{"n": 2}, {"n": 3}]
    assert got["none"] == "Skipped" and not result.states["none"].blocked
    assert result.states["none"].reason == "when condition is false for every item"
    assert got["after_none"] == "Completed"
    assert result.states["mapping"].summary == [{"k": "a", "v": 1}, {"k": "b", "v": 2}]
    assert result.states["templated_mapping"].summary == [{"k": "x"}]
    assert got["whole"] == "Skipped" and result.states["whole"].iterations == []
    assert any(i.get("status") == "Skipped" for i in iterations)


async def test_per_item_when_that_fails_to_render_fails_the_item(run_yaml: Any) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: bad_item
        workloads:
          - name: w
            loop: [1, "x"]
            when: "item + 1 > 0"
            process: { module: control:identity, params: {} }
        """
    )
    assert statuses(result) == {"w": "Failed"}
    assert "loop iteration 1 failed" in result.states["w"].error


def test_validation_knows_status_functions_and_refuses_them_elsewhere() -> None:
    ok = load_playbook(
        text=textwrap.dedent(
            """
            schemaVersion: "1.0.0"
            name: ok
            workloads:
              - name: a
                process: { module: control:identity, params: {} }
              - name: b
                depends_on: [a]
                loop: [1, 2]
                when: "(always() or failure() or success() or cancelled()) and item > 1"
                process: { module: control:identity, params: { at: "{{ now().year }}" } }
              - name: c
                depends_on: [a]
                when: "paused()"
                process: { module: control:identity, params: {} }
            """
        ).lstrip(),
        name="ok.gxo.yaml",
    )
    assert any("paused() is always false" in w for w in ok.warnings)
    bad = textwrap.dedent(
        """\
        schemaVersion: "1.0.0"
        name: bad
        workloads:
          - name: a
            process: { module: control:identity, params: { x: "{{ failure() }}" } }
        """
    )
    with pytest.raises(PlaybookValidationError) as info:
        load_playbook(text=bad, name="bad.gxo.yaml")
    assert "failure() is a status function" in str(info.value)
    assert "bad.gxo.yaml:5" in str(info.value)


def test_status_function_outside_when_fails_at_run_time_too() -> None:
    from gxo.errors import TemplateError
    from gxo.template.engine import TemplateEngine

    with pytest.raises(TemplateError, match="only be used in a workload's 'when'"):
        TemplateEngine().evaluate("always()", {})


PAUSE_HOOK = """
schemaVersion: "1.0.0"
name: hooks
workloads:
  - name: approve
    process:
      module: control:wait_for_signal
      params: { prompt: "Ship it?", timeout: 30s }
    register: approval
  - name: notify
    depends_on: [approve]
    when: "paused()"
    process:
      module: control:identity
      params: { prompt: "{{ _gxo.pause.prompt }}", token: "{{ _gxo.pause.token }}", run: "{{ _gxo.pause.run_id }}" }
    register: notified
  - name: after
    depends_on: [approve]
    when: "always()"
    process: { module: control:identity, params: { payload: "{{ approval.payload }}" } }
"""


async def test_paused_hook_starts_while_paused_without_token(run_yaml: Any) -> None:
    broker = QueueBroker(identity="alice")
    bus = EventBus()
    hook_done = asyncio.Event()
    bus.add_listener(
        lambda e: (
            hook_done.set()
            if e.kind is EventKind.WORKLOAD_STATUS
            and e.workload == "notify"
            and e.data["status"] == "Completed"
            else None
        )
    )
    # concurrency 1: the paused workload holds the only slot, the hook runs anyway
    run = asyncio.ensure_future(run_yaml(PAUSE_HOOK, signals=broker, bus=bus, concurrency=1))
    await asyncio.wait_for(hook_done.wait(), 10)
    assert "approve" in broker.pending  # still paused
    broker.resume("approve", {"ok": 1})
    result = await run
    assert result.status == "Completed", result.states["notify"].error
    assert result.states["notify"].summary == {
        "prompt": "Ship it?",
        "token": None,
        "run": result.run_id,
    }
    assert result.states["after"].summary == {"payload": {"ok": 1}}
    assert result.states["after"].started_at >= result.states["approve"].finished_at


async def test_paused_hook_skipped_when_nobody_can_answer(run_yaml: Any) -> None:
    result = await run_yaml(PAUSE_HOOK)  # no broker: approve fails at once, never paused
    assert statuses(result)["notify"] == "Skipped"
    assert result.states["notify"].blocked
    # always() ran, and the result it reads was never registered
    assert "undefined name 'approval'" in result.states["after"].error


async def test_interrupt_phase_grace_chains_and_a_second_interrupt(
    engine_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gxo.engine import scheduler

    monkeypatch.setattr(scheduler, "INTERRUPT_GRACE", 0.3)
    text = """
        schemaVersion: "1.0.0"
        name: grace
        workloads:
          - name: slow
            process: { module: exec, params: { command: sleep, args: ["30"] } }
          - name: stuck_cleanup
            depends_on: [slow]
            when: "always()"
            process: { module: exec, params: { command: sleep, args: ["30"] } }
          - name: report
            depends_on: [stuck_cleanup]
            when: "cancelled()"
            process: { module: control:identity, params: {} }
          - name: plain
            depends_on: [stuck_cleanup]
            process: { module: control:identity, params: {} }
        """
    engine = engine_for(text)
    task = asyncio.ensure_future(engine.run())
    await _until_running(engine, "slow")
    engine.cancel()
    result = await task
    got = statuses(result)
    assert got == {
        "slow": "Failed",
        "stuck_cleanup": "Failed",
        "report": "Completed",  # decided after the hook it waits for
        "plain": "Skipped",
    }
    assert "still running 0.3s after the interruption" in result.states["stuck_cleanup"].error

    # A second interruption during the always() phase ends it.
    engine = engine_for(text)
    monkeypatch.setattr(scheduler, "INTERRUPT_GRACE", 30.0)
    task = asyncio.ensure_future(engine.run())
    await _until_running(engine, "slow")
    engine.cancel()
    await _until_running(engine, "stuck_cleanup")
    engine.cancel()
    result = await task
    got = statuses(result)
    assert got["stuck_cleanup"] == "Failed" and got["report"] == "Skipped"
    assert result.states["report"].reason == "run interrupted"


async def _until_running(engine: Any, name: str) -> None:
    for _ in range(1000):
        if engine.states[name].status.value == "Running":
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{name} never ran")


async def test_status_workload_of_an_instance_with_a_missing_upstream(engine_for: Any) -> None:
    engine = engine_for(
        """
        schemaVersion: "1.0.0"
        name: inst
        workloads:
          - name: up
            process: { module: control:identity, params: { v: 1 } }
            register: upv
          - name: down
            when: "always()"
            process: { module: control:identity, params: { v: "{{ upv.v }}" } }
          - name: other
            depends_on: [up]
            when: "success()"
            process: { module: control:identity, params: {} }
        """,
        only={"down", "other"},
        initial_results={},
    )
    result = await engine.run()
    assert result.states["down"].status.value == "Failed"
    assert "outside this instance" in result.states["down"].error
    assert result.states["other"].status.value == "Completed"


def test_pause_tap_passes_the_broker_api_through() -> None:
    from gxo.engine.scheduler import _PauseTap

    broker = QueueBroker(identity="bob")
    tap = _PauseTap(broker, lambda request, data: None)
    assert tap.pending is broker.pending and tap.identity == "bob"
