"""Event → instance start latency and sustained instances/s of ``event_driven`` workloads.

Real ``gxo daemon`` subprocesses (one, then two in one ``--fleet`` on a fresh PostgreSQL
database at 127.0.0.1:5432) run an ``event_driven`` workload on
``nats+jetstream://127.0.0.1:4222/STREAM/SUBJ?create=true`` whose process is
``control:identity``. A publisher sends N events (``--events``, default 10,000), each
carrying its send time (``time.time()``), with acked JetStream publishes at ``--rate``
events/s (0: as fast as the publisher goes). Measured from the state's run history
(``--history`` large enough to keep every run):

* latency: a run's ``started_at`` minus the publish time in its event (p50/p99);
* sustained instances/s: runs / (last start - first start);
* each event id ran once (at-least-once: a duplicate would show as an extra run).

The two-daemon case shares the workload's JetStream durable (``lifecycles.consumer_group``
gives both members the same name). Prints one JSON line; ``{"skipped": ...}`` when NATS or
PostgreSQL does not listen.

    python bench/bench_events.py [--events 10000] [--rate 0] [--daemons 1,2] [--max-concurrency 16]
        [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
import nats  # noqa: E402

from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2 as pb  # noqa: E402
from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2_grpc as pb_grpc  # noqa: E402

NATS = ("127.0.0.1", 4222)
PG = ("127.0.0.1", 5432)
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: bench
workloads:
  - name: ev
    lifecycle:
      policy: event_driven
      source: "nats+jetstream://127.0.0.1:4222/{stream}/{subject}?create=true"
      max_concurrency: {mc}
    process:
      module: control:identity
      params: {{ t: "{{{{ _gxo.event.data.t }}}}", i: "{{{{ _gxo.event.data.i }}}}" }}
"""


def listening(addr: tuple[str, int]) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(addr) == 0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


