"""The UI keeps drawing while a heavy run floods it with records and log lines."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from textual.widgets import Log

from gxo.tui.app import create_app
from gxo.tui.screens import RunScreen
from gxo.tui.widgets import DagView

HEAVY = """
schemaVersion: "1.0.0"
name: heavy
channel_policy: { buffer_size: 50 }
workloads:
  - name: chatter
    process: { module: exec, params: { command: seq, args: ["1", "20000"] } }
  - name: numbers
    process: { module: data:generate_from_list, params: { items: "{{ range(30000) | list }}" } }
  - name: forward
    process: { module: passthrough }
    stream_inputs: [numbers]
  - name: sink
    process: { module: control:barrier }
    stream_inputs: [forward]
"""

MAX_LOOP_LAG = 1.0  # seconds; generous for a loaded 2-core CI machine


async def test_ui_refreshes_during_a_heavy_run(
    write_playbook: Any, wait_until: Any, monkeypatch: Any
) -> None:
    refreshes_while_running: list[float] = []
    original_sync = RunScreen.sync

    def counting_sync(self: RunScreen) -> None:
        if self.session.model.run_status == "Running":
            refreshes_while_running.append(time.monotonic())
        original_sync(self)

    monkeypatch.setattr(RunScreen, "sync", counting_sync)

    lags: list[float] = []

    async def ticker() -> None:  # how late the shared event loop wakes a 20 ms sleeper
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.02)
            lags.append(time.monotonic() - before - 0.02)

    tick = asyncio.create_task(ticker())
    app = create_app(write_playbook(HEAVY))
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("2")  # the logs tab, tailing the first workload (chatter)
            await wait_until(
                lambda: app.session is not None and app.session.model.finished, timeout=60
            )
            await pilot.pause(0.3)
            assert app.session.model.run_status == "Completed"
            assert app.screen.query_one(DagView).selected == "chatter"
            log = app.screen.query_one("#log-panel #log-lines", Log)
            assert log.lines[-1] == "│ 20000"
            link = app.session.model.links[("numbers", "forward")]
            assert link.delivered == 30000
    finally:
        tick.cancel()
    assert len(refreshes_while_running) >= 3, "the screen was not redrawn while the run was going"
    assert max(lags) < MAX_LOOP_LAG, f"the event loop stalled for {max(lags):.2f}s"
