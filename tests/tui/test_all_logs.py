"""The all-workloads log view, regex search, follow, save; y copies (issue 18)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.widgets import Log, Static, TabbedContent

from gxo.tui.app import create_app
from gxo.tui.widgets import LogPanel
from gxo.tui.widgets.log_panel import search_pattern

SIZE = (110, 32)


def finished(app: Any) -> bool:
    return app.session is not None and app.session.model.finished and not app.session.running


def title(app: Any) -> str:
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    console.print(app.screen.query_one("#log-panel #log-title", Static).content)
    return console.export_text()


async def test_all_workloads_view_search_follow_and_save(ui_playbook: Any, wait_until: Any) -> None:
    app = create_app(ui_playbook("failing"), timings=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: finished(app))
        await pilot.press("w")
        assert app.screen.query_one(TabbedContent).active == "logs"
        panel = app.screen.query_one("#log-panel", LogPanel)
        log = panel.query_one("#log-lines", Log)
        await pilot.pause()
        model = app.session.model
        total = sum(len(lines) for lines in model.logs.values())
        assert panel.all_workloads and len(log.lines) == total
        assert "all workloads" in title(app)
        # interleaved in logging order, each with its time and workload
        pattern = re.compile(r"^. \d\d:\d\d:\d\d\.\d{3} (\S+)\s+(.*)$")
        parsed = [pattern.match(line) for line in log.lines]
        assert all(parsed), list(log.lines)
        names = {m.group(1) for m in parsed if m}
        assert names == {n for n, lines in model.logs.items() if lines} and "flaky" in names
        assert [line.seq for line in model.all_log_lines()] == sorted(
            line.seq for lines in model.logs.values() for line in lines
        )
        # a regex across workloads
        await pilot.press("slash", *"trying|disk", "enter")
        await pilot.pause()
        assert len(log.lines) == 5 and "regex “trying|disk”: 5 matches" in title(app)
        await pilot.press("n", "n")  # next match, twice
        assert panel.current == 1 and "at 2 of 5 (n/N)" in title(app)
        assert not panel.follow
        await pilot.press("N", "N")  # back, and around to the last
        assert panel.current == 4 and "at 5 of 5" in title(app)
        await pilot.press("F")  # follow again
        assert panel.follow
        # not a valid regex: searched literally, no error
        panel.query_one("#log-search").value = "item != ["
        await pilot.pause()
        assert "filter “item != [”" in title(app)
        panel.query_one("#log-search").value = "trying"
        await pilot.pause()
        await pilot.press("F")
        await pilot.pause()
        assert not panel.follow and "(not following: F)" in title(app)
        await pilot.press("ctrl+s")
        await wait_until(lambda: panel.saved is not None)
        saved = Path(panel.saved).read_text().splitlines()
        assert len(saved) == 3 and all("trying" in line for line in saved)  # retrying too
        await pilot.press("w")  # back to the selected workload's lines
        await pilot.pause()
        assert not panel.all_workloads and "fetch" in title(app)


async def test_y_copies_the_error_or_the_params(ui_playbook: Any, wait_until: Any) -> None:
    app = create_app(ui_playbook("failing"), timings=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: finished(app))
        await pilot.press("y")  # fetch: completed, its rendered params
        assert '"numbers": [' in app.clipboard
        await pilot.press("j", "y")  # flaky: its error
        assert "boom: disk full" in app.clipboard and "exited with code 3" in app.clipboard


def test_search_pattern() -> None:
    assert search_pattern("") == (None, False)
    pattern, regex = search_pattern("ERR|warn")
    assert regex and pattern is not None and pattern.search("a warning")
    pattern, regex = search_pattern("a[")
    assert not regex and pattern is not None and pattern.search("x A[ y")
