"""Engine.cancel_workload: one workload cancelled (``x`` in ``gxo ui``), the run goes on.

A running workload's task is cancelled (its child processes are killed, as on an
interruption) and it ends Failed with a "cancelled ..." error; a pending one never
starts. Its dependents are skipped ("dependency cancelled"), ``always()`` and
``cancelled()`` hooks run, ``failure()`` ones do not, independent branches finish.
"""

from __future__ import annotations

import asyncio
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from gxo.config.loader import load_playbook
from gxo.engine.events import EventBus, EventKind
from gxo.engine.scheduler import Engine


def statuses(result: Any) -> dict[str, str]:
    return {name: s.status.value for name, s in result.states.items()}


def engine_for(text: str, **options: Any) -> Engine:
    loaded = load_playbook(text=textwrap.dedent(text).lstrip(), name="pb.gxo.yaml")
    return Engine(loaded, workspace="temp", **options)


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.005)):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in time")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Recorder:
    """Every WORKLOAD_STATUS event, as (workload, status, error)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str | None, str, str | None]] = []

    def __call__(self, event: Any) -> None:
        if event.kind == EventKind.WORKLOAD_STATUS:
            self.seen.append((event.workload, event.data["status"], event.data.get("error")))


SLEEPER = """
schemaVersion: "1.0.0"
name: cancel-one
workloads:
  - name: slow
    process:
      module: exec
      params: {{ command: sh, args: ["-c", "echo $$ > {pidfile}; exec sleep 30"] }}
  - name: next
    depends_on: [slow]
    process: {{ module: control:identity, params: {{}} }}
  - name: after_next
    depends_on: [next]
    process: {{ module: control:identity, params: {{}} }}
  - name: cleanup
    depends_on: [next]
    when: "always()"
    process: {{ module: control:identity, params: {{ state: "{{{{ _gxo.workloads.slow.status }}}}" }} }}
  - name: on_cancel
    depends_on: [slow]
    when: "cancelled()"
    process: {{ module: control:identity, params: {{ done: true }} }}
  - name: on_cancel_below
    depends_on: [next]
    when: "cancelled()"
    process: {{ module: control:identity, params: {{ done: true }} }}
  - name: on_failure
    depends_on: [slow]
    when: "failure()"
    process: {{ module: control:identity, params: {{}} }}
  - name: on_success
    depends_on: [slow]
    when: "success()"
    process: {{ module: control:identity, params: {{}} }}
  - name: other
    process: {{ module: exec, params: {{ command: sleep, args: ["0.2"] }} }}
  - name: after_other
    depends_on: [other]
    process: {{ module: control:identity, params: {{ ok: true }} }}
