"""The data plane through the real ``gxo`` command: map → filter → aggregate → CSV + SQLite."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

PLAYBOOKS = Path(__file__).resolve().parents[1] / "playbooks"
PIPELINE = PLAYBOOKS / "dataplane_pipeline.gxo.yaml"


def test_pipeline_writes_csv_and_sqlite_and_counts_the_skipped_record(gxo, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    report_path = tmp_path / "report.json"
    proc = gxo("run", str(PIPELINE), "--workspace", str(ws), "--report", str(report_path))
    assert proc.returncode == 0, proc.stderr
    assert (
        ws / "out" / "teams.csv"
    ).read_text() == "team,total,players,best\nRED,90,2,50\nBLUE,100,2,70\n"
    with closing(sqlite3.connect(ws / "teams.db")) as conn:
        assert conn.execute(
            "SELECT team, total, players, best FROM teams ORDER BY team"
        ).fetchall() == [
            ("BLUE", 100, 2, 70),
            ("RED", 90, 2, 50),
        ]
    report = json.loads(report_path.read_text())
    assert report["status"] == "Completed"
    w = report["workloads"]
    assert w["shaped"]["counters"] == {"skipped": 1}
    assert (w["shaped"]["records_in"], w["shaped"]["records_out"]) == (7, 6)
    assert (w["qualified"]["records_in"], w["qualified"]["records_out"]) == (6, 4)
    assert w["per_team"]["summary"]["groups_emitted"] == 2
    assert w["to_csv"]["summary"]["path"] == str(ws / "out" / "teams.csv")
    assert w["insert"]["summary"] == {"rows_affected": 2}
    assert w["read_back"]["summary"]["rowcount"] == 2


def test_bad_record_policy_fail_names_the_record_in_the_run_output(gxo, tmp_path: Path) -> None:
    text = PIPELINE.read_text().replace("on_error: skip", "on_error: fail")
    playbook = tmp_path / "strict.gxo.yaml"
    playbook.write_text(text)
    proc = gxo("run", str(playbook), "--workspace", "temp")
    assert proc.returncode == 1
    assert 'bad record #6 {"player": "fay", "team": "red"}' in proc.stderr
    assert "undefined name 'score'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_validate_rejects_bad_data_plane_params_with_file_and_line(gxo, tmp_path: Path) -> None:
    text = PIPELINE.read_text().replace(
        "{ name: players, op: count }", "{ name: players, op: median }"
    )
    playbook = tmp_path / "bad.gxo.yaml"
    playbook.write_text(text)
    proc = gxo("validate", str(playbook))
    assert proc.returncode == 2
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "op: median" in row)
    assert f"bad.gxo.yaml:{line}:" in proc.stderr
    assert "workload 'per_team'" in proc.stderr
    assert "Input should be 'count', 'sum', 'avg', 'min', 'max' or 'collect'" in proc.stderr


def test_modules_command_documents_the_data_plane(gxo) -> None:
    for name in (
        "data:parse",
        "data:map",
        "data:filter",
        "data:aggregate",
        "data:format",
        "database:query",
    ):
        proc = gxo("modules", name)
        assert proc.returncode == 0, proc.stderr
        assert "Example:" in proc.stdout and f"module: {name}" in proc.stdout
        if name.startswith("data:"):
            assert "on_error" in proc.stdout


def test_example_api_to_csv_and_sqlite_passes_its_gxo_test(gxo) -> None:
    example = (
        Path(__file__).resolve().parents[2] / "examples" / "api_to_csv_and_sqlite.test.gxo.yaml"
    )
    proc = gxo("test", str(example), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--- PASS: api-to-csv-and-sqlite-test" in proc.stdout
    assert "1 passed, 0 failed" in proc.stdout
