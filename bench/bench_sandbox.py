"""Overhead of a sandboxed workload: ``exec /bin/true`` with and without a security_context.

Runs one engine per playbook of N sequential workloads (``depends_on`` chains them,
so the figures are per workload, not hidden by concurrency) and reports the median
and p95 workload duration of each variant; the zygote is warmed up first (the first
sandbox of a process starts it once). Variants:

- ``plain``: no security_context;
- ``minimal``: ``namespaces: []``, seccomp unconfined (the keeper fork and the relay);
- ``default``: the defaults (mount, pid, ipc, uts namespaces; default seccomp; no_new_privs);
- ``full``: default + read_only_root + network none + memory/pids cgroup limits + drop ALL.

    python bench/bench_sandbox.py [--workloads 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

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
        base = statistics.median(times["plain"])
        print(
            f"{'variant':8s} {'median':>9s} {'p95':>9s} {'added':>9s}  ({len(times['plain'])} each)"
        )
        for name, values in times.items():
            values.sort()
            median, p95 = statistics.median(values), values[int(len(values) * 0.95)]
            print(f"{name:8s} {median:7.2f}ms {p95:7.2f}ms {median - base:+7.2f}ms")
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
