"""Overhead of a sandboxed workload: ``exec /bin/true`` with and without a security_context.

Runs one engine per playbook of N sequential workloads (``depends_on`` chains them,
so the figures are per workload, not hidden by concurrency) and reports the median
and p95 workload duration of each variant; the zygote is warmed up first (the first
sandbox of a process starts it once). Wall time suffers from a busy machine (every
sandbox is more processes to schedule), so the CPU time per workload is measured too:
this process and all its descendants (the zygote, keepers, sandboxes, commands; the
zygote's own start-up measured apart and subtracted; the sandboxes forked ahead for
the next workloads count too). ``perf stat -e task-clock`` over the whole process tree
gives the same figure without relying on every process being waited for. Variants:

- ``plain``: no security_context;
- ``minimal``: ``namespaces: []``, seccomp unconfined (the sandbox's own process only);
- ``default``: the defaults (mount, pid, ipc, uts namespaces; default seccomp; no_new_privs);
- ``full``: default + read_only_root + network none + memory/pids cgroup limits + drop ALL.

    python bench/bench_sandbox.py [--workloads 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from gxo.engine.sandbox import zygote
from gxo.modules.testkit import run_playbook_text

VARIANTS: dict[str, dict[str, Any] | None] = {
    "plain": None,
    "minimal": {"namespaces": [], "seccomp": "unconfined", "no_new_privileges": False},
    "default": {},
    "full": {
        "read_only_root": True,
        "network": "none",
        "limits": {"memory": "256Mi", "pids": 64},
        "capabilities": {"drop": ["ALL"]},
    },
}


def playbook(n: int, sc: dict[str, Any] | None) -> str:
    workloads = []
    for i in range(n):
        w: dict[str, Any] = {
            "name": f"w{i}",
            "process": {"module": "exec", "params": {"command": "/bin/true"}},
        }
        if i:
            w["depends_on"] = [f"w{i - 1}"]
        if sc is not None:
            w["security_context"] = sc
        workloads.append(w)
    return json.dumps({"schemaVersion": "1.0.0", "name": "bench", "workloads": workloads})


async def measure(n: int, sc: dict[str, Any] | None, workspace: Path) -> list[float]:
    result = await run_playbook_text(playbook(n, sc), workspace=workspace)
    assert result.status == "Completed", {k: s.error for k, s in result.states.items()}
    return [s.duration_ms for s in result.states.values()]


def cpu_seconds() -> float:
    own, children = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


async def cpu_of_run(n: int, sc: dict[str, Any] | None, workspace: Path) -> float:
    """CPU seconds of one run of n workloads with a zygote of its own (stopped and waited)."""
    zygote._shutdown()
    before = cpu_seconds()
    await measure(n, sc, workspace)
    zygote._shutdown()
    return cpu_seconds() - before


async def cpu_per_workload(n: int, sc: dict[str, Any] | None, workspace: Path) -> float:
    base = await cpu_of_run(1, sc, workspace)  # start-up, zygote included
    return (await cpu_of_run(n + 1, sc, workspace) - base) / n * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workspace = Path(tempfile.mkdtemp(prefix="gxo-bench-sbx-"))
    try:
        await measure(3, {}, workspace)  # the zygote starts once per process
        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for _ in range(args.rounds):
            for name, sc in VARIANTS.items():
                times[name] += await measure(args.workloads, sc, workspace)
        cpu = {
            n: await cpu_per_workload(args.workloads, sc, workspace) for n, sc in VARIANTS.items()
        }
        base = statistics.median(times["plain"])
        print(
            f"{'variant':8s} {'median':>9s} {'p95':>9s} {'added':>9s} {'CPU/workload':>13s} "
            f"{'added':>9s}  ({len(times['plain'])} each)"
        )
        for name, values in times.items():
            values.sort()
            median, p95 = statistics.median(values), values[int(len(values) * 0.95)]
            print(
                f"{name:8s} {median:7.2f}ms {p95:7.2f}ms {median - base:+7.2f}ms "
                f"{cpu[name]:11.2f}ms {cpu[name] - cpu['plain']:+7.2f}ms"
            )
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
