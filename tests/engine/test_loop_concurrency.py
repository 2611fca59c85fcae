"""`loop_control.parallel` under the run's concurrency limit (`--concurrency`).

Iterations count like workloads: at most ``concurrency`` modules execute at once,
whether they are workloads or iterations of a loop.
"""

from __future__ import annotations

import asyncio

import pytest

from gxo.engine.slots import LoopSlots


@pytest.fixture
def gauge():
    """A ``tests:gauge`` module that records how many of its calls run at the same time."""
    from gxo.engine.context import ModuleContext
    from gxo.modules.base import FreeParams, Module, register

    seen = {"now": 0, "max": 0, "calls": 0}

    @register("tests:gauge", layer="test")
    class Gauge(Module):
        """Holds for a while and counts who else is running meanwhile."""

        Params = FreeParams

        async def perform(self, ctx: ModuleContext, params: FreeParams) -> dict:
            seen["now"] += 1
            seen["calls"] += 1
            seen["max"] = max(seen["max"], seen["now"])
            try:
                await asyncio.sleep(float(params.model_extra.get("hold", 0.02)))
            finally:
                seen["now"] -= 1
            return {}

    return seen


LOOP = """
schemaVersion: "1.0.0"
name: wide
workloads:
  - name: each
    loop: "{{ range(40) | list }}"
    loop_control: { parallel: 50 }
    process: { module: "tests:gauge", params: { n: "{{ item }}" } }
"""


@pytest.mark.parametrize("concurrency", [1, 2, 5])
async def test_a_wide_loop_never_runs_more_iterations_than_the_limit(
    run_yaml, gauge, concurrency
) -> None:
    result = await run_yaml(LOOP, concurrency=concurrency)
    assert result.status == "Completed"
    assert gauge["calls"] == 40
    assert gauge["max"] == concurrency  # reached, never exceeded


async def test_loops_and_plain_workloads_share_the_limit(run_yaml, gauge) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: mixed
        workloads:
          - name: loop_a
            loop: "{{ range(12) | list }}"
            loop_control: { parallel: 50 }
            process: { module: "tests:gauge", params: {} }
          - name: loop_b
            loop: "{{ range(12) | list }}"
            loop_control: { parallel: 50 }
            process: { module: "tests:gauge", params: {} }
          - name: single_1
            process: { module: "tests:gauge", params: { hold: 0.1 } }
          - name: single_2
            process: { module: "tests:gauge", params: { hold: 0.1 } }
        """,
        concurrency=3,
    )
    assert result.status == "Completed"
    assert gauge["calls"] == 26
    assert gauge["max"] == 3


async def test_parallel_below_the_limit_still_applies(run_yaml, gauge) -> None:
    result = await run_yaml(LOOP.replace("parallel: 50", "parallel: 3"), concurrency=10)
    assert result.status == "Completed"
    assert gauge["max"] == 3


async def test_a_looping_producer_and_its_consumer_finish_at_concurrency_1(run_yaml) -> None:
    # Producer and consumer share the pipeline's one slot (the only one of the run): the
    # loop's own slot keeps it going while its other iterations wait to borrow.
    result = await asyncio.wait_for(
        run_yaml(
            """
            schemaVersion: "1.0.0"
            name: piped
            workloads:
              - name: produce
                loop: [1, 2, 3]
                loop_control: { parallel: 3 }
                process: { module: data:generate_from_list, params: { items: [{ n: "{{ item }}" }] } }
              - name: consume
                stream_inputs: [produce]
                process: { module: passthrough }
            """,
            concurrency=1,
        ),
        timeout=20,
    )
    assert result.status == "Completed", {n: s.error for n, s in result.states.items()}
    assert result.states["consume"].records_in == 3


async def test_loop_slots_prefer_the_own_slot_and_give_back_what_they_do_not_keep() -> None:
    shared = asyncio.Semaphore(1)
    slots = LoopSlots(shared)
    first = await slots.acquire()
    second = await slots.acquire()
    assert (first, second) == ("own", "shared")
    third = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0.01)
    assert not third.done()  # both the own and the shared slot are taken
    slots.release("own")
    assert await third == "own"  # handed over directly
    slots.release("shared")
    assert not shared.locked()
    cancelled = asyncio.ensure_future(slots.acquire())  # own is taken, shared is free
    assert await cancelled == "shared"
    waiting = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    slots.release("shared")
    slots.release("own")
    assert not shared.locked() and await slots.acquire() == "own"  # nothing leaked


async def test_without_a_run_limit_only_parallel_applies() -> None:
    slots = LoopSlots(None)
    assert [await slots.acquire() for _ in range(3)] == ["own", "shared", "shared"]
