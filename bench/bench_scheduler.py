"""Scheduler overhead per no-op workload on a 10,000-node DAG, next to bare asyncio.

The baseline runs the *same* DAG with nothing but asyncio: one task per node that
awaits its dependencies' futures and resolves its own. GXO runs it as a playbook
of ``control:identity`` workloads with ``depends_on`` edges (no templates), so the
difference is the kernel's own cost: scheduling, status tracking, params
validation, events and the report data. Goal: ≤ 3× the baseline.

    python bench/bench_scheduler.py [--nodes 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def random_dag(n: int, seed: int = 1) -> list[list[int]]:
    rng = random.Random(seed)
    return [rng.sample(range(i), min(i, rng.randint(0, 3))) for i in range(n)]


async def bare_asyncio(deps: list[list[int]]) -> None:
    loop = asyncio.get_running_loop()
    done = [loop.create_future() for _ in deps]

    async def node(i: int) -> None:
        for d in deps[i]:
            await done[d]
        await asyncio.sleep(0)  # the "work": one trip through the loop
        done[i].set_result(None)

    await asyncio.gather(*(node(i) for i in range(len(deps))))


def playbook_text(deps: list[list[int]]) -> str:
    lines = ['schemaVersion: "1.0.0"', "name: bench-scheduler", "workloads:"]
    for i, ds in enumerate(deps):
        dep = f", depends_on: [{', '.join(f'w{d}' for d in ds)}]" if ds else ""
        lines.append(
            f"  - {{ name: w{i}, process: {{ module: control:identity, params: {{}} }}{dep} }}"
        )
    return "\n".join(lines) + "\n"


def measure(nodes: int, repeat: int) -> dict[str, float]:
    from gxo.config.loader import load_playbook
    from gxo.engine.scheduler import Engine
    from gxo.runtime import freeze_loaded_objects

    deps = random_dag(nodes)
    loaded = load_playbook(text=playbook_text(deps), name="bench")
    freeze_loaded_objects()  # what `gxo run` does after loading (applies to both sides)
    baseline, engine_times = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        asyncio.run(bare_asyncio(deps))
        baseline.append(time.perf_counter() - t)
        t = time.perf_counter()
        result = asyncio.run(Engine(loaded, concurrency=nodes).run())
        engine_times.append(time.perf_counter() - t)
        assert result.status == "Completed"
    base, gxo = min(baseline), min(engine_times)
    return {
        "nodes": nodes,
        "baseline_us_per_node": base / nodes * 1e6,
        "gxo_us_per_node": gxo / nodes * 1e6,
        "ratio": gxo / base,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    r = measure(args.nodes, args.repeat)
    print(
        f"scheduler: {r['nodes']} no-op workloads: gxo {r['gxo_us_per_node']:.1f} µs/workload, "
        f"bare asyncio {r['baseline_us_per_node']:.1f} µs/node, ratio {r['ratio']:.2f}x (goal ≤ 3x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
