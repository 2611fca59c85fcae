"""What encryption at rest costs the daemon's state writes (``gxo.state.crypto``).

The same writes on a plaintext store and on an AES-256-GCM store, in alternating rounds
(plain, encrypted, plain, ...) so that the load of a shared machine hits both alike; the
median of the rounds per kind: ``set_status`` (one status row), ``start_run`` +
``finish_run`` (a run's bookkeeping, its report sealed) and a registered result
(``SqlResultStore.set``), in writes/s from one thread; every write changes its row (SQLite
skips writing a page whose bytes an update leaves unchanged, which would flatter plaintext); then the codec alone (seal + open
of one status-sized value). SQLite in a temporary directory and, when reachable,
PostgreSQL at 127.0.0.1:5432 (a temporary database, dropped after).

    python bench/bench_state_crypto.py [--ops 1000] [--rounds 5] [--no-postgresql]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_state import REPORT, postgresql

from gxo.state._sql_schema import metadata, parse_url
from gxo.state.crypto import AesGcmCodec, StateCodec
from gxo.state.sql import SqlState

STATUS = {"status": "Running", "reason": "", "restarts": 3, "last_exit": 0, "next_run": None}


def writes(state: SqlState, kind: str, ops: int, tag: str) -> float:
    """writes/s of ``ops`` writes of one kind."""
    results = state.results("bench")
    ops_for: dict[str, Callable[[int], None]] = {
        "set_status": lambda i: state.set_status("bench", f"w{i % 50}", {**STATUS, "n": i}),
        "start+finish run": lambda i: (
            state.start_run("bench", f"w{i % 50}", f"{tag}-{i}", "2026-01-01T00:00:00+00:00"),
            state.finish_run(f"{tag}-{i}", "Completed", "2026-01-01T00:00:01+00:00", REPORT),
        ),
        "result set": lambda i: results.set(f"k{i % 200}", {"rc": 0, "n": i, "out": "x" * 200}),
    }
    op = ops_for[kind]
    start = time.perf_counter()
    for i in range(ops):
        op(i)
    return ops / (time.perf_counter() - start)


def measure(url: str, ops: int, rounds: int) -> dict[str, tuple[float, float]]:
    """kind → (plain writes/s, encrypted writes/s), medians over the rounds."""
    key = AesGcmCodec(os.urandom(32))
    kinds = ("set_status", "start+finish run", "result set")
    samples: dict[tuple[str, str], list[float]] = {(k, m): [] for k in kinds for m in "pe"}
    for r in range(rounds):
        for mode in "pe":
            _drop(url)
            state = SqlState(url, codec=key if mode == "e" else None)
            try:
                for kind in kinds:
                    tag = f"{mode}{r}{uuid.uuid4().hex[:6]}"
                    samples[(kind, mode)].append(writes(state, kind, ops, tag))
            finally:
                state.close()
    return {
        k: (statistics.median(samples[(k, "p")]), statistics.median(samples[(k, "e")]))
        for k in kinds
    }


def _drop(url: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(parse_url(url))
    try:
        metadata.drop_all(engine)
    finally:
        engine.dispose()


def codec_cost(codec: StateCodec, n: int = 20_000) -> float:
    """µs per seal + open of one status-sized value."""
    from gxo.state._sql_schema import encode

    text = encode({**STATUS, "updated_at": "2026-01-01T00:00:00+00:00"})
    start = time.perf_counter()
    for _ in range(n):
        sealed = codec.seal(text, "statuses", "p", "w", column="data")
        codec.open(sealed, "statuses", "p", "w", column="data")
    return (time.perf_counter() - start) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-postgresql", action="store_true")
    args = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = measure(f"sqlite:///{tmp}/state.db", args.ops, args.rounds)
    if not args.no_postgresql:
        try:
            socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        except OSError:
            print("PostgreSQL not reachable at 127.0.0.1:5432: skipped", file=sys.stderr)
        else:
            with postgresql() as url:
                results["postgresql"] = measure(url, args.ops, args.rounds)
    print(f"{'backend':10s} {'writes':18s} {'plain/s':>10s} {'encrypted/s':>12s} {'cost':>7s}")
    for backend, figures in results.items():
        for kind, (plain, enc) in figures.items():
            cost = (plain - enc) / plain * 100
            print(f"{backend:10s} {kind:18s} {plain:10,.0f} {enc:12,.0f} {cost:6.1f}%")
    print(f"codec alone: {codec_cost(AesGcmCodec(os.urandom(32))):.1f} µs per seal+open")
    return 0


if __name__ == "__main__":
    sys.exit(main())
