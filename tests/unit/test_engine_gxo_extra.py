"""``Engine(gxo_extra=...)``: extra names under ``_gxo`` (a daemon instance's ``event``)."""

from __future__ import annotations

import asyncio

from gxo.config.loader import load_playbook
from gxo.engine.scheduler import Engine
from gxo.state.store import MemoryStore

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: ev
workloads:
  - name: show
    process: { module: control:identity, params: { path: "{{ _gxo.event.data.path }}", run: "{{ _gxo.run_id }}" } }
    register: shown
"""


def test_event_is_visible_as_gxo_event() -> None:
    loaded = load_playbook(text=PLAYBOOK, name="pb.yaml")
    event = {"id": "1", "data": {"path": "/tmp/a.txt"}}
    # A built-in name is never replaced by an extra one.
    store = MemoryStore()
    engine = Engine(
        loaded, run_id="r1", store=store, gxo_extra={"event": event, "run_id": "forged"}
    )
    result = asyncio.run(engine.run())
    assert str(result.status) == "Completed", result.report()
    assert store.get("shown") == {"path": "/tmp/a.txt", "run": "r1"}


def test_without_gxo_extra_event_is_undefined() -> None:
    # `gxo run` is unchanged: no event, so reading it fails like any undefined name.
    loaded = load_playbook(text=PLAYBOOK, name="pb.yaml")
    result = asyncio.run(Engine(loaded).run())
    assert str(result.status) == "Failed"
    assert "event" in (result.states["show"].error or "")
