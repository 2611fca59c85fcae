"""What a headless run must not hide on stderr: lost records, ignored failures, and
(under ``-q``) which workload failed."""

from __future__ import annotations

import json
from pathlib import Path

DROPPING = """
schemaVersion: "1.0.0"
name: dropping
channel_policy: { buffer_size: 2, overflow_strategy: drop_new }
workloads:
  - name: fast
    process: { module: data:generate_from_list, params: { items: [1, 2, 3, 4, 5, 6, 7, 8] } }
  - name: slow
    stream_inputs: [fast]
    process: { module: control:barrier }
"""

IGNORED = """
schemaVersion: "1.0.0"
name: ignored
workloads:
  - name: flaky
    ignore_errors: true
    process: { module: control:assert, params: { condition: "false", fail_message: flaky broke } }
  - name: after
    depends_on: [flaky]
    process: { module: control:identity, params: { ok: true } }
"""

FAILING = """
schemaVersion: "1.0.0"
name: failing
workloads:
  - name: fine
    process: { module: control:identity, params: { ok: true } }
  - name: boom
    process: { module: control:assert, params: { condition: "false", fail_message: it broke } }
"""


def test_dropped_records_are_counted_on_stderr_without_verbose_and_under_quiet(
    gxo, write_playbook
) -> None:
    path = write_playbook(DROPPING)
    for flags in ([], ["-q"]):
        proc = gxo("run", str(path), *flags)
        assert proc.returncode == 0, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if "dropped" in ln]
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("✔ fast Completed") and "dropped 6 records" in lines[0]
        assert "overflow_strategy" in lines[0]


def test_no_drop_note_when_nothing_was_dropped(gxo, write_playbook) -> None:
    path = write_playbook(DROPPING.replace("drop_new", "block"))
    proc = gxo("run", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "dropped" not in proc.stderr


def test_ignored_failure_is_marked_on_stderr_and_in_the_report(
    gxo, write_playbook, tmp_path: Path
) -> None:
    path = write_playbook(IGNORED)
    report = tmp_path / "report.json"
    proc = gxo("run", str(path), "--report", str(report))
    assert proc.returncode == 0, proc.stderr
    assert "✘ flaky Failed (ignored: ignore_errors)" in proc.stderr
    assert "flaky broke" in proc.stderr
    assert "Completed ignored (run " in proc.stderr and "1 failed (1 ignored)" in proc.stderr
    w = json.loads(report.read_text())["workloads"]
    assert w["flaky"]["status"] == "Failed" and w["flaky"]["ignored"] is True
    assert "ignored" not in w["after"]
    # -q: an ignored failure does not fail the run, so it is not a line of its own.
    quiet = gxo("run", str(path), "-q")
    assert quiet.returncode == 0
    assert "flaky" not in quiet.stderr and "1 failed (1 ignored)" in quiet.stderr


def test_a_real_failure_is_not_marked_ignored(gxo, write_playbook, tmp_path: Path) -> None:
    path = write_playbook(FAILING)
    report = tmp_path / "report.json"
    proc = gxo("run", str(path), "--report", str(report))
    assert proc.returncode == 1
    assert "ignored" not in proc.stderr
    assert "ignored" not in json.loads(report.read_text())["workloads"]["boom"]


def test_quiet_still_names_the_failed_workload_and_its_error(gxo, write_playbook) -> None:
    path = write_playbook(FAILING)
    proc = gxo("run", str(path), "-q")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert any(ln.startswith("✘ boom Failed") for ln in lines), proc.stderr
    assert "it broke" in proc.stderr
    assert "fine" not in proc.stderr  # completed workloads stay quiet
    assert lines[-1].startswith("Failed failing (run ")
