"""The write-behind's multi-row batches (StateWriter → SqlState.write_runs), real SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gxo.daemon.writer import StateWriter
from gxo.state.sql import SqlState


class CountingState(SqlState):
    """A real SqlState that counts its multi-row calls."""

    grouped = 0

    def write_runs(self, *args: Any) -> list[bool]:
        self.grouped += 1
        return super().write_runs(*args)


@pytest.fixture
def state(tmp_path: Path):
    s = CountingState(f"sqlite:///{tmp_path / 'state.db'}", history_limit=3)
    s.put_playbook("p", source="x", path="", checksum="c", variables={})
    yield s
    s.close()


async def test_the_instance_writes_of_a_batch_go_in_multi_row_statements(
    state: CountingState,
) -> None:
    writer = StateWriter(state)
    futures = []
    for n in range(50):
        futures.append(writer.submit(state.start_run, "p", "w", f"r{n}", f"t{n:02d}"))
        futures.append(writer.set_status("p", "w", {"status": "Running"}))
        futures.append(writer.submit(state.finish_run, f"r{n}", "Completed", "e", {"n": n}))
    futures.append(writer.submit(state.finish_run, "unknown", "Completed", "e", {}))
    await writer.flush()
    assert [f.result() for f in futures[2:-1:3]] == [True] * 50
    assert futures[-1].result() is False
    assert state.grouped == writer.batches and writer.batches < 10
    runs = state.list_runs("p", "w")
    assert [r["run_id"] for r in runs] == ["r49", "r48", "r47"]  # history_limit 3
    assert runs[0]["report"] == {"n": 49} and state.get_status("p", "w")["status"] == "Running"


async def test_a_batch_with_another_write_keeps_one_call_per_write_in_order(
    state: CountingState,
) -> None:
    writer = StateWriter(state)
    first = writer.submit(state.start_run, "p", "w", "a", "t0")
    other = writer.submit(state.delete_workload, "p", "w")  # not an instance write
    last = writer.submit(state.start_run, "p", "w", "b", "t1")
    await writer.flush()
    assert first.result() is None and other.exception() is None and last.result() is None
    assert state.grouped == 0
    assert [r["run_id"] for r in state.list_runs("p", "w")] == ["b"]  # order kept