def _admin(sql: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


async def publish(stream: str, subject: str, events: int, rate: float) -> float:
    nc = await nats.connect(f"nats://{NATS[0]}:{NATS[1]}")
    js = nc.jetstream()
    try:
        # The daemon's source creates the stream (?create=true); wait for it.
        for _ in range(300):
            try:
                await js.stream_info(stream)
                break
            except Exception:
                await asyncio.sleep(0.1)
        t0 = time.perf_counter()
        for i in range(events):
            if rate:
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await js.publish(subject, json.dumps({"t": time.time(), "i": i}).encode())
        return time.perf_counter() - t0
    finally:
        await nc.close()


def run_case(
    daemons: int, events: int, rate: float, mc: int, folder: Path, profile: str = ""
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    db = f"gxo_bench_events_{tag}"
    _admin(f'CREATE DATABASE "{db}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{db}"
    stream, subject = f"GXOBE_{tag}", f"gxobe.{tag}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        socks = []
        for n in range(daemons):
            sock = folder / f"d{tag}{n}.sock"
            cmd = [sys.executable, "-m", "gxo.cli", "daemon", "--socket", str(sock)]
            if profile:  # cProfile of each daemon, written when it stops (SIGTERM)
                cmd[1:1] = ["-m", "cProfile", "-o", f"{profile}/daemon{n}.prof"]
            cmd += ["--state", url, "--log-level", "warning", "--history", str(events * 2)]
            cmd += ["--fleet", f"bench{tag}", "--member", f"m{n}"]
            procs.append(subprocess.Popen(cmd, cwd=ROOT))
            socks.append(sock)
            # One at a time: members creating the schema of a fresh database together
            # may collide in PostgreSQL's catalog.
            with grpc.insecure_channel(f"unix:{sock}") as channel:
                grpc.channel_ready_future(channel).result(timeout=60)
        source = PLAYBOOK.format(stream=stream, subject=subject, mc=mc)
        path = str(folder / "bench.gxo.yaml")
        for sock in socks:
            with grpc.insecure_channel(f"unix:{sock}") as channel:
                grpc.channel_ready_future(channel).result(timeout=60)
                stub = pb_grpc.GxoDaemonStub(channel)
                stub.ApplyPlaybook(pb.ApplyPlaybookRequest(source=source, path=path))
        cpu0 = sum(cpu_seconds(p.pid) for p in procs)
        publish_s = asyncio.run(publish(stream, subject, events, rate))
        big = [("grpc.max_receive_message_length", 256 * 1024 * 1024)]
        channels = [grpc.insecure_channel(f"unix:{sock}", options=big) for sock in socks]
        try:
            stubs = [pb_grpc.GxoDaemonStub(channel) for channel in channels]
            # Until every event ran (the members' counters, a cheap call), then the
            # daemons' CPU (all threads) over the run: robust to the machine's load.
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                ended = 0
                for stub in stubs:
                    rows = stub.ListWorkloads(pb.ListWorkloadsRequest(playbook="bench"))
                    for row in rows.workloads:
                        counters = json.loads(row.details_json or "{}")
                        ended += int(counters.get("completed", 0)) + int(counters.get("failed", 0))
                if ended >= events:
                    break
                time.sleep(0.2)
            daemon_cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu0
            # The history through a daemon (the state may be encrypted with its key).
            request = pb.ListRunsRequest(name="bench/ev", limit=events * 2)
            for _ in range(50):
                runs = [
                    {
                        "status": r.status,
                        "started_at": r.started_at,
                        "report": json.loads(r.report_json) if r.report_json else None,
                    }
                    for r in stubs[0].ListRuns(request, timeout=60).runs
                ]
                if len(runs) >= events and all(r["status"] != "Running" for r in runs):
                    break
                time.sleep(0.5)
        finally:
            for channel in channels:
                channel.close()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
        _admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        asyncio.run(_delete_stream(stream))
    lat, starts, ids = [], [], []
    for run in runs:
        started = datetime.fromisoformat(run["started_at"].replace("Z", "+00:00")).timestamp()
        params = _params(run["report"])
        starts.append(started)
        if params is not None:
            lat.append(started - float(params["t"]))
            ids.append(int(params["i"]))
    span = max(starts) - min(starts) if starts else 0.0
    return {
        "daemons": daemons,
        "runs": len(runs),
        "failed": sum(r["status"] != "Completed" for r in runs),
        "distinct_events": len(set(ids)),
        "publish_per_s": round(events / publish_s),
        "latency_p50_ms": round(pct(lat, 50) * 1000, 1) if lat else None,
        "latency_p99_ms": round(pct(lat, 99) * 1000, 1) if lat else None,
        "instances_per_s": round(len(runs) / span) if span else None,
        "daemon_cpu_ms_per_instance": round(daemon_cpu / len(runs) * 1000, 3) if runs else None,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _params(report: Any) -> dict[str, Any] | None:
    """The identity module's output (its params) in a run's report."""
    if not isinstance(report, dict):
        return None
    stack = [report]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "t" in node and "i" in node:
                return node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


async def _delete_stream(stream: str) -> None:
    nc = await nats.connect(f"nats://{NATS[0]}:{NATS[1]}")
    try:
        await nc.jetstream().delete_stream(stream)
    except Exception:
        pass
    finally:
        await nc.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--daemons", default="1,2")
    parser.add_argument("--max-concurrency", type=int, default=16)
    parser.add_argument("--profile", default="", help="write a cProfile of each daemon here")
    args = parser.parse_args()
    if not listening(NATS) or not listening(PG):
        print(json.dumps({"bench": "events", "skipped": "NATS or PostgreSQL not listening"}))
        return 0
    folder = Path(tempfile.mkdtemp(prefix="gxobe-", dir="/tmp"))
    result: dict[str, Any] = {"bench": "events", "events": args.events, "rate": args.rate}
    result["max_concurrency"] = args.max_concurrency
    cases = [
        run_case(int(n), args.events, args.rate, args.max_concurrency, folder, args.profile)
        for n in args.daemons.split(",")
    ]
    result["cases"] = cases
    rates = {c["daemons"]: c["instances_per_s"] for c in cases}
    if rates.get(1) and rates.get(2):
        result["two_vs_one"] = round(rates[2] / rates[1], 2)
    for p in folder.iterdir():
        p.unlink()
    os.rmdir(folder)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
