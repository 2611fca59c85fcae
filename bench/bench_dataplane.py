"""Data-plane throughput: parse → map → filter → aggregate over JSON lines, next to
a hand-written generator pipeline doing the same work, and peak memory at two sizes.

Both pipelines read the same lazily generated JSON lines (never a list of them):
parse each line, keep ``team`` and ``n * 2``, drop records with ``n * 2 < 20``,
then sum and count per team. GXO runs it as a playbook of ``data:parse``
(fed an input stream of ``{line}`` records by a small producer module, as a
line-reading module would), ``data:map``, ``data:filter`` and ``data:aggregate``
with templates, in one event loop. The results of both are compared.

Each measurement runs in a fresh child process so that its peak RSS
(``ru_maxrss``) is its own: flat memory means the peak barely moves when the
input grows 4x. Times cover the run, not GXO's start-up (imports, loading the
playbook). Goal: GXO >= 30 % of the hand-written records/s.

    python bench/bench_dataplane.py [--lines 1000000] [--buffer 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEAMS = ("red", "green", "blue", "amber", "teal", "plum", "gray")


def lines(count: int) -> Iterator[str]:
    """The input: one JSON object per line, generated on the fly."""
    for i in range(count):
        yield f'{{"id": {i}, "team": "{TEAMS[i % 7]}", "n": {i % 100}, "name": "user{i}"}}'


# -- the hand-written baseline ----------------------------------------------------------


def handwritten(count: int) -> list[dict[str, Any]]:
    def parse(src: Iterator[str]) -> Iterator[dict[str, Any]]:
        for line in src:
            yield json.loads(line)

    def shape(records: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for r in records:
            yield {"team": r["team"], "n": r["n"] * 2}

    def keep(records: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for r in records:
            if r["n"] >= 20:
                yield r

    totals: dict[str, dict[str, Any]] = {}
    for r in keep(shape(parse(lines(count)))):
        group = totals.get(r["team"])
        if group is None:
            group = totals[r["team"]] = {"team": r["team"], "total": 0, "rows": 0}
        group["total"] += r["n"]
        group["rows"] += 1
    return list(totals.values())


# -- GXO ------------------------------------------------------------------------------

PLAYBOOK = """
schemaVersion: "1.0.0"
name: bench-dataplane
channel_policy: {{ buffer_size: {buffer} }}
workloads:
  - name: lines
    process: {{ module: "bench:lines", params: {{ count: {count} }} }}
  - name: parsed
    process: {{ module: data:parse, params: {{ format: json_lines }} }}
    stream_inputs: [lines]
  - name: shaped
    process:
      module: data:map
      params: {{ fields: {{ team: "{{{{ record.team }}}}", n: "{{{{ record.n * 2 }}}}" }} }}
    stream_inputs: [parsed]
  - name: kept
    process: {{ module: data:filter, params: {{ condition: "record.n >= 20" }} }}
    stream_inputs: [shaped]
  - name: totals
    process:
      module: data:aggregate
      params:
        group_by_fields: [team]
        aggregate_fields: [{{ name: total, op: sum, source_field: n }}, {{ name: rows, op: count }}]
    stream_inputs: [kept]
    register: totals
"""


def register_producer() -> None:
    from pydantic import Field

    from gxo.modules.base import Module, ModuleParams, register

    @register("bench:lines", layer="test")
    class BenchLines(Module):
        """Emit ``count`` generated JSON lines as ``{line}`` records (benchmark input).

        Example:
            process: { module: "bench:lines", params: { count: 10 } }
        """

        class Params(ModuleParams):
            count: int = Field(..., ge=0, description="How many lines")

        produces = True
        summary = {"lines": "lines emitted"}

        async def perform(self, ctx: Any, params: Params) -> dict[str, Any]:
            send = ctx.output.send
            for line in lines(params.count):
                await send({"line": line})
            return {"lines": params.count}


def gxo(count: int, buffer: int) -> Callable[[], list[dict[str, Any]]]:
    """Load the playbook (start-up is not throughput), return the run to time."""
    from gxo.config.loader import load_playbook
    from gxo.engine.scheduler import Engine

    register_producer()
    loaded = load_playbook(text=PLAYBOOK.format(count=count, buffer=buffer), name="bench")

    def run() -> list[dict[str, Any]]:
        result = asyncio.run(Engine(loaded, workspace=ROOT).run())
        if result.status != "Completed":
            errors = {n: s.error for n, s in result.states.items() if s.error}
            raise SystemExit(f"GXO pipeline failed: {errors}")
        return result.states["totals"].summary["results"]

    return run


# -- driver -----------------------------------------------------------------------------


def child(which: str, count: int, buffer: int) -> None:
    work = (lambda: handwritten(count)) if which == "python" else gxo(count, buffer)
    wall, cpu = time.perf_counter(), time.process_time()
    out = work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    result = sorted(out, key=lambda r: r["team"])
    print(json.dumps({"seconds": wall, "cpu": cpu, "peak_mib": peak_kib / 1024, "result": result}))


def run_child(which: str, count: int, buffer: int) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        which,
        "--lines",
        str(count),
        "--buffer",
        str(buffer),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{which} run failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--lines",
        type=int,
        default=1_000_000,
        help="input lines of the large run (the small run has a quarter)",
    )
    ap.add_argument(
        "--buffer", type=int, default=100, help="channel_policy.buffer_size of the GXO playbook"
    )
    ap.add_argument("--child", choices=("python", "gxo"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.lines, args.buffer)
        return

    big, small = args.lines, max(1, args.lines // 4)
    print(
        f"data plane: parse -> map -> filter -> aggregate, JSON lines, channel buffer {args.buffer}"
    )
    print(
        f"{'run':<22}{'lines':>11}{'wall s':>8}{'records/s':>11}{'CPU s':>8}{'rec/CPU-s':>11}{'peak RSS MiB':>14}"
    )
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for count in (small, big):
        for which in ("python", "gxo"):
            r = rows[which, count] = run_child(which, count, args.buffer)
            label = "hand-written Python" if which == "python" else "GXO playbook"
            print(
                f"{label:<22}{count:>11,}{r['seconds']:>8.2f}{count / r['seconds']:>11,.0f}"
                f"{r['cpu']:>8.2f}{count / r['cpu']:>11,.0f}{r['peak_mib']:>14.1f}"
            )
        if rows["python", count]["result"] != rows["gxo", count]["result"]:
            raise SystemExit(
                f"results differ at {count} lines: the pipelines do not do the same work"
            )
    py, gx = rows["python", big], rows["gxo", big]
    growth = gx["peak_mib"] - rows["gxo", small]["peak_mib"]
    print(
        f"GXO throughput at {big:,} lines: {py['seconds'] / gx['seconds']:.0%} of hand-written Python by wall time, "
        f"{py['cpu'] / gx['cpu']:.0%} by CPU time (goal >= 30%)"
    )
    print(
        f"GXO peak RSS growth {small:,} -> {big:,} lines: {growth:+.1f} MiB (flat: streamed, not loaded)"
    )


if __name__ == "__main__":
    main()
