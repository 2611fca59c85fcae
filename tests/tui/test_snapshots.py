"""SVG snapshots of the workbench (baselines in the top-level ``snapshots/`` directory).

Each snapshot waits for a state the run cannot leave by itself — finished, or held
in the middle by a command that sleeps or a consumer that never reads — and
``timings=False`` freezes the clock and durations, so the picture is the same on
every machine. Update with ``make snapshots-update`` after checking the diff.
"""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from gxo.tui.app import GxoApp, create_app
from gxo.tui.screens import RunScreen

WIDE = (100, 30)


def _settle(app: GxoApp) -> None:
    """Push the model to the widgets now rather than on the next refresh tick."""
    assert isinstance(app.screen, RunScreen)
    app.screen.sync()


class TestSnapshots:
    def test_main_screen_mid_run(
        self, snap_compare: Any, ui_playbook: Any, wait_until: Any
    ) -> None:
        app = create_app(ui_playbook("midrun"), timings=False)

        async def run_before(pilot: Pilot[Any]) -> None:
            def held() -> bool:
                model = app.session.model if app.session else None
                if model is None:
                    return False
                done = all(
                    model.workloads[n].status == "Completed"
                    for n in ("prepare", "numbers", "forward")
                )
                return (
                    done
                    and model.workloads["build"].status == "Running"
                    and len(model.logs["build"]) == 2
                )

            await wait_until(held, what="build to be running with its output")
            await pilot.press("right", "j")  # build
            _settle(app)

        assert snap_compare(app, terminal_size=WIDE, run_before=run_before)

    def test_failed_workload_details(
        self, snap_compare: Any, ui_playbook: Any, wait_until: Any
    ) -> None:
        app = create_app(ui_playbook("failing"), timings=False)

        async def run_before(pilot: Pilot[Any]) -> None:
            await wait_until(lambda: app.session is not None and app.session.model.finished)
            await pilot.press("right", "enter")  # render_report: a template error
            _settle(app)

        assert snap_compare(app, terminal_size=WIDE, run_before=run_before)

    def test_stream_panel_under_back_pressure(
        self, snap_compare: Any, ui_playbook: Any, wait_until: Any, stall_module: str
    ) -> None:
        app = create_app(ui_playbook("backpressure"), timings=False)

        async def run_before(pilot: Pilot[Any]) -> None:
            def blocked() -> bool:
                link = app.session.model.links.get(("numbers", "stalled")) if app.session else None
                return link is not None and link.full and link.sent == 10 and len(link.rates) >= 2

            await wait_until(blocked, what="the producer to block on a full buffer")
            await pilot.press("3")
            _settle(app)

        assert snap_compare(app, terminal_size=WIDE, run_before=run_before)

    def test_invalid_playbook_error_screen(self, snap_compare: Any, ui_playbook: Any) -> None:
        app = create_app(ui_playbook("invalid"), timings=False)
        assert snap_compare(app, terminal_size=WIDE)

    def test_layout_80x24(self, snap_compare: Any, ui_playbook: Any, wait_until: Any) -> None:
        app = create_app(ui_playbook("overview"), timings=False)

        async def run_before(pilot: Pilot[Any]) -> None:
            await wait_until(lambda: app.session is not None and app.session.model.finished)
            _settle(app)

        assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)

    def test_layout_wide_terminal(
        self, snap_compare: Any, ui_playbook: Any, wait_until: Any
    ) -> None:
        app = create_app(ui_playbook("overview"), timings=False)

        async def run_before(pilot: Pilot[Any]) -> None:
            await wait_until(lambda: app.session is not None and app.session.model.finished)
            _settle(app)

        assert snap_compare(app, terminal_size=(150, 40), run_before=run_before)

    def test_resume_tab_with_a_paused_workload(
        self, snap_compare: Any, ui_playbook: Any, wait_until: Any
    ) -> None:
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

        assert snap_compare(app, terminal_size=WIDE, run_before=run_before)

    def test_approval_form(self, snap_compare: Any, ui_playbook: Any, wait_until: Any) -> None:
        app = create_app(ui_playbook("approval"), timings=False)

        async def run_before(pilot: Pilot[Any]) -> None:
            await wait_until(
                lambda: app.session is not None and "approve" in app.session.model.paused,
                what="approve to be paused",
            )
            await pilot.press("4", "a")
            await pilot.press("space", "tab", "0")  # approved; replicas 0: below the minimum
            await pilot.press("ctrl+s")  # refused: the errors show in the form

        assert snap_compare(app, terminal_size=WIDE, run_before=run_before)
