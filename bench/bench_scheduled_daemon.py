"""1,000 ``scheduled`` workloads at ``@every 1s`` on ONE real ``gxo daemon`` (issue 9).

A ``gxo daemon`` subprocess on a temp socket and a fresh state store (SQLite in a temp
directory, or ``--state postgresql`` on a fresh database at 127.0.0.1:5432) gets one
playbook of ``--workloads`` scheduled workloads (``control:identity``, ``@every 1s``,
``concurrency: forbid``), applied in one ``ApplyPlaybook``. After ``--warmup`` seconds
it is measured for ``--seconds`` (at least 10):

* daemon CPU: user + system time of the daemon process (every thread) over the
  window / wall time, in % of one core; and CPU per fire (``cpu_ms_per_fire``: the
  window's CPU over the fires it holds — it starts and ends half-way between two bursts,
  the reconcilers' ``fires`` counters read just outside it). On a shared machine the
  CPU per fire is the figure to compare: CPU % and lag follow what the machine gives;
* fire lag: each instance's ``started_at`` in the run history minus its fire time. An
  ``@every`` schedule fires at ``anchor + k * 1s``; the daemon reports each workload's
  ``next_run`` (a fire time), so a run's fire time is the nearest ``next_run - k * 1s``
  before its start, and its lag ``(started_at - next_run) mod 1s`` (read in
  [-100 ms, 900 ms): a start within 1 ms before its fire, the timer's tolerance and the
  millisecond precision of ``started_at``, counts as lag 0);
* fires: runs started in the window against ``workloads * seconds`` expected, every run
  of the window ``Completed`` — over ``--sample`` workloads (every k-th; default 100): a
  read of the daemon waits for the state writes queued before it.

Prints one JSON line (with the load average: on a shared machine wall figures vary).

    python bench/bench_scheduled_daemon.py [--workloads 1000] [--seconds 12] [--warmup 4]
        [--state sqlite|postgresql] [--profile FILE] [--sample 100]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2 as pb  # noqa: E402
from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2_grpc as pb_grpc  # noqa: E402

PG = ("127.0.0.1", 5432)
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def playbook(n: int) -> str:
    lines = ['schemaVersion: "1.0.0"', "name: sched", "workloads:"]
    for i in range(n):
        lines += [
            f"  - name: w{i:04d}",
            '    lifecycle: { policy: scheduled, cron: "@every 1s", concurrency: forbid }',
            "    process: { module: control:identity, params: { n: " + str(i) + " } }",
        ]
    return "\n".join(lines) + "\n"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of the event loop's thread (main) and of the other threads (the
    thread pool's state writes, gRPC)."""
    out = {"loop": 0.0, "threads": 0.0}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick
        out["loop" if task.name == str(pid) else "threads"] += cpu
    return out


def listening(addr: tuple[str, int]) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(addr) == 0


