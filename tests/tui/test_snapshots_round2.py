"""Issue 18 snapshots: help overlay, quit dialog, a log search, the Resume tab and the
command palette, at 80×24 and 160×48 (baselines under ``snapshots/test_snapshots_round2/``;
the Timeline tab's are in test_timeline.py)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from gxo.tui.app import GxoApp, create_app
from gxo.tui.screens import RunScreen

SMALL, LARGE = (80, 24), (160, 48)


def _settle(app: GxoApp) -> None:
    screen = next(s for s in reversed(app.screen_stack) if isinstance(s, RunScreen))
    screen.sync()


def _finished(app: GxoApp) -> bool:
    return app.session is not None and app.session.model.finished and not app.session.running


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
def test_help_overlay(snap_compare: Any, ui_playbook: Any, wait_until: Any, size: Any) -> None:
    app = create_app(ui_playbook("failing"), timings=False)

    async def run_before(pilot: Pilot[Any]) -> None:
        await wait_until(lambda: _finished(app))
        _settle(app)
        await pilot.press("question_mark")

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
def test_logs_with_a_search(
    snap_compare: Any, ui_playbook: Any, wait_until: Any, size: Any
) -> None:
    app = create_app(ui_playbook("failing"), timings=False)

    async def run_before(pilot: Pilot[Any]) -> None:
        await wait_until(lambda: _finished(app))
        await pilot.press("j", "slash", *"boom", "enter")  # flaky's log, filtered
        _settle(app)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
def test_quit_dialog(snap_compare: Any, ui_playbook: Any, wait_until: Any, size: Any) -> None:
    app = create_app(ui_playbook("midrun"), timings=False)

    async def run_before(pilot: Pilot[Any]) -> None:
        await wait_until(
            lambda: (
                app.session is not None
                and app.session.model.workloads["build"].status == "Running"
                and len(app.session.model.logs["build"]) == 2
            )
        )
        _settle(app)
        await pilot.press("q")

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
def test_resume_tab(snap_compare: Any, ui_playbook: Any, wait_until: Any, size: Any) -> None:
    app = create_app(ui_playbook("approval"), timings=False)

    async def run_before(pilot: Pilot[Any]) -> None:
        def held() -> bool:
            model = app.session.model if app.session else None
            return (
                model is not None
                and "approve" in model.paused
                and model.workloads["docs"].status == "Completed"
            )

        await wait_until(held, what="approve to be paused")
        await pilot.press("4")
        _settle(app)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
def test_command_palette(snap_compare: Any, ui_playbook: Any, wait_until: Any, size: Any) -> None:
    from textual.widgets import Input

    app = create_app(ui_playbook("failing"), timings=False)

    async def run_before(pilot: Pilot[Any]) -> None:
        await wait_until(lambda: _finished(app))
        _settle(app)
        await pilot.press("ctrl+p")
        await pilot.pause()
        for field in app.screen.query(Input):
            field.cursor_blink = False  # a blinking cursor is a different picture each time
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
