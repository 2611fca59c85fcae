"""``ctl apply`` → first instance running, against a real ``gxo daemon`` subprocess.

Each round applies a new version of a one-workload playbook (its definition
changes, so it runs again) and measures, on the client:

* apply RPC: ``ApplyPlaybook`` round trip (load, validate, diff, persist, start);
* first running: from sending ``ApplyPlaybook`` to the ``workload_status Running``
  event on an ``StreamEvents`` follower (the instance has started its module);
* ``gxo ctl apply`` wall time once (CLI start-up included), for scale.

    python bench/bench_daemon_apply.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2 as pb  # noqa: E402
from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2_grpc as pb_grpc  # noqa: E402

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: bench
workloads:
  - name: first
    process: {{ module: exec, params: {{ command: "true", args: ["{n}"] }} }}
"""


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="gxob-", dir="/tmp"))
    sock = folder / "d.sock"
    cmd = [sys.executable, "-m", "gxo.cli", "daemon", "--socket", str(sock)]
    cmd += ["--state", f"sqlite:///{folder / 'state.db'}", "--log-level", "warning"]
    daemon = subprocess.Popen(cmd, cwd=ROOT)
    try:
        channel = grpc.insecure_channel(f"unix:{sock}")
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = pb_grpc.GxoDaemonStub(channel)
        running: queue.Queue[float] = queue.Queue()

        def follow() -> None:
            request = pb.StreamEventsRequest(playbook="bench", follow=True, tail=-1)
            try:
                for event in stub.StreamEvents(request):
                    data = json.loads(event.data_json)
                    if event.kind == "workload_status" and data.get("status") == "Running":
                        running.put(time.perf_counter())
            except grpc.RpcError:
                pass

        threading.Thread(target=follow, daemon=True).start()
        time.sleep(0.3)
        path = str(folder / "bench.gxo.yaml")
        rpc_ms, first_ms = [], []
        for n in range(args.rounds):
            source = PLAYBOOK.format(n=n)
            t0 = time.perf_counter()
            stub.ApplyPlaybook(pb.ApplyPlaybookRequest(source=source, path=path))
            rpc_ms.append((time.perf_counter() - t0) * 1000)
            first_ms.append((running.get(timeout=30) - t0) * 1000)
            time.sleep(0.05)
        Path(path).write_text(PLAYBOOK.format(n="cli"), encoding="utf-8")
        t0 = time.perf_counter()
        ctl = [sys.executable, "-m", "gxo.cli", "ctl", "--socket", str(sock), "apply", "-f", path]
        subprocess.run(ctl, check=True, capture_output=True, cwd=ROOT)
        cli_ms = (time.perf_counter() - t0) * 1000
        channel.close()
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        for p in folder.iterdir():
            p.unlink()
        os.rmdir(folder)
    print(
        f"daemon apply ({args.rounds} rounds): apply RPC p50 {statistics.median(rpc_ms):.1f} ms "
        f"p95 {pct(rpc_ms, 0.95):.1f} ms; apply → first running p50 "
        f"{statistics.median(first_ms):.1f} ms p95 {pct(first_ms, 0.95):.1f} ms; "
        f"`gxo ctl apply` wall {cli_ms:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
