"""Issue 18 regressions of the workbench: re-run, details clock, loop iterations."""

from __future__ import annotations

import io
import re
from typing import Any

from rich.console import Console
from textual.widgets import Log, Static

from gxo.tui.app import create_app
from gxo.tui.screens import ErrorScreen, RunScreen
from gxo.tui.widgets import DagView

SIZE = (100, 32)


def text_of(widget: Any, width: int = 100) -> str:
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


def details_text(app: Any, width: int = 100) -> str:
    return text_of(app.screen.query_one("#details-body", Static), width)


def finished(app: Any) -> bool:
    return app.session is not None and app.session.model.finished


async def test_logs_refill_after_rerun_without_reselecting(
    ui_playbook: Any, wait_until: Any
) -> None:
    app = create_app(ui_playbook("failing"), timings=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: finished(app))
        await pilot.press("j", "2")  # flaky, Logs tab
        log = app.screen.query_one("#log-panel #log-lines", Log)
        await wait_until(lambda: len(log.lines) == 5, what="flaky's 5 lines")
        first = app.session
        await pilot.press("r")
        await wait_until(lambda: app.session is not first and finished(app))
        # the new run numbers its lines from 1 again: they must still be shown
        await wait_until(lambda: len(log.lines) == 5, what="the re-run's lines", timeout=5)
        assert log.lines[0] == "│ trying"


async def test_rerun_reads_the_file_again(ui_playbook: Any, wait_until: Any) -> None:
    path = ui_playbook("overview")
    app = create_app(path, timings=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: finished(app))
        assert "threshold" in details_text(app)  # settings
        path.write_text(path.read_text().replace("threshold: 2", "threshold: 2, edited: yes"))
        await pilot.press("r")
        await wait_until(lambda: finished(app) and "edited" in details_text(app))
        # an edit that breaks the playbook shows the loader's error, not the old run
        path.write_text(path.read_text().replace("    register: cfg\n", "    registr: cfg\n"))
        await pilot.press("r")
        await wait_until(lambda: isinstance(app.screen, ErrorScreen))
        message = text_of(app.screen.query_one("#error-message"))
        assert "unknown key 'registr'" in message
        # fixed again: r on the error screen reloads and runs
        path.write_text(path.read_text().replace("registr: cfg", "register: cfg"))
        await pilot.press("r")
        await wait_until(lambda: isinstance(app.screen, RunScreen) and finished(app))
        assert app.session.model.run_status == "Completed"


async def test_details_clock_keeps_up_with_the_dag(ui_playbook: Any, wait_until: Any) -> None:
    app = create_app(ui_playbook("midrun"), timings=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(
            lambda: (
                app.session is not None and app.session.model.workloads["build"].status == "Running"
            )
        )
        await pilot.press("right", "j")  # build
        assert app.screen.query_one(DagView).selected == "build"
        seen = set()
        for _ in range(6):
            await pilot.pause(0.25)
            match = re.search(
                r"Running\s+(?:attempt \d+\s+)?(\d+(?:\.\d)?)(ms|s)", details_text(app)
            )
            assert match is not None, details_text(app)
            shown = float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)
            live = app.session.model.live_duration("build") / 1000
            assert live - shown < 0.35, (shown, live)  # at most ~one tick behind, not a second
            seen.add(match.group(0))
        assert len(seen) >= 4  # it moves with the tenths, like the DAG
        await app.session.cancel()


async def test_loop_details_show_item_time_and_each_iterations_params(
    ui_playbook: Any, wait_until: Any
) -> None:
    app = create_app(ui_playbook("failing"), timings=True)
    async with app.run_test(size=(140, 48)) as pilot:
        await wait_until(lambda: finished(app))
        await pilot.press("right", "j")  # check_numbers
        text = details_text(app)
        # the engine records each iteration's item and own params: no "latest" copy
        assert "Params of iteration 1 (2)" in text
        assert "latest iteration" not in text
        # records with known items, times and params (the engine's are real timings)
        state = app.session.engine.states["check_numbers"]
        for i, record in enumerate(state.iterations):
            record.update(item=i + 1, duration_ms=12.0 * (i + 1), params={"n": i + 1})
        panel = app.screen.query_one("DetailsPanel")
        panel._key = None  # records changed in place: redraw now
        panel.show(app.session, "check_numbers")
        await pilot.pause()
        text = details_text(app, width=140)
        header = next(line for line in text.splitlines() if line.strip().startswith("#"))
        assert header.split() == ["#", "item", "status", "tries", "time", "error"]
        assert re.search(r"1\s+2\s+✘ Failed\s+1\s+24ms\s+assertion failed", text), text
        # failed iteration's params first
        assert text.index("Params of iteration 1 (2)") < text.index("Params of iteration 0 (1)")
        assert "latest iteration" not in text


def test_gxo_ui_without_a_terminal_exits_2_and_writes_no_escape_codes(ui_playbook: Any) -> None:
    import subprocess
    import sys

    path = ui_playbook("overview")
    proc = subprocess.run(
        [sys.executable, "-m", "gxo.cli", "ui", str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""  # nothing drawn into the pipe
    assert "\x1b" not in proc.stderr
    assert "gxo ui needs a terminal, but stdin and stdout are not one" in proc.stderr
    assert "gxo run" in proc.stderr


def test_require_terminal_names_what_is_missing() -> None:
    from gxo.tui import require_terminal

    class Tty:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    class Closed:
        def isatty(self) -> bool:
            raise ValueError("I/O operation on closed file")

    assert require_terminal(Tty(True), Tty(True)) is None
    assert "but stdout is not one" in (require_terminal(Tty(True), Tty(False)) or "")
    assert "but stdin is not one" in (require_terminal(Closed(), Tty(True)) or "")
