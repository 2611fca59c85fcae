"""Run history (.gxo/runs/, --keep-runs) and ``gxo ui --replay`` (issue 18)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.widgets import Log, Static
from typer.testing import CliRunner

from gxo.cli import app as cli
from gxo.errors import UsageError
from gxo.tui.app import create_app
from gxo.tui.history import find_run, load_replay
from gxo.tui.widgets import DagView

SIZE = (100, 32)


def finished(app: Any) -> bool:
    return app.session is not None and app.session.model.finished and not app.session.running


def text_of(widget: Static) -> str:
    console = Console(width=100, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


def test_gxo_run_keep_runs_keeps_the_newest_n(ui_playbook: Any) -> None:
    path = ui_playbook("failing")
    assert not Path(".gxo").exists()  # off by default for gxo run
    CliRunner().invoke(cli, ["run", str(path), "-q"])
    assert not Path(".gxo").exists()
    ids = []
    for _ in range(3):
        result = CliRunner().invoke(cli, ["run", str(path), "-q", "--keep-runs", "2"])
        assert result.exit_code == 1, result.output
    runs = sorted(Path(".gxo/runs").iterdir())
    assert len(runs) == 2
    for folder in runs:
        report = json.loads((folder / "report.json").read_text())
        assert folder.name.endswith("-" + report["run_id"])
        ids.append(report["run_id"])
        assert report["workloads"]["flaky"]["status"] == "Failed"
        meta = json.loads((folder / "meta.json").read_text())
        assert meta == {
            "playbook": str(path.resolve()),
            "run_id": report["run_id"],
            "status": "Failed",
        }
        lines = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
        flaky = [r["line"] for r in lines if r["workload"] == "flaky"]
        assert flaky[0] == "trying" and "boom: disk full" in flaky
    assert find_run(ids[0][:6]) == (runs[0] / "report.json").resolve()


async def test_ui_keeps_its_runs_and_replays_one(ui_playbook: Any, wait_until: Any) -> None:
    path = ui_playbook("failing")
    app = create_app(path, timings=False, keep_runs=5)
    async with app.run_test(size=SIZE):
        await wait_until(lambda: finished(app) and app.kept is not None)
    run_id = app.session.engine.run_id
    assert app.kept is not None and app.kept.name.endswith(run_id)

    playbook, report, logs = load_replay(run_id, None)
    assert playbook == path.resolve()
    replay = create_app(playbook, timings=False, replay=(report, logs))
    async with replay.run_test(size=SIZE) as pilot:
        await pilot.pause()
        model = replay.session.model
        assert model.run_status == "Failed" and model.run_id == run_id
        assert {n: v.status for n, v in model.workloads.items()} == {
            "fetch": "Completed",
            "flaky": "Failed",
            "render_report": "Failed",
            "check_numbers": "Failed",
            "upload": "Skipped",
        }
        await pilot.press("j")  # flaky: its error in the details, its lines in the logs
        assert replay.screen.query_one(DagView).selected == "flaky"
        assert "boom: disk full" in text_of(replay.screen.query_one("#details-body", Static))
        await pilot.press("2")
        log = replay.screen.query_one("#log-panel #log-lines", Log)
        await wait_until(lambda: len(log.lines) == 5)
        assert log.lines[0] == "│ trying"
        await pilot.press("R")  # a replay is not a run to continue from
        assert replay.session.model.run_id == run_id
        await pilot.press("r")  # runs the playbook for real
        await wait_until(lambda: finished(replay) and replay.session.engine.run_id != run_id)
        await pilot.press("q")
    assert replay.return_code == 1


def test_find_run_errors_name_the_choices(tmp_path: Path) -> None:
    with pytest.raises(
        UsageError, match=r"no such report file or run id \(runs in .*: none kept yet\)"
    ):
        find_run("abc123")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(UsageError, match="is not a gxo run report"):
        load_replay(str(bad), None)
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"run_id": "x", "workloads": {}}))
    with pytest.raises(UsageError, match="which playbook"):
        load_replay(str(report), None)
