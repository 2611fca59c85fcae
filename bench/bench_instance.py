"""Per-instance cost of the daemon's instance path, in-process (no gRPC, no broker).

A :class:`gxo.daemon.core.Daemon` on a real state store (SQLite in a temp directory, or
``--state postgresql://…``) holds one playbook whose ``event_driven``-shaped root is
``control:identity`` (the trivial instance of issue 10; its reconciler is not started:
the benchmark calls :meth:`Daemon.run_instance` itself, as a reconciler does, with an
event and ``--concurrency`` instances in flight). Measured over ``--instances`` runs:

* process CPU per instance (``time.process_time``: every thread, robust to a loaded
  machine) and wall instances/s;
* every run's history row is checked afterwards (one ``Completed`` row per instance).

``--profile`` prints the top of a cProfile of the measured part. Prints one JSON line.

    python bench/bench_instance.py [--instances 3000] [--concurrency 16] [--state URL] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gxo.daemon.core import Daemon  # noqa: E402
from gxo.state.sql import SqlState  # noqa: E402

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: bench
workloads:
  - name: ev
    lifecycle: { policy: scheduled, cron: "@yearly" }
    process:
      module: control:identity
      params: { t: "{{ _gxo.event.data.t }}", i: "{{ _gxo.event.data.i }}" }
"""


async def measure(state: SqlState, instances: int, concurrency: int, profile: bool) -> dict:
    daemon = Daemon(state)
    await daemon.restore()
    await daemon.apply(PLAYBOOK, "/tmp/bench-instance.gxo.yaml", {})
    applied = daemon.playbooks["bench"]
    queue = iter(range(instances))
    statuses: dict[str, int] = {}

    async def worker() -> None:
        for i in queue:
            event = {"id": str(i), "source": "bench", "data": {"t": time.time(), "i": i}}
            outcome = await daemon.run_instance(
                applied, "ev", run_id=f"r{i:07d}", reason="bench", owned=True, event=event
            )
            statuses[outcome.status] = statuses.get(outcome.status, 0) + 1

    # Warm-up (imports, caches), not measured.
    await daemon.run_instance(applied, "ev", run_id="warm", reason="bench", owned=True, event={})
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    if profiler is not None:
        profiler.disable()
    await daemon.shutdown(10)
    try:
        from gxo.daemon.writer import writer_of
    except ImportError:  # an older version, measured for comparison: no write-behind
        writer = None
    else:
        writer = writer_of(daemon)
    rows = state.list_runs("bench", "ev", instances + 10)
    done = sum(1 for r in rows if r["run_id"].startswith("r") and r["status"] == "Completed")
    result = {
        "state": state.backend,
        "instances": instances,
        "concurrency": concurrency,
        "statuses": statuses,
        "history_completed": done,
        "cpu_ms_per_instance": round(cpu / instances * 1000, 3),
        "instances_per_s": round(instances / wall, 1),
        "transactions": writer.batches if writer is not None else None,
        "writes": writer.writes if writer is not None else None,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    if profiler is not None:
        import pstats

        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(35)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(50)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--state", default="")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.state or f"sqlite:///{tmp}/state.db"
        state = SqlState(url, history_limit=args.instances + 10)
        try:
            if state.backend == "postgresql":  # a fresh playbook row set each time
                state.delete_playbook("bench")
            result = asyncio.run(measure(state, args.instances, args.concurrency, args.profile))
        finally:
            state.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
