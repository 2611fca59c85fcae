"""The daemon's write-behind (gxo/daemon/writer.py) on a real SQLite state."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gxo.daemon.core import Daemon
from gxo.daemon.writer import StateWriter, writer_of
from gxo.state.sql import SqlState, StateError

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: wb
workloads:
  - name: tick
    lifecycle: { policy: scheduled, cron: "@yearly" }
    process: { module: control:identity, params: { n: "{{ _gxo.event.data.n }}" } }
    register: seen
  - name: after
    depends_on: [tick]
    process: { module: control:identity, params: { got: "{{ seen.n }}" } }
"""


@pytest.fixture
def state(tmp_path: Path):
    s = SqlState(f"sqlite:///{tmp_path / 'state.db'}", history_limit=500)
    s.put_playbook("p", source="x", path="", checksum="c", variables={})
    yield s
    s.close()


async def test_a_burst_is_few_transactions_in_submission_order(state: SqlState) -> None:
    writer = StateWriter(state)
    futures = []
    for n in range(200):
        futures.append(writer.submit(state.start_run, "p", "w", f"r{n}", "2026-01-01T00:00:00Z"))
        futures.append(writer.submit(state.finish_run, f"r{n}", "Completed", "t", {"n": n}))
    assert writer.pending  # nothing committed yet: the caller did not wait
    await writer.flush()
    assert all(f.done() and f.result() in (None, True) for f in futures)
    runs = state.list_runs("p", "w", 500)
    assert len(runs) == 200 and {r["status"] for r in runs} == {"Completed"}
    assert [r["run_id"] for r in runs] == [f"r{n}" for n in reversed(range(200))]
    assert writer.writes == 400 and writer.batches < 20


async def test_statuses_coalesce_and_are_served_until_committed(state: SqlState) -> None:
    writer = StateWriter(state)
    first = writer.set_status("p", "w", {"status": "Running", "restarts": 1})
    last = writer.set_status("p", "w", {"status": "Failed", "restarts": 2})
    assert writer.pending_status("p", "w") == {"status": "Failed", "restarts": 2}
    await asyncio.gather(first, last)
    assert writer.pending_status("p", "w") is None
    assert state.get_status("p", "w")["status"] == "Failed"
    assert writer.writes == 1  # the superseded Running was never written


async def test_one_bad_write_fails_alone(state: SqlState, caplog: pytest.LogCaptureFixture) -> None:
    writer = StateWriter(state)
    ok1 = writer.submit(state.start_run, "p", "w", "a", "2026-01-01T00:00:00Z")
    dup = writer.submit(state.start_run, "p", "w", "a", "2026-01-01T00:00:00Z")
    ok2 = writer.submit(state.start_run, "p", "w", "b", "2026-01-01T00:00:00Z")
    await asyncio.wait([ok1, dup, ok2])
    assert ok1.exception() is None and ok2.exception() is None
    assert isinstance(dup.exception(), StateError)
    assert "already recorded" in caplog.text
    assert sorted(r["run_id"] for r in state.list_runs("p", "w")) == ["a", "b"]


async def test_batch_rolls_back_as_a_whole(state: SqlState) -> None:
    with pytest.raises(RuntimeError), state.batch():
        state.start_run("p", "w", "gone", "2026-01-01T00:00:00Z")
        raise RuntimeError("boom")
    assert state.get_run("gone") is None


async def test_daemon_reads_see_queued_writes_and_history_is_complete(tmp_path: Path) -> None:
    state = SqlState(f"sqlite:///{tmp_path / 'state.db'}", history_limit=500)
    daemon = Daemon(state)
    await daemon.restore()
    try:
        await daemon.apply(PLAYBOOK, str(tmp_path / "wb.gxo.yaml"), {})
        applied = daemon.playbooks["wb"]
        outcomes = await asyncio.gather(
            *(
                daemon.run_instance(
                    applied,
                    "tick",
                    run_id=f"i{n:03d}",
                    reason="t",
                    owned=True,
                    event={"data": {"n": n}},
                )
                for n in range(50)
            )
        )
        assert {o.status for o in outcomes} == {"Completed"}
        # An instance's end waits for its rows: the history is there, read directly.
        ticks = state.list_runs("wb", "tick", 100)
        afters = state.list_runs("wb", "after", 100)
        assert len(ticks) == len(afters) == 50
        assert {r["status"] for r in ticks + afters} == {"Completed"}
        # Each downstream run saw its own root's result.
        for run in afters:
            n = int(run["run_id"].split(".")[0][1:])
            assert run["report"]["workloads"]["after"]["summary"] == {"got": n}
        # A status queued by the daemon is what its next read returns.
        await daemon.set_status("wb", "after", "Stopped", reason="by test")
        assert (await daemon.status("wb/after"))["status"] == "Stopped"
        assert writer_of(daemon).batches < 100  # 50 instances × 4 writes, batched
    finally:
        await daemon.shutdown(5)
        state.close()


async def test_shutdown_commits_what_is_queued(tmp_path: Path) -> None:
    state = SqlState(f"sqlite:///{tmp_path / 'state.db'}", history_limit=500)
    daemon = Daemon(state)
    await daemon.restore()
    try:
        await daemon.apply(PLAYBOOK, str(tmp_path / "wb.gxo.yaml"), {})
        writer = writer_of(daemon)
        for n in range(300):
            writer.submit(state.start_run, "wb", "after", f"s{n}", "2026-01-01T00:00:00Z")
        assert writer.pending
        await daemon.shutdown(5)
        assert not writer.pending
        assert len(state.list_runs("wb", "after", 500)) >= 300
    finally:
        state.close()


async def test_room_waits_while_the_queue_is_full(
    state: SqlState, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gxo.daemon.writer as writer_module

    monkeypatch.setattr(writer_module, "QUEUE_MAX", 10)
    monkeypatch.setattr(writer_module, "BATCH_MAX", 5)
    writer = StateWriter(state)
    for n in range(12):
        writer.submit(state.start_run, "p", "w", f"q{n}", "2026-01-01T00:00:00Z")
    assert len(writer._queue) >= 10  # an instance start must wait here
    await asyncio.wait_for(writer.room(), 10)
    assert len(writer._queue) < 10  # it returned once the drain made room
    await writer.flush()
    assert len(state.list_runs("p", "w", 50)) == 12
