"""Concurrent instances of one root: each instance reads its own registered results."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gxo.daemon.core import Daemon
from gxo.daemon.instance_store import InstanceStore
from gxo.state.sql import SqlState
from gxo.state.store import MemoryStore

# Instance A registers first and reads late; instance B registers in between. Without
# a per-instance view, A's `record` would echo B's name.
PLAYBOOK = """\
schemaVersion: "1.0.0"
name: conc
workloads:
  - name: watch
    lifecycle: { policy: event_driven, source: "file:///tmp/*" }
    process: { module: exec, params: { command: sh, args: ["-c", "sleep $0; echo $1", "{{ _gxo.event.data.first }}", "{{ _gxo.event.data.name }}"] } }
    register: seen
  - name: wait
    depends_on: [watch]
    process: { module: exec, params: { command: sleep, args: ["{{ _gxo.event.data.then }}"] } }
  - name: record
    depends_on: [wait]
    process: { module: exec, params: { command: echo, args: ["got {{ seen.stdout | trim }}"] } }
"""


@pytest.fixture
async def daemon(tmp_path: Path):
    state = SqlState(f"sqlite:///{tmp_path / 'state.db'}")
    d = Daemon(state)
    await d.restore()
    yield d
    await d.shutdown(5)
    state.close()


async def test_concurrent_instances_see_their_own_root_result(
    daemon: Daemon, tmp_path: Path
) -> None:
    await daemon.apply(PLAYBOOK, str(tmp_path / "conc.gxo.yaml"), {})
    applied = daemon.playbooks["conc"]

    def run(name: str, first: float, then: float):
        event = {"id": name, "data": {"name": name, "first": first, "then": then}}
        return daemon.run_instance(applied, "watch", run_id=f"r{name}", reason="t", event=event)

    a, b = await asyncio.gather(run("A", 0, 1.0), run("B", 0.4, 0))
    assert a.status == b.status == "Completed", (a, b)
    outputs = {}
    for row in await daemon.runs("conc/record"):
        outputs[row["run_id"]] = row["report"]["workloads"]["record"]["summary"]["stdout"].strip()
    assert outputs == {"rA.record": "got A", "rB.record": "got B"}
    # The playbook's store keeps the latest result, for later instances and ctl.
    assert daemon.state.results("conc").get("seen")["stdout"].strip() == "B"


def test_own_values_shadow_the_shared_store_which_gets_every_write() -> None:
    shared = MemoryStore({"up": 1, "seen": "other", "old": 0})
    mine = InstanceStore(shared)
    assert mine.get("seen") == "other" and "up" in mine
    mine.set("seen", {"v": "mine"})
    shared.set("seen", "sibling")  # a concurrent instance registers later
    assert mine.get("seen") == {"v": "mine"} and shared.get("seen") == "sibling"
    mine.get("seen")["v"] = "changed"  # reads are copies
    assert mine.get("seen") == {"v": "mine"}
    mine.delete("old")
    assert "old" not in mine and mine.get("old", "none") == "none" and "old" not in shared
    shared.set("old", 5)  # deleted here: a sibling's value is not read through
    assert mine.get("old") is None
    assert sorted(mine.keys()) == ["seen", "up"]
    assert mine.snapshot() == {"up": 1, "seen": {"v": "mine"}}
    assert shared.snapshot() == {"up": 1, "seen": "sibling", "old": 5}  # untouched
