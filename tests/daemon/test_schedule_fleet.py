"""Scheduled workloads in a fleet: each fire time runs on exactly one member.

Two ScheduleReconcilers stand for two daemons: each has its own SqlState on one
PostgreSQL database and claims fires through ``SqlState.claim_fire`` (as lifecycles
binds it when the daemon has ``--fleet``).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gxo.daemon.lifecycles import _fire_claimer
from gxo.daemon.reconcile import ScheduleReconciler
from gxo.state.sql import SqlState
from tests.daemon.test_reconcile import Fake, Recorder, sleeping, wait_for, workload

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def pg_url(require_service: Callable[..., None]) -> Iterator[str]:
    from sqlalchemy import create_engine, text

    require_service("127.0.0.1", 5432, "PostgreSQL")
    name = f"gxo_test_fleet_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def member(state: SqlState, name: str) -> Any:
    daemon = SimpleNamespace(fleet="f", member=name, state=state)
    return _fire_claimer(daemon, "pb", "w")  # type: ignore[arg-type]


async def test_two_members_run_each_fire_time_once(pg_url: str) -> None:
    states = [SqlState(pg_url), SqlState(pg_url)]
    fakes = [Fake(sleeping(0.0)), Fake(sleeping(0.0))]
    recorders = [Recorder(), Recorder()]
    # A real "@every 1s" (no prebuilt schedule): the members start at different
    # moments, so this also checks that both compute the same fire times.
    reconcilers = []
    try:
        for i in range(2):
            r = ScheduleReconciler(
                "pb",
                workload("scheduled", cron="@every 1s"),
                run_instance=fakes[i],
                on_status=recorders[i],
                claim_fire=member(states[i], f"m{i}"),
            )
            reconcilers.append(r)
            await r.start()
            await asyncio.sleep(0.37)
        await asyncio.sleep(5)
        for r in reconcilers:
            await r.stop()
        runs = sum(len(f.calls) for f in fakes)
        assert 4 <= runs <= 7, runs
        # Every fire both members saw was run by one and skipped by the other.
        assert sum(r.fires for r in reconcilers) == runs
        elsewhere = sum(r.claimed_elsewhere for r in reconcilers)
        assert runs - 1 <= elsewhere <= runs  # the first member alone saw its first fire
        # One run per second: the starts, rounded to the fire second, are all distinct.
        seconds = sorted(round(w.timestamp()) for f in fakes for w in f.walls)
        assert len(seconds) == len(set(seconds)), seconds
        assert seconds == list(range(seconds[0], seconds[0] + len(seconds)))
        # The claims in the database are exactly the runs.
        members = {
            states[0].fire_member("pb", "w", datetime.fromtimestamp(s, UTC).isoformat())
            for s in seconds
        }
        assert members <= {"m0", "m1"} and None not in members
        assert any(
            s.get("claimed_elsewhere") for rec in recorders for s in rec.seen
        )  # shown in the status
    finally:
        for r in reconcilers:
            await r.stop()
        for state in states:
            state.close()


async def test_a_fire_that_cannot_be_claimed_is_not_run() -> None:
    async def broken(fire_iso: str) -> bool:
        raise OSError("database down")

    fake, rec = Fake(sleeping(0.0)), Recorder()
    r = ScheduleReconciler(
        "pb",
        workload("scheduled", cron="@every 1s"),
        run_instance=fake,
        on_status=rec,
        claim_fire=broken,
    )
    await r.start()
    await wait_for(lambda: any("cannot claim" in (s.get("reason") or "") for s in rec.seen))
    await r.stop()
    assert fake.calls == []
    assert r.fires == 0


def test_claims_only_in_a_fleet(tmp_path: Path) -> None:
    with SqlState(f"sqlite:///{tmp_path / 's.db'}") as state:
        alone = SimpleNamespace(state=state)  # no fleet attribute at all
        assert _fire_claimer(alone, "pb", "w") is None  # type: ignore[arg-type]
        claim = member(state, "m1")
        assert asyncio.run(claim("2026-11-30T22:00:00+00:00")) is True
        assert asyncio.run(claim("2026-11-30T22:00:00+00:00")) is False
        assert state.fire_member("pb", "w", "2026-11-30T22:00:00Z") == "m1"
