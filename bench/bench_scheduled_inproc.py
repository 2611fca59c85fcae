"""CPU per fire of ``--workloads`` ``@every 1s`` schedules, in-process (issue 9).

The same daemon as ``bench_scheduled_daemon.py`` (a :class:`gxo.daemon.core.Daemon` with
the default reconcilers, the state store opened as ``gxo daemon`` opens it — SQLite in a
temp directory, encrypted with the user's state key — and the heap frozen after the
apply), without the subprocess and gRPC: the figure is the process CPU
(``time.process_time``: every thread) per fire over whole seconds, the window starting
and ending half-way between two bursts. On a loaded machine CPU per fire is far steadier
than CPU % or lag. Also: the time spent in the cycle collector (``gc.callbacks``), and
``--profile FILE`` (a cProfile of the window).

``--rounds N`` fires N bursts by hand instead (every schedule at once, each burst waited
for to its end and its writes committed): the same work per fire, independent of the
clock and of how much CPU the machine gives the process.

    python bench/bench_scheduled_inproc.py [--workloads 1000] [--seconds 10] [--warmup 3]
        [--rounds N] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gxo.daemon import heap  # noqa: E402
from gxo.daemon.core import Daemon  # noqa: E402
from gxo.daemon.lifecycles import default_reconcilers  # noqa: E402
from gxo.state._sql_crypto import open_encrypted_state  # noqa: E402


def playbook(n: int, every: str = "1s") -> str:
    lines = ['schemaVersion: "1.0.0"', "name: sched", "workloads:"]
    for i in range(n):
        lines += [
            f"  - name: w{i:04d}",
            f'    lifecycle: {{ policy: scheduled, cron: "@every {every}", concurrency: forbid }}',
            "    process: { module: control:identity, params: { n: " + str(i) + " } }",
        ]
    return "\n".join(lines) + "\n"


async def driven(daemon: Daemon, active: list[Any], rounds: int) -> None:
    """``rounds`` bursts fired by hand, each waited for to its end (its state writes
    committed): the same work as the timer's bursts, without depending on the clock."""
    from gxo.daemon.writer import writer_of

    for r in active:  # the timers are ours now
        r._timers.cancel(r._deadline)
        r._deadline = None
    await asyncio.gather(*(t for r in active for t in list(r.instances)))
    ahead = timedelta(hours=1)  # fire times an hour ahead: their re-armed timers never run
    for _ in range(rounds):
        now = active[0].wall()
        for r in active:
            r._on_time(now + ahead, now)
        await asyncio.gather(*(t for r in active for t in list(r.instances)))
        for r in active:  # the instance re-armed its timer (for the next fire): cancel it
            r._timers.cancel(r._deadline)
            r._deadline = None
        await writer_of(daemon).flush()


async def measure(
    folder: Path,
    n: int,
    seconds: int,
    warmup: float,
    profile: str,
    rounds: int = 0,
    every: str = "1s",
) -> dict:
    state = open_encrypted_state(f"sqlite:///{folder}/state.db", None, None, 100)
    daemon = Daemon(state)
    daemon.reconcilers.update(default_reconcilers())
    await daemon.restore()
    heap.enable()
    heap.settle()
    await daemon.apply(playbook(n, every), str(folder / "s.gxo.yaml"), {})
    await asyncio.sleep(warmup)  # the apply's heap settle runs meanwhile
    active = [r for (p, _), r in daemon.active.items() if p == "sched"]

    def fires() -> int:
        return sum(r.fires for r in active)

    def skipped() -> int:
        return sum(r.skipped for r in active)

    first = active[0]
    fire = first.schedule.next_after(first.wall()).timestamp()  # type: ignore[union-attr]
    await asyncio.sleep((fire + 0.5 - time.time()) % 1.0)
    gc_time = [0.0, 0.0]  # seconds in collections, collections
    gc_start = [0.0]
    by_gen = [[0.0, 0], [0.0, 0], [0.0, 0]]  # per generation: seconds, collections

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_start[0] = time.thread_time()
        else:
            took = time.thread_time() - gc_start[0]
            gc_time[0] += took
            gc_time[1] += 1
            by_gen[info["generation"]][0] += took
            by_gen[info["generation"]][1] += 1

    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    gc.callbacks.append(on_gc)
    # Under valgrind --tool=callgrind --collect-atstart=no: the window's instructions
    # only (load-independent). GXO_CALLGRIND_LIB: a library whose gxo_toggle() is
    # CALLGRIND_TOGGLE_COLLECT (valgrind/callgrind.h).
    toggle = None
    if os.environ.get("GXO_CALLGRIND_LIB"):
        import ctypes

        toggle = ctypes.CDLL(os.environ["GXO_CALLGRIND_LIB"]).gxo_toggle
        toggle()
    f0, s0 = fires(), skipped()
    cpu0, wall0, loop0 = time.process_time(), time.perf_counter(), time.thread_time()
    if rounds:
        await driven(daemon, active, rounds)
    else:
        await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    loop_cpu = time.thread_time() - loop0  # the event loop's thread alone
    if toggle is not None:
        toggle()
    fired, skips = fires() - f0, skipped() - s0
    gc.callbacks.remove(on_gc)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    # (driven fires are an hour ahead of the clock: no lag to show)
    lags = [] if rounds else sorted(lag for r in active for lag in list(r.lags)[-seconds:])
    await daemon.shutdown(10)
    await asyncio.to_thread(state.close)
    return {
        "bench": "scheduled_inproc",
        "workloads": n,
        "seconds": round(wall, 2),
        "fires": fired,
        "skipped": skips,
        "cpu_pct": round(cpu / wall * 100, 1),
        "cpu_ms_per_fire": round(cpu * 1000 / max(fired, 1), 4),
        "loop_ms_per_fire": round(loop_cpu * 1000 / max(fired, 1), 4),
        "gc_ms_per_fire": round(gc_time[0] * 1000 / max(fired, 1), 4),
        "gc_collections": int(gc_time[1]),
        "gc_by_generation": [[round(t * 1000), c] for t, c in by_gen],
        "lag_p99_ms": round(lags[int(len(lags) * 0.99)] * 1000, 1) if lags else None,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--profile", default="", help="write a cProfile of the window here")
    parser.add_argument(
        "--gc-threshold", default="", help="gc.set_threshold(a,b,c) first, as 'a,b,c' (experiments)"
    )
    parser.add_argument(
        "--rounds", type=int, default=0, help="fire N bursts by hand (not on the clock)"
    )
    parser.add_argument(
        "--every",
        default="1s",
        help="the schedules' interval; with --rounds under valgrind, 1h keeps the clock's "
        "own fires out of the run",
    )
    args = parser.parse_args()
    if args.gc_threshold:
        gc.set_threshold(*(int(x) for x in args.gc_threshold.split(",")))
    with tempfile.TemporaryDirectory(prefix="gxosi-") as folder:
        result = asyncio.run(
            measure(
                Path(folder),
                args.workloads,
                args.seconds,
                args.warmup,
                args.profile,
                args.rounds,
                args.every,
            )
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
