"""Issue 18 workbench keys: ? help, R failed only, s run from here, e $EDITOR."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.widgets import Static

from gxo.tui.app import create_app
from gxo.tui.screens import HelpScreen, RunScreen
from gxo.tui.widgets import DagView

SIZE = (100, 32)

# a -> b (fails unless the file ok exists) -> c; d is independent
PLAYBOOK = """\
schemaVersion: "1.0.0"
name: partial
workloads:
  - name: a
    process: { module: exec, params: { command: sh, args: [-c, "date +%N"] } }
    register: a_out
  - name: b
    process:
      module: exec
      params: { command: sh, args: [-c, "test -e ok && echo {{ a_out.stdout }}"] }
    register: b_out
  - name: c
    process: { module: control:identity, params: { got: "{{ b_out.stdout }}" } }
  - name: d
    process: { module: exec, params: { command: sh, args: [-c, "date +%N"] } }
"""


def finished(app: Any) -> bool:
    return app.session is not None and app.session.model.finished and not app.session.running


def status(app: Any, name: str) -> str:
    return app.session.engine.states[name].status.value


def text_of(widget: Static) -> str:
    console = Console(width=120, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


async def test_help_overlay_lists_every_key(ui_playbook: Any, wait_until: Any) -> None:
    app = create_app(ui_playbook("failing"), timings=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: finished(app))
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = text_of(app.screen.query_one("#help-keys", Static))
        for key, what in [
            ("r", "Run again"),
            ("R", "Re-run what did not complete"),
            ("s", "Run the selected workload and its dependents"),
            ("e", "$EDITOR"),
            ("1", "Details tab"),
            ("4", "Resume tab"),
            ("esc", "Back to the DAG"),
            ("?", "This list of keys"),
            ("→ l", "Next level"),
            ("ctrl+p", "Command palette"),
        ]:
            assert any(
                line.strip().startswith(key) and what in line for line in text.splitlines()
            ), (key, what, text)
        await pilot.press("question_mark")
        assert isinstance(app.screen, RunScreen)


async def test_rerun_failed_keeps_what_completed(
    write_playbook: Any, tmp_path: Path, wait_until: Any
) -> None:
    path = write_playbook(PLAYBOOK)
    app = create_app(path, timings=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: finished(app))
        first = app.session
        assert [status(app, n) for n in "abcd"] == ["Completed", "Failed", "Skipped", "Completed"]
        a_out = first.engine.states["a"].summary["stdout"]
        d_out = first.engine.states["d"].summary["stdout"]
        (tmp_path / "ok").write_text("")
        await pilot.press("R")
        await wait_until(lambda: app.session is not first and finished(app))
        assert [status(app, n) for n in "abcd"] == ["Completed"] * 4
        assert app.session.only == {"b", "c"}
        # a and d did not run again: b read a's result from the first run
        assert app.session.engine.states["d"].summary["stdout"] == d_out
        assert app.session.engine.states["b"].summary["stdout"] == a_out
        assert app.session.model.workloads["a"].status == "Completed"  # shown as kept
        await pilot.press("R")  # nothing left to re-run
        await pilot.pause()
        assert app.session.engine.states["d"].summary["stdout"] == d_out


async def test_run_from_selected_runs_it_and_its_dependents(
    write_playbook: Any, tmp_path: Path, wait_until: Any
) -> None:
    (tmp_path / "ok").write_text("")
    path = write_playbook(PLAYBOOK)
    app = create_app(path, timings=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: finished(app))
        first = app.session
        dag = app.screen.query_one(DagView)
        dag.select("b")
        await pilot.press("s")
        await wait_until(lambda: app.session is not first and finished(app))
        assert app.session.only == {"b", "c"}
        assert [status(app, n) for n in "abcd"] == ["Completed"] * 4
        assert app.session.engine.states["d"] is first.engine.states["d"]  # kept, not re-run


async def test_s_and_R_are_refused_while_running(ui_playbook: Any, wait_until: Any) -> None:
    app = create_app(ui_playbook("midrun"), timings=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: app.session is not None and app.session.running)
        first = app.session
        await pilot.press("R", "s")
        assert app.session is first


async def test_e_opens_the_editor_at_the_workloads_line(
    ui_playbook: Any, tmp_path: Path, monkeypatch: Any, wait_until: Any
) -> None:
    record = tmp_path / "editor-args"
    editor = tmp_path / "fake-editor"
    editor.write_text(
        f'#!{sys.executable}\nimport sys\nopen({str(record)!r}, "w").write(" ".join(sys.argv[1:]))\n'
    )
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    app = create_app(ui_playbook("failing"), timings=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: finished(app))
        await pilot.press("j")  # flaky, written at line 30
        await pilot.press("e")
        await wait_until(lambda: record.exists())
    assert record.read_text() == "+30 failing.gxo.yaml"


async def test_e_without_an_editor_says_how(
    ui_playbook: Any, monkeypatch: Any, wait_until: Any
) -> None:
    monkeypatch.delenv("EDITOR", raising=False)
    monkeypatch.delenv("VISUAL", raising=False)
    app = create_app(ui_playbook("failing"), timings=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: finished(app))
        await pilot.press("e")
        await pilot.pause()
        assert any("Set $EDITOR" in str(n.message) for n in app._notifications)
