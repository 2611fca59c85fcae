"""A 2,000-workload random DAG with streams completes identically 20 times; nothing leaks."""

from __future__ import annotations

import asyncio
import random

import psutil
import pytest

from gxo.config.loader import load_playbook
from gxo.engine.scheduler import Engine


def random_playbook(seed: int, n: int = 2000) -> str:
    rng = random.Random(seed)
    lines = [
        'schemaVersion: "1.0.0"',
        "name: stress",
        "channel_policy: { buffer_size: 3 }",
        "workloads:",
    ]
    registered: list[int] = []
    barriers: set[int] = set()
    i = 0
    while i < n:
        kind = rng.random()
        if kind < 0.08 and i + 4 <= n:
            # A pipeline: generator -> two passthroughs (fan-out) -> barrier (fan-in).
            items = rng.randint(0, 40)
            deps = rng.sample(registered, min(len(registered), 2))
            conds = [
                f"r{d}.records_discarded >= 0" if d in barriers else f"r{d}.v >= 0" for d in deps
            ]
            when = f'    when: "{" and ".join(conds)}"\n' if conds else ""
            lines.append(
                f"  - name: w{i}\n{when}    process: {{ module: data:generate_from_list, params: {{ items: {list(range(items))} }} }}"
            )
            lines.append(
                f"  - name: w{i + 1}\n    stream_inputs: [w{i}]\n    process: {{ module: passthrough }}"
            )
            lines.append(
                f"  - name: w{i + 2}\n    stream_inputs: [w{i}]\n    process: {{ module: passthrough }}"
            )
            lines.append(
                f"  - name: w{i + 3}\n    stream_inputs: [w{i + 1}, w{i + 2}]\n    process: {{ module: control:barrier }}\n    register: r{i + 3}"
            )
            registered.append(i + 3)
            barriers.add(i + 3)
            i += 4
            continue
        deps = rng.sample(registered, min(len(registered), rng.randint(0, 3)))
        # barriers register records_discarded, identities register v
        terms = [f"r{d}.records_discarded" if d in barriers else f"r{d}.v" for d in deps]
        expr = f"({' + '.join(terms)} + {i}) % 997" if terms else str(i)
        skip = '    when: "false"\n' if rng.random() < 0.03 else ""
        lines.append(
            f'  - name: w{i}\n{skip}    process: {{ module: control:identity, params: {{ v: "{{{{ {expr} }}}}" }} }}\n    register: r{i}'
        )
        if not skip:
            registered.append(i)
        i += 1
    return "\n".join(lines) + "\n"


def fingerprint(result) -> list[tuple]:
    return [
        (name, s.status.value, repr(s.summary), s.records_in, s.records_out)
        for name, s in sorted(result.states.items())
    ]


@pytest.mark.slow
async def test_random_dag_with_streams_is_deterministic() -> None:
    loaded = load_playbook(text=random_playbook(seed=7), name="stress")
    assert len(loaded.playbook.workloads) == 2000
    assert any(len(p.members) == 4 for p in loaded.graph.pipelines)
    first = None
    for run in range(20):
        result = await Engine(loaded, concurrency=[1, 8, 64, 512][run % 4]).run()
        assert result.status == "Completed", [s.error for s in result.states.values() if s.error][
            :3
        ]
        fp = fingerprint(result)
        if first is None:
            first = fp
        else:
            assert fp == first, f"run {run} differs"
        assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_no_task_or_child_process_left_after_timeout(run_yaml) -> None:
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: leak
        workloads:
          - name: slow
            timeout: 300ms
            process: { module: exec, params: { command: sh, args: ["-c", "sleep 30 & sleep 30 & wait"] } }
          - name: slow_loop
            timeout: 300ms
            loop: [1, 2, 3]
            loop_control: { parallel: 3 }
            process: { module: exec, params: { command: sleep, args: ["30"] } }
        """
    )
    assert result.states["slow"].error == "timed out after 300ms"
    assert result.states["slow_loop"].status.value == "Failed"
    assert asyncio.all_tasks() == {asyncio.current_task()}
    for _ in range(50):
        left = [
            p
            for p in me.children(recursive=True)
            if p.pid not in before and p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        ]
        if not left:
            break
        await asyncio.sleep(0.05)
    assert left == []


async def test_engine_cancel_mid_run_cleans_up(run_yaml, write_playbook) -> None:
    loaded = load_playbook(
        text='schemaVersion: "1.0.0"\nname: c\nworkloads:\n'
        "  - name: gen\n    process: { module: data:generate_from_list, params: { items: [1, 2, 3, 4, 5, 6, 7, 8] } }\n"
        "  - name: sleepy\n    process: { module: exec, params: { command: sleep, args: ['30'] } }\n"
        "  - name: sink\n    stream_inputs: [gen]\n    process: { module: exec, params: { command: 'true' } }\n".replace(
            "process: { module: exec, params: { command: 'true' } }",
            "process: { module: passthrough }",
        ),
        name="c",
    )
    engine = Engine(loaded)
    task = asyncio.create_task(engine.run())
    await asyncio.sleep(0.3)
    engine.cancel()
    result = await asyncio.wait_for(task, 10)
    assert result.status == "Interrupted" and result.exit_code == 130
    assert result.states["sleepy"].status.value == "Failed"
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_cancelling_the_run_task_itself_propagates_and_cleans_up() -> None:
    loaded = load_playbook(
        text='schemaVersion: "1.0.0"\nname: c\nworkloads:\n  - name: s\n    process: { module: exec, params: { command: sleep, args: ["30"] } }\n',
        name="c",
    )
    engine = Engine(loaded)
    task = asyncio.create_task(engine.run())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.states["s"].status.value == "Failed"
    assert asyncio.all_tasks() == {asyncio.current_task()}