def _admin(sql: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _count(rows: Any) -> int:
    """Instances started so far, every workload (the reconcilers' ``fires``)."""
    return sum(
        int(json.loads(w.details_json).get("fires") or 0) for w in rows.workloads if w.details_json
    )


def _fires(stub: Any, n: int) -> tuple[int, float]:
    """(fires so far, the next fire time of the first workload): read in a quiet moment."""
    rows = stub.ListWorkloads(pb.ListWorkloadsRequest(playbook="sched"), timeout=60)
    nxt = [_ts(w.next_run) for w in rows.workloads if w.next_run]
    _to_phase(nxt[0], 0.3)  # the read may have straddled a burst: read again after one
    rows = stub.ListWorkloads(pb.ListWorkloadsRequest(playbook="sched"), timeout=60)
    return _count(rows), nxt[0]


def _to_phase(fire: float, phase: float) -> None:
    """Sleep until ``phase`` seconds after a fire instant (fires every 1 s from ``fire``)."""
    now = time.time()
    time.sleep((fire + phase - now) % 1.0)


def measure(
    n: int,
    seconds: float,
    warmup: float,
    url: str,
    folder: Path,
    profile: str = "",
    sample: int = 100,
) -> dict[str, Any]:
    sock = folder / "d.sock"
    cmd = [sys.executable, "-m", "gxo.cli", "daemon", "--socket", str(sock), "--state", url]
    cmd += ["--log-level", "warning", "--history", "100"]
    if profile:  # a cProfile of the daemon, written when it stops (SIGTERM)
        cmd[1:1] = ["-m", "cProfile", "-o", profile]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    try:
        with grpc.insecure_channel(f"unix:{sock}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            stub = pb_grpc.GxoDaemonStub(channel)
            t_apply = time.perf_counter()
            stub.ApplyPlaybook(
                pb.ApplyPlaybookRequest(source=playbook(n), path=str(folder / "s.gxo.yaml")),
                timeout=300,
            )
            apply_s = time.perf_counter() - t_apply
            print(f"applied {n} workloads in {apply_s:.1f}s", file=sys.stderr)
            time.sleep(warmup)
            # The window starts and ends half-way between two bursts of fires (every
            # schedule fires at the same instants): it holds whole bursts, and the fire
            # counters read just outside it (in a quiet half second) count exactly them.
            fires0 = _fires(stub, n)
            _to_phase(fires0[1], 0.5)
            threads0 = thread_cpu(proc.pid)
            cpu0, wall0, t0 = cpu_seconds(proc.pid), time.perf_counter(), time.time()
            time.sleep(round(seconds))
            cpu1, wall1, t1 = cpu_seconds(proc.pid), time.perf_counter(), time.time()
            threads1 = thread_cpu(proc.pid)
            load = [round(x, 2) for x in os.getloadavg()]
            cpu_pct = (cpu1 - cpu0) / (wall1 - wall0) * 100
            rows = stub.ListWorkloads(pb.ListWorkloadsRequest(playbook="sched"), timeout=60)
            fired = _count(rows) - fires0[0]
            print(
                f"window done: daemon CPU {cpu_pct:.1f} %, {fired} fires, "
                f"{(cpu1 - cpu0) * 1000 / max(fired, 1):.3f} ms per fire, load {load}",
                file=sys.stderr,
            )
            next_run = {w.workload: _ts(w.next_run) for w in rows.workloads if w.next_run}
            details = [json.loads(w.details_json) for w in rows.workloads if w.details_json]
            # The history through the daemon (the state may be encrypted with its key).
            # A sample of the workloads (every k-th): a daemon's read waits for the state
            # writes queued before it, up to writer.QUEUE_MAX when the store is behind.
            step = max(1, len(next_run) // sample)
            runs = {
                name: stub.ListRuns(pb.ListRunsRequest(name=f"sched/{name}", limit=100)).runs
                for name in sorted(next_run)[::step]
            }
            print(f"history read ({sum(len(r) for r in runs.values())} runs)", file=sys.stderr)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    lags: list[float] = []
    not_completed = 0
    for name, history in runs.items():
        fire = next_run[name]
        for run in history:
            started = _ts(run.started_at)
            if not t0 <= started < t1:
                continue
            # started_at has millisecond precision, and a timer may wake up to 1 ms
            # early (gxo/daemon/timers.py EARLY): a start a hair before its fire is lag 0.
            lags.append(max(0.0, (started - fire + 0.1) % 1.0 - 0.1))
            not_completed += run.status != "Completed"
    skipped = sum(int(d.get("skipped") or 0) for d in details)
    return {
        "workloads": n,
        "seconds": round(wall1 - wall0, 2),
        "apply_s": round(apply_s, 2),
        "daemon_cpu_pct": round((cpu1 - cpu0) / (wall1 - wall0) * 100, 1),
        "cpu_pct_by_thread": {
            k: round((threads1[k] - threads0[k]) / (wall1 - wall0) * 100, 1) for k in threads1
        },
        "fires_in_window": fired,
        "cpu_ms_per_fire": round((cpu1 - cpu0) * 1000 / max(fired, 1), 4),
        "loop_ms_per_fire": round((threads1["loop"] - threads0["loop"]) * 1000 / max(fired, 1), 4),
        "sampled_workloads": len(runs),
        "fires_expected": int(len(runs) * seconds),
        "runs": len(lags),
        "not_completed": not_completed,
        "skipped_total": skipped,
        "lag_p50_ms": round(pct(lags, 50) * 1000, 1) if lags else None,
        "lag_p99_ms": round(pct(lags, 99) * 1000, 1) if lags else None,
        "lag_max_ms": round(max(lags) * 1000, 1) if lags else None,
        "loadavg": load,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--state", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--profile", default="", help="write a cProfile of the daemon here")
    parser.add_argument("--sample", type=int, default=100, help="workloads whose history is read")
    args = parser.parse_args()
    if args.seconds < 10:
        parser.error("--seconds: at least 10")
    result: dict[str, Any] = {"bench": "scheduled_daemon", "state": args.state}
    folder = Path(tempfile.mkdtemp(prefix="gxosd-", dir="/tmp"))
    db = ""
    try:
        if args.state == "postgresql":
            if not listening(PG):
                print(json.dumps({**result, "skipped": "PostgreSQL not listening"}))
                return 0
            db = f"gxo_bench_sched_{uuid.uuid4().hex[:8]}"
            _admin(f'CREATE DATABASE "{db}"')
            url = f"postgresql://postgres@127.0.0.1:5432/{db}"
        else:
            url = f"sqlite:///{folder}/state.db"
        result.update(
            measure(
                args.workloads, args.seconds, args.warmup, url, folder, args.profile, args.sample
            )
        )
    finally:
        if db:
            _admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
