"""`make bench`: run every benchmark in a fresh process and print one line each.

Figures vary with the machine and its load; record dated runs in bench/RESULTS.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ("bench_overhead.py", []),  # issue 19's table: engine, hop, whole run, start-up
    ("bench_scheduler.py", []),
    ("bench_streams.py", []),
    ("bench_startup.py", []),
    ("bench_dataplane.py", []),
    ("bench_watch.py", []),
    ("bench_loader.py", []),
    ("bench_daemon_apply.py", []),
    ("bench_daemon_restart.py", []),
    ("bench_scheduled.py", []),
    ("bench_nats_source.py", []),
    ("bench_instance.py", []),
    ("bench_scheduled_daemon.py", []),
    ("bench_http_service.py", []),
]


def main() -> int:
    failed = 0
    for script, args in BENCHES:
        path = HERE / script
        if not path.exists():
            continue
        proc = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True)
        out = proc.stdout.strip() or proc.stderr.strip()
        print(
            out if proc.returncode == 0 else f"{script}: FAILED (exit {proc.returncode})\n{out}",
            flush=True,
        )
        failed += proc.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
