"""Pilot-driven interaction tests of ``gxo ui`` (real engine, real playbooks)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import psutil
import pytest
from rich.console import Console
from textual.widgets import Log, Static, TabbedContent

from gxo.tui.app import GxoApp, create_app
from gxo.tui.screens import ConfirmQuitScreen, ErrorScreen, RunScreen
from gxo.tui.widgets import DagView, RunHeader

SIZE = (100, 32)


def text_of(widget: Static, width: int = 100) -> str:
    """What a Static shows, as plain text."""
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


def details_text(app: GxoApp, width: int = 100) -> str:
    return text_of(app.screen.query_one("#details-body", Static), width)


def header_text(app: GxoApp) -> str:
    return text_of(app.screen.query_one(RunHeader))


def finished(app: GxoApp) -> bool:
    return app.session is not None and app.session.model.finished


def hold_processes() -> list[psutil.Process]:
    """The `sleep 31.4159` children of the midrun playbook still alive."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if "31.4159" in cmdline and proc.status() != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


class TestNavigation:
    async def test_keys_move_between_workloads_and_levels(
        self, ui_playbook: Any, wait_until: Any
    ) -> None:
        app = create_app(ui_playbook("failing"), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: finished(app), what="the run to end")
            dag = app.screen.query_one(DagView)
            # Levels: [fetch, flaky] [render_report, check_numbers] [upload]
            assert dag.selected == "fetch"
            await pilot.press("j")
            assert dag.selected == "flaky"
            await pilot.press("k")
            assert dag.selected == "fetch"
            await pilot.press("right")
            assert dag.selected == "render_report"
            await pilot.press("right")
            assert dag.selected == "upload"
            await pilot.press("left", "left")
            assert dag.selected == "fetch"
            await pilot.press("down", "down")  # the level header in between is skipped
            assert dag.selected == "render_report"

    async def test_enter_opens_details_of_failed_workload(
        self, ui_playbook: Any, wait_until: Any
    ) -> None:
        app = create_app(ui_playbook("failing"), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: finished(app))
            app.screen.query_one(TabbedContent).active = "logs"
            await pilot.press("right", "enter")
            await pilot.pause()
            assert app.screen.query_one(TabbedContent).active == "details"
            text = details_text(app)
            assert "render_report" in text
            assert "✘ Failed" in text
            assert "param 'first': undefined name 'missing_field'" in text
            # the failing template and where it is written
            assert "failing template first: {{ fetched.missing_field }}" in text
            assert "failing.gxo.yaml:17:9" in text
            assert "Params (as written)" in text  # never rendered: shown as written

    async def test_details_show_rendered_params_summary_and_iterations(
        self, ui_playbook: Any, wait_until: Any
    ) -> None:
        app = create_app(ui_playbook("failing"), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: finished(app))
            text = details_text(app)  # fetch is selected first
            assert "Params (rendered, secrets redacted)" in text
            assert "Summary" in text and '"numbers"' in text
            await pilot.press("right", "j")  # check_numbers: a loop with a failed iteration
            await pilot.pause()
            text = details_text(app)
            assert "Loop iterations (3)" in text
            assert "assertion failed: 'item != 2' evaluated to False" in text

    async def test_secrets_are_redacted_in_details(
        self, write_playbook: Any, wait_until: Any, monkeypatch: Any
    ) -> None:
        monkeypatch.setenv("GXO_TUI_TOKEN", "s3cr3t-value")
        path = write_playbook(
            """
            schemaVersion: "1.0.0"
            name: secretive
            workloads:
              - name: call
                process:
                  module: control:identity
                  params: { token: "{{ secret('GXO_TUI_TOKEN') }}", user: ada }
            """
        )
        app = create_app(path, timings=False)
        async with app.run_test(size=SIZE):
            await wait_until(lambda: finished(app))
            text = details_text(app)
            assert "s3cr3t-value" not in text
            assert "[REDACTED]" in text and "ada" in text

    async def test_extra_vars_reach_the_run(self, write_playbook: Any, wait_until: Any) -> None:
        path = write_playbook(
            """
            schemaVersion: "1.0.0"
            name: vars
            workloads:
              - name: greet
                process: { module: control:identity, params: { text: "hello {{ who }}" } }
            """
        )
        app = create_app(path, variables={"who": "ada"}, timings=False)
        async with app.run_test(size=SIZE):
            await wait_until(lambda: finished(app))
            assert app.session.model.run_status == "Completed"
            assert '"text": "hello ada"' in details_text(app)

    async def test_failed_only_filter(self, ui_playbook: Any, wait_until: Any) -> None:
        app = create_app(ui_playbook("failing"), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: finished(app))
            dag = app.screen.query_one(DagView)
            await pilot.press("f")
            assert dag.failed_only
            assert dag.shown == ["flaky", "render_report", "check_numbers"]
            assert dag.selected == "flaky"  # fetch is hidden: the first failed one is selected
            await pilot.press("f")
            assert dag.shown == ["fetch", "flaky", "render_report", "check_numbers", "upload"]


