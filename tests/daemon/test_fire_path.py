"""The per-fire path's economies (issue 9): statuses updated in place while queued,
instants formatted once, instances that are no reference cycle."""

from __future__ import annotations

import asyncio
import gc
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from gxo.daemon import heap, reconcile_base
from gxo.daemon.core import Daemon, now_iso
from gxo.daemon.feeds import Feed
from gxo.daemon.reconcile_base import iso, iso_now
from gxo.daemon.writer import StateWriter
from gxo.state.sql import SqlState

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: fp
workloads:
  - name: tick
    lifecycle: { policy: scheduled, cron: "@yearly" }
    process: { module: control:identity, params: { n: 1 } }
"""


@pytest.fixture
def state(tmp_path: Path):
    s = SqlState(f"sqlite:///{tmp_path / 'state.db'}", history_limit=50)
    s.put_playbook("p", source="x", path="", checksum="c", variables={})
    yield s
    s.close()


async def test_a_queued_status_is_updated_in_place(state: SqlState) -> None:
    writer = StateWriter(state)
    start = writer.submit(state.start_run, "p", "w", "r1", "2026-01-01T00:00:00.000+00:00")
    first = writer.set_status("p", "w", {"status": "Running", "last_run_id": "r1"})
    queued = len(writer._queue)
    second = writer.set_status("p", "w", {"status": "Completed", "last_run_id": "r1"})
    assert second is first  # one write, carrying the latest record
    assert len(writer._queue) == queued
    assert writer.pending_status("p", "w") == {"status": "Completed", "last_run_id": "r1"}
    other = writer.set_status("p", "x", {"status": "Running"})  # another workload: its own
    assert other is not first
    await asyncio.gather(start, first, other)
    assert state.get_status("p", "w")["status"] == "Completed"
    assert state.get_status("p", "x")["status"] == "Running"
    assert writer.pending_status("p", "w") is None
    assert writer.writes == 3


async def test_a_status_taken_by_a_batch_is_not_changed_under_it(state: SqlState) -> None:
    writer = StateWriter(state)
    first = writer.set_status("p", "w", {"status": "Running"})
    write = writer._statuses[("p", "w")][1]
    for _ in range(2000):  # until a batch takes it (then it may be committed, too)
        if write.taken or first.done():
            break
        await asyncio.sleep(0.0005)
    assert write.taken
    second = writer.set_status("p", "w", {"status": "Failed"})
    assert second is not first  # a new write, after the one being committed
    await asyncio.gather(first, second)
    assert state.get_status("p", "w")["status"] == "Failed"
    assert writer.writes == 2


def test_iso_is_the_millisecond_isoformat_of_any_instant() -> None:
    rng = random.Random(9)
    base = datetime(2026, 12, 1, tzinfo=UTC)
    for _ in range(5000):
        dt = base + timedelta(microseconds=rng.randrange(10**13))
        assert iso(dt) == dt.astimezone(UTC).isoformat(timespec="milliseconds")
    east = datetime(2026, 12, 1, 5, 0, 0, 999_999, tzinfo=timezone(timedelta(hours=2)))
    assert iso(east) == "2026-12-01T03:00:00.999+00:00"
    assert iso(None) is None


def test_iso_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reconcile_base, "_ISO", {})
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for ms in range(reconcile_base._ISO_MAX + 10):
        iso(base + timedelta(milliseconds=ms))
    assert len(reconcile_base._ISO) <= reconcile_base._ISO_MAX


def test_iso_now_is_now_to_the_millisecond() -> None:
    before = datetime.now(UTC).isoformat(timespec="milliseconds")
    text = iso_now()
    after = datetime.now(UTC).isoformat(timespec="milliseconds")
    assert before <= text <= after
    assert now_iso() >= text  # the daemon's records use it
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is not None and parsed.microsecond % 1000 == 0


def test_a_feed_without_followers_keeps_its_ring() -> None:
    feed = Feed(size=3)
    for n in range(5):
        feed.push({"seq": n})
    assert [e["seq"] for e in feed.recent(lambda e: True, 10)] == [2, 3, 4]


async def test_an_instance_is_freed_without_the_cycle_collector(tmp_path: Path) -> None:
    state = SqlState(f"sqlite:///{tmp_path / 'state.db'}", history_limit=50)
    daemon = Daemon(state)
    try:
        await daemon.apply(PLAYBOOK, str(tmp_path / "fp.gxo.yaml"), {})
        applied = daemon.playbooks["fp"]
        await daemon.run_instance(applied, "tick", run_id="warm", reason="test", owned=True)
        gc.collect()
        gc.disable()
        try:
            outcome = await daemon.run_instance(
                applied, "tick", run_id="r1", reason="test", owned=True
            )
            assert outcome.status == "Completed"
            await asyncio.sleep(0)
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            leaked = [type(o).__qualname__ for o in gc.garbage]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        # Freed by reference counting, nothing left for the cycle collector: the daemon
        # relies on it (gxo/daemon/heap.py: full collections are rare after a freeze).
        assert "Instance" not in leaked and "Engine" not in leaked
        assert leaked == []
        events = [e for e in daemon.events.recent(lambda e: e["run_id"] == "r1", 50)]
        assert events and all(isinstance(e["kind"], str) for e in events)
        assert {"run_started", "run_finished"} <= {e["kind"] for e in events}
    finally:
        await daemon.shutdown(5)
        state.close()


def test_a_settled_daemon_heap_collects_rarely_and_when_quiet() -> None:
    # In a child: gc.freeze() here would freeze the test process's heap.
    # Then no young collection within a burst of fires, and quiet() (no instance in
    # flight) collects what accumulated, once past QUIET_YOUNG only.
    code = (
        "import gc; from gxo.daemon import heap; heap.settle(); "
        "print(*gc.get_threshold(), gc.get_freeze_count() > 0); "
        "heap.enable(); kept = [{} for _ in range(heap.QUIET_YOUNG // 2)]; heap.quiet(); "
        "print(gc.get_count()[0] >= heap.QUIET_YOUNG // 2); "
        "kept += [{} for _ in range(heap.QUIET_YOUNG)]; heap.quiet(); "
        "print(gc.get_count()[0] < 100)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    young = max(gc.get_threshold()[0], heap.YOUNG_EVERY)
    assert out == [str(young), str(gc.get_threshold()[1]), "100", "True", "True", "True"]


async def test_full_says_when_an_instance_start_waits_for_room(
    state: SqlState, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gxo.daemon.writer as writer_module

    monkeypatch.setattr(writer_module, "QUEUE_MAX", 3)
    writer = StateWriter(state)
    assert not writer.full
    for n in range(3):
        writer.submit(state.start_run, "p", "w", f"f{n}", "2026-01-01T00:00:00.000+00:00")
    assert writer.full
    await asyncio.wait_for(writer.room(), 10)
    assert not writer.full
    await writer.flush()


async def test_a_failed_instance_is_no_reference_cycle_either(tmp_path: Path) -> None:
    failing = PLAYBOOK.replace(
        "process: { module: control:identity, params: { n: 1 } }",
        "process: { module: control:assert, params: { condition: false } }",
    )
    state = SqlState(f"sqlite:///{tmp_path / 'state.db'}", history_limit=50)
    daemon = Daemon(state)
    try:
        await daemon.apply(failing, str(tmp_path / "fp.gxo.yaml"), {})
        applied = daemon.playbooks["fp"]
        await daemon.run_instance(applied, "tick", run_id="warm", reason="test", owned=True)
        gc.collect()
        gc.disable()
        try:
            outcome = await daemon.run_instance(
                applied, "tick", run_id="r1", reason="test", owned=True
            )
            await asyncio.sleep(0)
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            leaked = [type(o).__qualname__ for o in gc.garbage]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        assert outcome.status == "Failed" and outcome.error
        assert leaked == []  # the module's exception does not hold its own traceback's frame
        rows = await daemon.runs("fp/tick")
        assert rows[0]["status"] == "Failed"
    finally:
        await daemon.shutdown(5)
        state.close()
