"""Throughput of the daemon's SQL state store (``gxo.state.sql.SqlState``).

Measures ``set_status`` and a ``start_run`` + ``finish_run`` pair (one run's
bookkeeping, history pruning included) in ops/s, from one thread and from
several threads at once (the daemon calls the store through
``asyncio.to_thread``), on SQLite in a temporary directory and, when it is
reachable, PostgreSQL at 127.0.0.1:5432 (a temporary database, dropped after).

    python bench/bench_state.py [--ops 2000] [--threads 4] [--no-postgresql]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gxo.state.sql import SqlState

REPORT = {"status": "Completed", "workloads": {"w": {"status": "Completed", "summary": {"rc": 0}}}}


@contextmanager
def postgresql() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"gxo_bench_state_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def rate(threads: int, ops: int, op: Callable[[int, int], None]) -> float:
    """ops/s of ``op(thread, i)`` run ``ops`` times in total over ``threads`` threads."""
    per = ops // threads

    def work(t: int) -> None:
        for i in range(per):
            op(t, i)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return per * threads / (time.perf_counter() - start)


def measure(url: str, ops: int, threads: int) -> dict[str, float]:
    state = SqlState(url, history_limit=100)
    tag = uuid.uuid4().hex[:6]
    try:

        def status(t: int, i: int) -> None:
            state.set_status("bench", f"w{t}", {"status": "Running", "restarts": i})

        def run(t: int, i: int) -> None:
            run_id = f"{tag}-{t}-{i}-{threads}"
            state.start_run("bench", f"w{t}", run_id, "2026-01-01T00:00:00+00:00")
            state.finish_run(run_id, "Completed", "2026-01-01T00:00:01+00:00", REPORT)

        figures = {}
        for n in (1, threads):
            figures[f"set_status x{n}"] = rate(n, ops, status)
            figures[f"start+finish x{n}"] = rate(n, ops // 2, run)
        return figures
    finally:
        state.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--no-postgresql", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        results = {"sqlite": measure(f"sqlite:///{tmp}/state.db", args.ops, args.threads)}
    if not args.no_postgresql:
        try:
            socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        except OSError:
            print("PostgreSQL not reachable at 127.0.0.1:5432: skipped", file=sys.stderr)
        else:
            with postgresql() as url:
                results["postgresql"] = measure(url, args.ops, args.threads)
    for backend, figures in results.items():
        for name, value in figures.items():
            print(f"{backend:10s} {name:18s} {value:10,.0f} ops/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
