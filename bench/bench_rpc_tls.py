"""``GetWorkloadStatus`` latency over mutual TLS vs the unix socket, one real daemon.

One ``gxo daemon`` subprocess listens on both its unix socket and ``--listen
127.0.0.1:PORT`` (certificates from ``gxo admin pki``, an RBAC file granting the
client ``viewer``). One applied one-workload playbook; the client issues sequential
``GetWorkloadStatus`` calls on one channel (connection set up before timing), in
alternating blocks so machine load hits both transports alike. A second run adds
``--audit-log`` (one fsync'd line per RPC) to show its cost.

    python bench/bench_rpc_tls.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
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
    process: { module: exec, params: { command: "true" } }
"""
RBAC = "subjects:\n  - { cn: bench, roles: [viewer] }\n"
BLOCK = 100


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def gxo(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "gxo.cli", *args], check=True, capture_output=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(folder: Path, calls: int, audit: bool) -> dict[str, list[float]]:
    sock = folder / ("a.sock" if audit else "d.sock")
    pki = folder / "pki"
    port = free_port()
    cmd = [sys.executable, "-m", "gxo.cli", "daemon", "--socket", str(sock)]
    cmd += ["--state", f"sqlite:///{folder / ('a.db' if audit else 'd.db')}"]
    cmd += ["--log-level", "warning", "--listen", f"127.0.0.1:{port}", "--tls-dir", str(pki)]
    cmd += ["--rbac", str(folder / "rbac.yaml")]
    if audit:
        cmd += ["--audit-log", str(folder / "audit.log")]
    daemon = subprocess.Popen(cmd, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert daemon.poll() is None and time.monotonic() < deadline, "daemon did not start"
            time.sleep(0.05)
        unix = grpc.insecure_channel(f"unix:{sock}")
        local = pb_grpc.GxoDaemonStub(unix)
        grpc.channel_ready_future(unix).result(timeout=20)
        local.ApplyPlaybook(pb.ApplyPlaybookRequest(source=PLAYBOOK, path=""), timeout=20)
        creds = grpc.ssl_channel_credentials(
            (pki / "ca.pem").read_bytes(),
            (pki / "bench-key.pem").read_bytes(),
            (pki / "bench.pem").read_bytes(),
        )
        remote = pb_grpc.GxoDaemonStub(grpc.secure_channel(f"127.0.0.1:{port}", creds))
        request = pb.GetWorkloadStatusRequest(name="bench/first")
        stubs = {"unix socket": local, "mTLS (TCP loopback)": remote}
        for stub in stubs.values():  # warm up: connection, handshake, first calls
            for _ in range(50):
                stub.GetWorkloadStatus(request, timeout=10)
        times: dict[str, list[float]] = {name: [] for name in stubs}
        for _ in range(calls // BLOCK):
            for name, stub in stubs.items():
                for _ in range(BLOCK):
                    t0 = time.perf_counter()
                    stub.GetWorkloadStatus(request, timeout=10)
                    times[name].append((time.perf_counter() - t0) * 1000)
        return times
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="gxot-", dir="/tmp"))
    os.chmod(folder, 0o700)
    pki = folder / "pki"
    gxo("admin", "pki", "init", "--dir", str(pki))
    gxo("admin", "pki", "issue-server", "--dir", str(pki), "--host", "127.0.0.1")
    gxo("admin", "pki", "issue-client", "--dir", str(pki), "--cn", "bench")
    (folder / "rbac.yaml").write_text(RBAC)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.calls} calls")
    print("| transport | audit log | p50 | p99 | mean |")
    print("|---|---|---|---|---|")
    for audit in (False, True):
        for name, values in measure(folder, args.calls, audit).items():
            print(
                f"| {name} | {'on' if audit else 'off'} | {pct(values, 0.5):.3f} ms "
                f"| {pct(values, 0.99):.3f} ms | {statistics.fmean(values):.3f} ms |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
