"""The Timeline tab: bars from start to end, the critical path highlighted (issue 18)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static, TabbedContent

from gxo.tui.app import create_app
from gxo.tui.widgets.timeline import critical_path, spans

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: timed
workloads:
  - name: slow
    process: { module: exec, params: { command: sleep, args: ["0.6"] } }
  - name: quick  # no process: a loaded machine cannot make it the slower branch
    process: { module: control:identity, params: {} }
  - name: after_slow
    depends_on: [slow]
    process: { module: control:identity, params: {} }
  - name: after_quick
    depends_on: [quick]
    process: { module: control:identity, params: {} }
"""


def finished(app: Any) -> bool:
    return app.session is not None and app.session.model.finished and not app.session.running


def text_of(widget: Static, width: int = 120) -> str:
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


async def test_timeline_shows_real_spans_and_the_critical_path(
    write_playbook: Any, wait_until: Any
) -> None:
    app = create_app(write_playbook(PLAYBOOK), timings=True)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_until(lambda: finished(app))
        bars, derived = spans(app.session, timings=True)
        assert not derived
        assert bars["slow"][1] - bars["slow"][0] >= 0.35
        assert bars["after_slow"][0] >= bars["slow"][1]  # it started after slow ended
        assert critical_path(app.session, bars) == ["slow", "after_slow"]
        await pilot.press("5")
        assert app.screen.query_one(TabbedContent).active == "timeline"
        text = text_of(app.screen.query_one("#timeline-body", Static))
        assert "critical path: slow → after_slow" in text
        rows = {line.split()[1]: line for line in text.splitlines() if line.startswith(("✔", "✘"))}
        assert set(rows) == {"slow", "quick", "after_slow", "after_quick"}
        assert rows["slow"].count("█") > rows["quick"].count("█")


async def test_replay_derives_starts_from_durations(write_playbook: Any, wait_until: Any) -> None:
    from gxo.tui.history import ReplaySession

    app = create_app(write_playbook(PLAYBOOK), timings=True)
    async with app.run_test(size=(120, 30)):
        await wait_until(lambda: finished(app))
        report = app.session.result.report()
    replay = ReplaySession(app.loaded, report, [])
    bars, derived = spans(replay, timings=True)
    assert derived
    assert bars["after_slow"][0] == pytest.approx(bars["slow"][1])
    assert bars["slow"][0] == 0.0
    assert critical_path(replay, bars) == ["slow", "after_slow"]


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_timeline_snapshot(snap_compare: Any, ui_playbook: Any, wait_until: Any, size: Any) -> None:
    app = create_app(ui_playbook("overview"), timings=False)

    async def run_before(pilot: Pilot[Any]) -> None:
        await wait_until(lambda: finished(app))
        await pilot.press("5")

    assert snap_compare(app, terminal_size=size, run_before=run_before)