"""


async def test_cancel_a_running_workload(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    bus = EventBus()
    events = Recorder()
    bus.add_listener(events)
    engine = engine_for(SLEEPER.format(pidfile=pidfile), bus=bus)
    task = asyncio.ensure_future(engine.run())
    await wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    pid = int(pidfile.read_text())
    assert engine.states["slow"].status.value == "Running"
    assert alive(pid)

    assert engine.cancel_workload("slow") is True
    assert engine.cancel_workload("slow") is False  # already being cancelled
    result = await asyncio.wait_for(task, 10)

    assert not alive(pid)  # the child was killed and reaped, as on an interruption
    slow = result.states["slow"]
    assert slow.status.value == "Failed"
    assert slow.error == "cancelled by the user"
    assert statuses(result) == {
        "slow": "Failed",
        "next": "Skipped",
        "after_next": "Skipped",
        "cleanup": "Completed",
        "on_cancel": "Completed",
        "on_cancel_below": "Completed",  # cancellation propagates as cancellation
        "on_failure": "Skipped",  # cancelled is not failed
        "on_success": "Skipped",
        "other": "Completed",  # an independent branch goes on
        "after_other": "Completed",
    }
    assert result.states["next"].reason == "dependency cancelled: 'slow' was cancelled"
    assert result.states["next"].blocked
    assert result.states["after_next"].reason == "dependency cancelled: 'next' was cancelled"
    assert result.states["cleanup"].summary == {"state": "Failed"}
    assert result.status == "Failed"  # not everything ran; not an interruption (130)
    assert result.exit_code == 1
    assert ("slow", "Running", None) in events.seen
    assert ("slow", "Failed", "cancelled by the user") in events.seen
    assert engine.cancel_workload("other") is False  # over: nothing to cancel
    with pytest.raises(KeyError):
        engine.cancel_workload("nope")


async def test_cancel_a_pending_workload_it_never_starts(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    bus = EventBus()
    events = Recorder()
    bus.add_listener(events)
    engine = engine_for(
        f"""
        schemaVersion: "1.0.0"
        name: cancel-pending
        workloads:
          - name: first
            process: {{ module: exec, params: {{ command: sleep, args: ["0.3"] }} }}
          - name: later
            depends_on: [first]
            process: {{ module: exec, params: {{ command: touch, args: ["{marker}"] }} }}
          - name: after_later
            depends_on: [later]
            process: {{ module: control:identity, params: {{}} }}
          - name: hook
            depends_on: [later]
            when: "cancelled()"
            process: {{ module: control:identity, params: {{ saw: cancelled }} }}
        """,
        bus=bus,
    )
    task = asyncio.ensure_future(engine.run())
    await wait_for(lambda: engine.states["first"].status.value == "Running")
    assert engine.cancel_workload("later", reason="not today") is True
    # Announced at once (the TUI shows it), long before its turn would come.
    assert engine.states["later"].status.value == "Failed"
    assert ("later", "Failed", "cancelled: not today") in events.seen
    result = await asyncio.wait_for(task, 10)
    assert not marker.exists()
    assert statuses(result) == {
        "first": "Completed",
        "later": "Failed",
        "after_later": "Skipped",
        "hook": "Completed",
    }
    later = result.states["later"]
    assert later.error == "cancelled: not today" and later.started_at is None
    assert later.attempts == 0
    assert [s for w, s, _ in events.seen if w == "later"] == ["Failed"]  # never Running
    assert result.states["after_later"].reason.startswith("dependency cancelled")


async def test_cancel_before_the_run_starts_and_after_an_interruption(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    engine = engine_for(
        f"""
        schemaVersion: "1.0.0"
        name: early
        workloads:
          - name: a
            process: {{ module: control:identity, params: {{}} }}
          - name: b
            process:
              module: exec
              params: {{ command: sh, args: ["-c", "echo $$ > {pidfile}; exec sleep 30"] }}
          - name: c
            depends_on: [b]
            process: {{ module: control:identity, params: {{}} }}
        """
    )
    assert engine.cancel_workload("a") is True  # pending: never runs
    task = asyncio.ensure_future(engine.run())
    await wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    engine.cancel()  # the whole run: cancel_workload has nothing left to do
    assert engine.cancel_workload("c") is False
    result = await asyncio.wait_for(task, 10)
    assert result.status == "Interrupted"
    assert result.states["a"].status.value == "Failed"
    assert result.states["a"].error == "cancelled by the user"
    assert result.states["b"].error == "cancelled: the run was interrupted"
    assert result.states["c"].reason == "run interrupted"


async def test_cancel_a_loop_and_a_stream_member(tmp_path: Path) -> None:
    engine = engine_for(
        f"""
        schemaVersion: "1.0.0"
        name: cancel-members
        workloads:
          - name: looping
            loop: [1, 2, 3]
            loop_control: {{ parallel: 3 }}
            process:
              module: exec
              params:
                command: sh
                args: ["-c", "echo $$ > {tmp_path}/pid{{{{ item }}}}; exec sleep 30"]
          - name: producer
            process: {{ module: "connection:listen", params: {{ address: 127.0.0.1, port: 0 }} }}
          - name: consumer
            stream_inputs: [producer]
            process: {{ module: passthrough }}
        """
    )
    pidfiles = [tmp_path / f"pid{i}" for i in (1, 2, 3)]
    task = asyncio.ensure_future(engine.run())
    # Each child started (it wrote its pid): the cancel reaches spawned processes.
    await wait_for(
        lambda: (
            engine.states["producer"].status.value == "Running"
            and all(p.exists() and p.read_text().strip() for p in pidfiles)
        )
    )
    await asyncio.sleep(0.05)
    pids = [int(p.read_text()) for p in pidfiles]
    assert engine.cancel_workload("producer") is True  # a member of a two-member pipeline
    assert engine.cancel_workload("looping", reason="cancelled: enough") is True
    result = await asyncio.wait_for(task, 10)
    assert not any(alive(pid) for pid in pids)
    assert result.states["producer"].error == "cancelled by the user"
    assert result.states["looping"].error == "cancelled: enough"
    assert result.states["looping"].status.value == "Failed"
    for record in result.states["looping"].iterations:  # none left "Running"
        assert record["status"] == "Failed" and record["error"] == "cancelled: enough"
        assert record["duration_ms"] > 0 and record["item"] in (1, 2, 3)
    assert result.states["consumer"].status.value == "Skipped"
    assert result.status == "Failed"


async def test_summary_line_counts_user_cancels_as_cancelled(tmp_path: Path) -> None:
    from rich.console import Console

    from gxo.console import print_summary

    engine = engine_for(
        """
        schemaVersion: "1.0.0"
        name: summary
        workloads:
          - name: a
            process: { module: exec, params: { command: sleep, args: ["0.2"] } }
          - name: b
            depends_on: [a]
            process: { module: control:identity, params: {} }
        """
    )
    engine.cancel_workload("b")
    result = await engine.run()
    console = Console(record=True, width=200, color_system=None)
    print_summary(console, result)
    text = console.export_text()
    assert "1 completed, 1 cancelled" in text and "failed" not in text


async def test_cancel_a_running_hook_and_outside_a_partial_run(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    text = f"""
        schemaVersion: "1.0.0"
        name: hooks
        workloads:
          - name: first
            process: {{ module: control:identity, params: {{}} }}
          - name: hook
            depends_on: [first]
            when: "always()"
            process:
              module: exec
              params: {{ command: sh, args: ["-c", "echo $$ > {pidfile}; exec sleep 30"] }}
          - name: after
            depends_on: [hook]
            process: {{ module: control:identity, params: {{}} }}
        """
    engine = engine_for(text, only={"first", "hook", "after"})
    task = asyncio.ensure_future(engine.run())
    await wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    pid = int(pidfile.read_text())
    assert engine.cancel_workload("hook") is True  # a status-function workload, running
    result = await asyncio.wait_for(task, 10)
    assert not alive(pid)
    assert statuses(result) == {"first": "Completed", "hook": "Failed", "after": "Skipped"}
    assert result.states["hook"].error == "cancelled by the user"

    # A partial run (the REPL's :run, gxo ui's R / s): the others are not part of it.
    partial = engine_for(text, only={"first"})
    assert partial.cancel_workload("hook") is False
    assert (await partial.run()).states["hook"].reason == "not selected"
