"""Fire lag and CPU of many ``scheduled`` reconcilers on one event loop.

N ``ScheduleReconciler`` s (default 1,000) at ``@every 1s`` with a trivial
``run_instance`` run for ``--seconds`` on one loop. Fire lag = the time from a
scheduled fire to the start of its instance (``ScheduleReconciler.lags``); CPU =
process CPU time / wall time while the schedules run (100 % = one core busy).

``--anchor same`` (default) anchors every schedule at the same instant, so all N
fire in the same millisecond each second: the worst case for lag, and what one
``ctl apply`` of N workloads produces. ``--anchor spread`` spreads them over the
second. Goal (issue 9): lag p99 < 50 ms, CPU < 25 % of one core.

    python bench/bench_scheduled.py [--workloads 1000] [--seconds 10] [--anchor same|spread]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gxo.config.models import Workload
from gxo.daemon.reconcile import InstanceOutcome, ScheduleReconciler
from gxo.daemon.schedule import Schedule


async def trivial(root: str, *, run_id: str, reason: str) -> InstanceOutcome:
    return InstanceOutcome("Completed", run_id, None, 0)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def main(n: int, seconds: float, anchor_mode: str) -> dict[str, Any]:
    statuses = [0]

    def on_status(status: dict[str, Any]) -> None:
        statuses[0] += 1  # the core would queue a write and publish an event here

    workload = Workload.model_validate(
        {
            "name": "tick",
            "lifecycle": {"policy": "scheduled", "cron": "@every 1s", "concurrency": "forbid"},
            "process": {"module": "control:identity", "params": {}},
        }
    )
    base = datetime.now(UTC) + timedelta(seconds=0.5)
    reconcilers = []
    for i in range(n):
        anchor = base if anchor_mode == "same" else base + timedelta(seconds=i / n)
        reconcilers.append(
            ScheduleReconciler(
                "bench",
                workload,
                run_instance=trivial,
                on_status=on_status,
                schedule=Schedule("@every 1s", "UTC", anchor=anchor),
            )
        )
    for r in reconcilers:
        await r.start()
    await asyncio.sleep(1.0)  # warm-up: the first fires (and their lags) are not counted
    for r in reconcilers:
        r.lags.clear()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    wall1, cpu1 = time.perf_counter(), time.process_time()
    lags = [lag * 1000 for r in reconcilers for lag in r.lags]
    fires = sum(r.fires for r in reconcilers)
    dropped = sum(r.dropped for r in reconcilers)
    t0 = time.perf_counter()
    await asyncio.gather(*(r.stop() for r in reconcilers))
    stop_ms = (time.perf_counter() - t0) * 1000
    return {
        "workloads": n,
        "seconds": round(wall1 - wall0, 2),
        "fires_measured": len(lags),
        "fires_total": fires,
        "dropped": dropped,
        "lag_p50_ms": round(statistics.median(lags), 2) if lags else None,
        "lag_p99_ms": round(pct(lags, 99), 2) if lags else None,
        "lag_max_ms": round(max(lags), 2) if lags else None,
        "cpu_pct": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 1),
        "status_changes": statuses[0],
        "stop_all_ms": round(stop_ms, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--anchor", choices=["same", "spread"], default="same")
    args = parser.parse_args()
    result = asyncio.run(main(args.workloads, args.seconds, args.anchor))
    for key, value in result.items():
        print(f"{key:>16}: {value}")