class TestLogs:
    async def test_search_filters_and_escape_clears(
        self, ui_playbook: Any, wait_until: Any
    ) -> None:
        app = create_app(ui_playbook("failing"), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: finished(app))
            await pilot.press("j")  # flaky: stdout, stderr and a retry warning
            log = app.screen.query_one("#log-panel #log-lines", Log)
            await pilot.press("slash")
            assert app.screen.query_one(TabbedContent).active == "logs"
            assert app.focused is not None and app.focused.id == "log-search"
            assert len(log.lines) == 5
            await pilot.press(*"boom")
            await pilot.pause()
            assert list(log.lines) == [
                "┃ boom: disk full",
                "! attempt 1 failed: command exited with code 3: boom: disk full; retrying in 0.01s",
                "┃ boom: disk full",
            ]
            assert "filter “boom”: 3 matches" in text_of(
                app.screen.query_one("#log-panel #log-title", Static)
            )
            # typing in the search box never triggers the screen's single-key bindings
            assert not app.screen.query_one(DagView).failed_only
            await pilot.press("escape")
            await pilot.pause()
            assert len(log.lines) == 5
            assert not app.screen.query_one("#log-panel #log-search").display
            await pilot.press("escape")  # no search left: escape returns to the DAG
            assert isinstance(app.focused, DagView)

    async def test_logs_tail_live_while_running(self, ui_playbook: Any, wait_until: Any) -> None:
        app = create_app(ui_playbook("midrun"), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(
                lambda: (
                    app.session is not None
                    and app.session.model.workloads["build"].status == "Running"
                )
            )
            await pilot.press("right", "j", "2")  # level 1: build; logs tab
            dag = app.screen.query_one(DagView)
            assert dag.selected == "build"
            log = app.screen.query_one("#log-panel #log-lines", Log)
            await wait_until(lambda: len(log.lines) == 2, what="build's two lines")
            assert sorted(log.lines) == ["│ building 1.2.3", "┃ warning: cache cold"]
            # progress never lies: the header says Running while build runs
            assert "▶ Running" in header_text(app)
            assert "Completed" not in header_text(app)


class TestRunControl:
    async def test_quit_while_running_asks_cancels_and_leaves_no_process(
        self, ui_playbook: Any, wait_until: Any, tmp_path: Path
    ) -> None:
        report = tmp_path / "report.json"
        app = create_app(ui_playbook("midrun"), report=report, timings=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(
                lambda: (
                    app.session is not None
                    and app.session.model.workloads["build"].status == "Running"
                )
            )
            await wait_until(lambda: bool(hold_processes()), what="the sleep child")
            await pilot.press("q")
            assert isinstance(app.screen, ConfirmQuitScreen)
            await pilot.press("n")  # keep running
            assert isinstance(app.screen, RunScreen)
            assert app.session.running
            await pilot.press("q")
            assert isinstance(app.screen, ConfirmQuitScreen)
            await pilot.press("y")
            await wait_until(lambda: app.return_code is not None, what="the app to exit")
        assert app.return_code == 130
        assert hold_processes() == []
        data = json.loads(report.read_text())
        assert data["status"] == "Interrupted"
        assert data["workloads"]["build"]["status"] == "Failed"
        assert data["workloads"]["publish"]["status"] == "Skipped"

    async def test_app_exit_mid_run_still_cleans_up(
        self, ui_playbook: Any, wait_until: Any
    ) -> None:
        app = create_app(ui_playbook("midrun"), timings=False)
        async with app.run_test(size=SIZE):
            await wait_until(lambda: bool(hold_processes()), what="the sleep child")
            app.exit()
        assert hold_processes() == []
        assert app.session is not None and not app.session.running

    @pytest.mark.parametrize(("name", "code"), [("overview", 0), ("failing", 1)])
    async def test_quit_after_the_run_exits_with_its_code(
        self, ui_playbook: Any, wait_until: Any, name: str, code: int
    ) -> None:
        app = create_app(ui_playbook(name), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: finished(app))
            await pilot.press("q")  # no confirmation once the run ended
            await wait_until(lambda: app.return_code is not None)
        assert app.return_code == code

    async def test_rerun_starts_a_new_run_and_resets_the_view(
        self, ui_playbook: Any, wait_until: Any
    ) -> None:
        app = create_app(ui_playbook("overview"), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: finished(app))
            first = app.session
            await pilot.press("j")
            await pilot.press("r")
            assert app.session is not first
            assert app.screen.query_one(DagView).selected == "records"  # selection kept
            await wait_until(lambda: finished(app))
            assert app.session.model.run_status == "Completed"
            assert app.session.engine.run_id != first.engine.run_id

    async def test_rerun_is_refused_while_running(self, ui_playbook: Any, wait_until: Any) -> None:
        app = create_app(ui_playbook("midrun"), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.session is not None and app.session.running)
            first = app.session
            await pilot.press("r")
            assert app.session is first

    async def test_command_palette_runs_the_same_actions(
        self, ui_playbook: Any, wait_until: Any
    ) -> None:
        app = create_app(ui_playbook("failing"), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: finished(app))
            titles = [c.title for c in app.get_system_commands(app.screen)]
            for title in ("Re-run", "Failed only", "Search logs", "Details", "Quit"):
                assert title in titles
            assert titles.count("Quit") == 1
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*"Failed only")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await wait_until(
                lambda: (
                    isinstance(app.screen, RunScreen) and app.screen.query_one(DagView).failed_only
                )
            )


class TestErrors:
    async def test_invalid_playbook_shows_the_loader_error(
        self, ui_playbook: Any, wait_until: Any
    ) -> None:
        app = create_app(ui_playbook("invalid"), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, ErrorScreen)
            message = text_of(app.screen.query_one("#error-message", Static))
            assert "invalid.gxo.yaml:8:5: workload 'greet': unknown key 'retries'" in message
            await pilot.press("q")
            await wait_until(lambda: app.return_code is not None)
        assert app.return_code == 2

    async def test_reload_after_fixing_the_file(self, ui_playbook: Any, wait_until: Any) -> None:
        path = ui_playbook("invalid")
        app = create_app(path, timings=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, ErrorScreen)
            path.write_text(
                path.read_text().replace("    retries: 3\n", "").replace("{{ greeting }}", "hi")
            )
            await pilot.press("r")
            await wait_until(lambda: finished(app))
            assert isinstance(app.screen, RunScreen)
            assert app.session.model.run_status == "Completed"

    async def test_run_warnings_are_shown(self, write_playbook: Any, wait_until: Any) -> None:
        path = write_playbook(
            """
            schemaVersion: "1.0.0"
            name: badvars
            vars: { n: 0, ratio: "{{ 10 / n }}" }
            workloads:
              - name: a
                process: { module: control:identity, params: { r: "{{ ratio }}" } }
            """
        )
        app = create_app(path, timings=False)
        async with app.run_test(size=SIZE):
            await wait_until(lambda: finished(app))
            assert app.session.model.run_status == "Failed"
            assert app.session.model.workloads["a"].status == "Skipped"  # announced by the engine
            messages = [n.message for n in app._notifications]
            assert any("vars.ratio" in m and "division by zero" in m for m in messages)

    async def test_run_that_cannot_start_is_shown_not_raised(
        self, ui_playbook: Any, wait_until: Any, tmp_path: Path
    ) -> None:
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        app = create_app(ui_playbook("overview"), workspace=str(blocker / "sub"), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: isinstance(app.screen, ErrorScreen), what="the error screen")
            message = text_of(app.screen.query_one("#error-message", Static))
            assert "cannot create workspace" in message
            await pilot.press("q")
            await wait_until(lambda: app.return_code is not None)
        assert app.return_code == 1
