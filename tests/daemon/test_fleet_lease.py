"""LeasedReconciler: only the lease holder runs its reconciler; a holder that loses the
lease stops it; a standby takes over when the holder stops (real SqlState on SQLite)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from gxo.daemon.fleet import LeasedReconciler
from gxo.state.sql import SqlState


class Inner:
    def __init__(self, log: list[str], who: str) -> None:
        self.log, self.who = log, who

    async def start(self) -> None:
        self.log.append(f"start {self.who}")

    async def stop(self, reason: str = "") -> None:
        self.log.append(f"stop {self.who}: {reason}")

    def status(self) -> dict[str, Any]:
        return {"status": "Running"}


def _member(state: SqlState, who: str, log: list[str], ttl: float = 0.3) -> LeasedReconciler:
    daemon = SimpleNamespace(state=state, member=who)

    async def make() -> Inner:
        return Inner(log, who)

    return LeasedReconciler(daemon, "supervise:p/w", make, ttl)  # type: ignore[arg-type]


async def _until(check: Any, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 - polls state changed by other tasks and the db
            await asyncio.sleep(0.02)


def test_one_runs_lost_lease_stops_and_standby_takes_over(tmp_path: Path) -> None:
    async def main() -> None:
        state = SqlState(f"sqlite:///{tmp_path / 's.db'}")
        log: list[str] = []
        a, b = _member(state, "A", log), _member(state, "B", log)
        await a.start()
        await _until(lambda: log == ["start A"])
        await b.start()
        await asyncio.sleep(0.5)  # more than ttl: A keeps renewing, B never starts
        assert log == ["start A"]
        assert b.status() == {"member": "A"} and a.status()["member"] == "A"

        # The lease is taken from A (as if A had stalled past ttl): A stops its copy.
        state.release_lease("supervise:p/w", "A")
        assert state.acquire_lease("supervise:p/w", "X", 0.3)
        await _until(lambda: "stop A: lease lost to another member" in log)
        assert a.inner is None

        # X never renews: its lease expires and one of A/B takes over, exactly one.
        await _until(lambda: sum(e.startswith("start") for e in log) == 2)
        await asyncio.sleep(0.4)
        holder = a if a.inner is not None else b
        assert (a.inner is None) != (b.inner is None)
        await holder.stop()  # releases at once: the other takes over within one period
        await _until(lambda: sum(e.startswith("start") for e in log) == 3, 1.0)
        await a.stop()
        await b.stop()
        assert state.lease_holder("supervise:p/w") is None
        state.close()

    asyncio.run(main())


def test_holder_whose_renewals_hang_stops_before_the_lease_expires(tmp_path: Path) -> None:
    import time

    class Hanging:
        """The real store, but renewals hang (a database that stopped answering)."""

        def __init__(self, state: SqlState) -> None:
            self.state = state

        def __getattr__(self, name: str) -> Any:
            return getattr(self.state, name)

        def renew_lease(self, *args: Any) -> bool:
            time.sleep(1.0)
            return True

    async def main() -> None:
        state = SqlState(f"sqlite:///{tmp_path / 's.db'}")
        log: list[str] = []
        a = _member(Hanging(state), "A", log, ttl=0.6)  # type: ignore[arg-type]
        await a.start()
        await _until(lambda: log == ["start A"])
        started = time.monotonic()
        await _until(lambda: len(log) == 2, 2.0)
        assert log[1] == "stop A: lease not renewed (state database unreachable)"
        assert time.monotonic() - started < 0.6  # stopped before the lease expired
        await a.stop()
        state.close()

    asyncio.run(main())
