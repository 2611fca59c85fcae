"""Retry jitter spreads the delays over the whole ±jitter band (SPEC §3)."""

from __future__ import annotations

import random
import statistics

import pytest

from gxo.engine.runner import WorkloadRunner
from gxo.modules.testkit import run_module


@pytest.fixture
def always_fails():
    from gxo.engine.context import ModuleContext
    from gxo.modules.base import FreeParams, Module, register

    @register("tests:always_fails", layer="test")
    class AlwaysFails(Module):
        """Fails every attempt."""

        Params = FreeParams

        async def perform(self, ctx: ModuleContext, params: FreeParams) -> dict:
            raise ctx.fail("nope")

    return "tests:always_fails"


async def test_jitter_spreads_delays_across_the_band(always_fails, monkeypatch) -> None:
    delays: list[float] = []

    async def record_sleep(seconds: float) -> None:  # no real waiting for 300 retries
        delays.append(seconds)

    def runner(run):
        return WorkloadRunner(run, sleep=record_sleep, rng=random.Random(8))

    monkeypatch.setattr("gxo.modules.testkit.WorkloadRunner", runner)
    r = await run_module(
        always_fails,
        {},
        workload={"retry": {"attempts": 301, "delay": "10s", "backoff_factor": 1.0, "jitter": 0.5}},
    )
    assert r.status == "Failed" and r.state.attempts == 301
    assert len(delays) == 300
    # Every delay lies in 10 s ± 50 %, and they cover the band rather than sit at one
    # point (a jitter stuck at its maximum gives 300 × 15 s; at zero, 300 × 10 s).
    assert all(5.0 <= d <= 15.0 for d in delays)
    assert min(delays) < 6.0 and max(delays) > 14.0
    assert 9.0 < statistics.mean(delays) < 11.0  # centred: as often shorter as longer
    assert statistics.stdev(delays) > 2.0  # uniform over ±5 s: ~2.9
    assert len({round(d, 3) for d in delays}) > 250  # not a few repeated values
