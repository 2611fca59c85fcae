"""Restart reaction time after a crash, beyond the configured back-off, on a real daemon.

A supervised ``sh -c 'sleep 0.2; exit 1'`` (``restart_policy: on_failure``, back-off
fixed at 100 ms without jitter, a crash-loop limit far out of reach) crashes over and
over. For each crash:

* exit: the client polls the instance's ``sh`` process (found among the daemon's
  children) every ~1 ms and stamps the wall clock when it is a zombie or gone;
* next running: the ``workload_status Running`` event of the next instance, stamped by
  the daemon's engine (wall clock, same machine) and read from ``StreamEvents``;
* reaction = next running − exit − 100 ms (the back-off): what the daemon adds to the
  back-off it was asked for (exit detection, history writes, the decision, the new
  engine run and spawn).

    python bench/bench_daemon_restart.py [--restarts 20]
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
import psutil  # noqa: E402

from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2 as pb  # noqa: E402
from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2_grpc as pb_grpc  # noqa: E402

BACKOFF = 0.100
PLAYBOOK = """\
schemaVersion: "1.0.0"
name: restarts
workloads:
  - name: crasher
    lifecycle:
      policy: supervise
      restart_policy: on_failure
      backoff: { initial: 100ms, max: 100ms, factor: 2.0, jitter: 0 }
      max_restarts: 1000
      restart_window: 1s
    process: { module: exec, params: { command: sh, args: ["-c", "sleep 0.2; exit 1"] } }
"""


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def _exited(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # "pid (comm) S ...": the state follows the last ')'.
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True


def _instance_pid(daemon_pid: int, seen: set[int], timeout: float = 5.0) -> int | None:
    """The pid of a new ``sh`` among the daemon's descendants (None: not found in time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for child in psutil.Process(daemon_pid).children(recursive=True):
                if child.pid not in seen and child.name() == "sh":
                    return child.pid
        except psutil.Error:
            pass
        time.sleep(0.002)
    return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--restarts", type=int, default=20)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="gxob-", dir="/tmp"))
    sock = folder / "d.sock"
    cmd = [sys.executable, "-m", "gxo.cli", "daemon", "--socket", str(sock)]
    cmd += ["--state", f"sqlite:///{folder / 'state.db'}", "--log-level", "error"]
    daemon = subprocess.Popen(cmd, cwd=ROOT)
    reactions: list[float] = []
    try:
        channel = grpc.insecure_channel(f"unix:{sock}")
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = pb_grpc.GxoDaemonStub(channel)
        running: queue.Queue[float] = queue.Queue()

        def follow() -> None:
            request = pb.StreamEventsRequest(playbook="restarts", follow=True, tail=-1)
            try:
                for event in stub.StreamEvents(request):
                    if event.kind != "workload_status" or event.workload != "crasher":
                        continue
                    if json.loads(event.data_json).get("status") == "Running":
                        running.put(event.time)
            except grpc.RpcError:
                pass

        threading.Thread(target=follow, daemon=True).start()
        time.sleep(0.3)
        stub.ApplyPlaybook(pb.ApplyPlaybookRequest(source=PLAYBOOK, path="restarts.gxo.yaml"))
        running.get(timeout=30)
        seen: set[int] = set()
        while len(reactions) < args.restarts:
            pid = _instance_pid(daemon.pid, seen)
            if pid is None:
                raise SystemExit("no instance process found")
            seen.add(pid)
            while not _exited(pid):
                time.sleep(0.001)
            exited = time.time()
            # Drop a Running event of this very instance that raced the pid search.
            while True:
                started = running.get(timeout=30)
                if started > exited:
                    break
            reactions.append((started - exited - BACKOFF) * 1000)
        channel.close()
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        for p in folder.iterdir():
            p.unlink()
        os.rmdir(folder)
    print(
        f"daemon restart reaction ({len(reactions)} crashes, back-off 100 ms excluded): "
        f"p50 {statistics.median(reactions):.1f} ms p95 {pct(reactions, 0.95):.1f} ms "
        f"max {max(reactions):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
