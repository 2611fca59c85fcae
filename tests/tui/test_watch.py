"""``gxo ui --watch``: a save of the playbook or of a file it reads runs it again (issue 18)."""

from __future__ import annotations

import io
import textwrap
import time
from pathlib import Path
from typing import Any

import watchfiles
from rich.console import Console
from textual.widgets import Static

from gxo.tui.app import create_app
from gxo.tui.screens import ErrorScreen, RunScreen
from gxo.tui.watch import PlaybookWatch

SIZE = (100, 32)

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: watched
workloads:
  - name: show
    process: { module: exec, params: { command: cat, args: [input.txt] } }
    register: shown
  - name: write_own_output
    process: { module: exec, params: { command: sh, args: [-c, "date +%N > out.txt"] } }
  - name: reads_output
    depends_on: [write_own_output]
    process: { module: exec, params: { command: cat, args: [out.txt] } }
"""


def finished(app: Any) -> bool:
    """The run ended and the app saw it end: a save from now on is the user's."""
    return app.session is not None and app.session.model.finished and not app.session.running


async def settled(app: Any, pilot: Any, wait_until: Any) -> None:
    await wait_until(lambda: finished(app), what="the run to end")
    await pilot.pause(0.1)  # writes within 50 ms of a run's end count as the run's own


def stdout_of(app: Any, name: str) -> str:
    summary = app.session.engine.states[name].summary or {}
    return str(summary.get("stdout", ""))


async def test_saving_a_read_file_or_the_playbook_runs_again(
    tmp_path: Path, monkeypatch: Any, wait_until: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "input.txt").write_text("first\n")
    (tmp_path / "out.txt").write_text("0\n")
    path = tmp_path / "watched.gxo.yaml"
    path.write_text(PLAYBOOK)
    app = create_app(path, timings=False, watch=True, watch_debounce_ms=150)
    async with app.run_test(size=SIZE) as pilot:
        await settled(app, pilot, wait_until)
        assert stdout_of(app, "show") == "first"
        assert app.reruns_on_change == 0  # its own out.txt write did not trigger a run
        # an editor's probe and backup are not changes; the saved data file is
        (tmp_path / "4913").write_text("")
        (tmp_path / "4913").unlink()
        (tmp_path / "input.txt~").write_text("first\n")
        (tmp_path / "input.txt").write_text("second\n")
        await wait_until(lambda: app.reruns_on_change >= 1 and finished(app), what="a re-run")
        assert app.reruns_on_change == 1
        assert stdout_of(app, "show") == "second"
        await pilot.pause(0.5)
        assert app.reruns_on_change == 1  # and no loop on the run's own writes
        # a save that breaks the playbook shows the loader's error; fixing it runs again
        path.write_text(PLAYBOOK.replace("register: shown", "registr: shown"))
        await wait_until(lambda: isinstance(app.screen, ErrorScreen), what="the error screen")
        assert "registr" in _text(app.screen.query_one("#error-message", Static))
        path.write_text(PLAYBOOK)
        await wait_until(
            lambda: isinstance(app.screen, RunScreen) and app.reruns_on_change == 3,
            what="the fixed playbook's run",
        )
        await wait_until(lambda: finished(app))
        assert app.session.model.run_status == "Completed"
        await pilot.press("q")


async def test_a_change_during_a_run_cancels_it_and_starts_over(
    tmp_path: Path, monkeypatch: Any, wait_until: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "slow.gxo.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            schemaVersion: "1.0.0"
            name: slow
            workloads:
              - name: nap
                process: { module: exec, params: { command: sleep, args: ["30"] } }
            """
        )
    )
    app = create_app(path, timings=False, watch=True, watch_debounce_ms=150)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: app.session is not None and app.session.running)
        first = app.session
        path.write_text(path.read_text().replace('"30"', '"0"'))
        await wait_until(lambda: app.session is not first and finished(app), what="the new run")
        assert first.model.run_status == "Interrupted"
        assert app.session.model.run_status == "Completed"
        await pilot.press("q")


def test_relevant_keeps_the_playbook_and_what_it_reads(tmp_path: Path) -> None:
    (tmp_path / "input.txt").write_text("x")
    (tmp_path / "out.txt").write_text("x")
    (tmp_path / "unrelated.txt").write_text("x")
    path = tmp_path / "watched.gxo.yaml"
    path.write_text(PLAYBOOK)
    watch = PlaybookWatch(path)
    time.sleep(0.06)  # the files above are older than the run below (and its 50 ms slack)
    assert watch.roots() == [tmp_path.resolve()]
    changed = {
        (watchfiles.Change.modified, str(tmp_path / name))
        for name in ("input.txt", "unrelated.txt", "sedAb12Cd", "4913", "watched.gxo.yaml")
    }
    assert watch.relevant(changed) == [
        (tmp_path / n).resolve() for n in ("input.txt", "watched.gxo.yaml")
    ]
    watch.run_started()
    (tmp_path / "out.txt").write_text("written by the run")
    watch.run_ended()
    assert watch.relevant([(watchfiles.Change.modified, str(tmp_path / "out.txt"))]) == []
    assert watch.relevant([(watchfiles.Change.deleted, str(tmp_path / "input.txt"))]) == [
        (tmp_path / "input.txt").resolve()
    ]


def _text(widget: Static) -> str:
    console = Console(width=100, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()
