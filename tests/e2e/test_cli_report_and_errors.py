"""Bad input through the real ``gxo`` command: located errors and exit 2, never a
traceback; ``--report`` writes through symlinks, to stdout with ``-``, and refuses
places it cannot write before the run starts."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

OK = """\
schemaVersion: "1.0.0"
name: ok
workloads:
  - name: a
    process: { module: control:identity, params: { v: 1 } }
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr


# -- unknown filters and tests --------------------------------------------------


UNKNOWN_FILTER = """\
schemaVersion: "1.0.0"
name: bad
vars: { x: 1 }
workloads:
  - name: shout
    process: { module: control:identity, params: { v: "{{ 1 | uppr }}" } }
  - name: odd
    when: "x is frobbed"
    process: { module: control:identity, params: { v: 1 } }
"""


@pytest.mark.parametrize("command", ["run", "validate"])
def test_unknown_filter_or_test_is_exit_2_with_location(gxo, tmp_path: Path, command) -> None:
    playbook = write(tmp_path / "bad.gxo.yaml", UNKNOWN_FILTER)
    proc = gxo(command, playbook.name, cwd=tmp_path)
    no_traceback(proc)
    assert proc.returncode == 2, proc.stderr
    assert (
        "bad.gxo.yaml:6:52: workload 'shout': unknown filter 'uppr' (did you mean 'upper'?)"
        in proc.stderr
    )
    assert "bad.gxo.yaml:8:5: workload 'odd': unknown test 'frobbed'" in proc.stderr


async def test_gxo_ui_shows_the_unknown_filter_as_an_invalid_playbook(tmp_path: Path) -> None:
    from textual.widgets import Static

    from gxo.tui.app import create_app
    from gxo.tui.screens import ErrorScreen

    app = create_app(write(tmp_path / "bad.gxo.yaml", UNKNOWN_FILTER), timings=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ErrorScreen)
        message = str(app.screen.query_one("#error-message", Static).content)
        assert "unknown filter 'uppr' (did you mean 'upper'?)" in message
        await pilot.press("q")
    assert app.return_code == 2


def test_gxo_test_fails_the_bad_file_and_runs_the_others(gxo, tmp_path: Path) -> None:
    write(tmp_path / "a_bad.test.gxo.yaml", UNKNOWN_FILTER)
    write(tmp_path / "b_ok.test.gxo.yaml", OK)
    proc = gxo("test", str(tmp_path), cwd=tmp_path)
    no_traceback(proc)
    assert proc.returncode == 1
    assert "--- FAIL: a_bad" in proc.stdout
    assert "unknown filter 'uppr' (did you mean 'upper'?)" in proc.stdout
    assert "--- PASS: ok" in proc.stdout
    assert "1 passed, 1 failed" in proc.stdout


# -- validate: all problems, gxo_test, templated SQL -----------------------------


def test_validate_reports_all_four_problems_in_one_pass(gxo, tmp_path: Path) -> None:
    playbook = write(
        tmp_path / "four.gxo.yaml",
        """\
        schemaVersion: "1.0.0"
        name: four
        workloads:
          - name: A
            bogus_key: 1
            process: { module: control:identity, params: { v: 1 } }
          - name: B
            process: { module: exec, params: { command: echo, colour: red } }
          - name: C
            timeout: 10 parsecs
            process: { module: control:identity, params: { v: 1 } }
          - name: D
            process: { module: control:identity, params: { v: "{{ ghost }}" } }
        """,
    )
    proc = gxo("validate", playbook.name, cwd=tmp_path)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 4, proc.stderr
    for workload, what in [
        ("A", "unknown key 'bogus_key'"),
        ("B", "unknown key 'colour'"),
        ("C", "invalid duration '10 parsecs'"),
        ("D", "'ghost' is not defined"),
    ]:
        assert any(f"workload '{workload}': " in e and what in e for e in errors), (
            workload,
            errors,
        )


def test_validate_knows_gxo_test_in_test_files_only(gxo, tmp_path: Path) -> None:
    text = """\
    schemaVersion: "1.0.0"
    name: t
    workloads:
      - name: a
        process: { module: control:identity, params: { v: "{{ gxo_test.dir }}" } }
    """
    test_file = write(tmp_path / "x.test.gxo.yaml", text)
    plain = write(tmp_path / "x.gxo.yaml", text)
    proc = gxo("validate", str(test_file), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = gxo("validate", str(plain), cwd=tmp_path)
    assert proc.returncode == 2
    assert "'gxo_test' is not defined" in proc.stderr


def test_validate_warns_about_a_template_in_a_sql_query(gxo, tmp_path: Path) -> None:
    playbook = write(
        tmp_path / "sql.gxo.yaml",
        """\
        schemaVersion: "1.0.0"
        name: sql
        vars: { who: ada }
        workloads:
          - name: lookup
            process:
              module: database:query
              params:
                url: "sqlite:///app.db"
                query: "SELECT * FROM users WHERE name = '{{ who }}'"
        """,
    )
    proc = gxo("validate", playbook.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "warning: sql.gxo.yaml:10:" in proc.stderr
    assert "workload 'lookup': database:query 'query' contains a template" in proc.stderr


# -- a run-time failure names the template's line --------------------------------


def test_run_failure_names_file_and_line_of_the_failing_template(gxo, tmp_path: Path) -> None:
    playbook = write(
        tmp_path / "rt.gxo.yaml",
        """\
        schemaVersion: "1.0.0"
        name: rt
        vars: { d: {} }
        workloads:
          - name: first
            process: { module: control:identity, params: { v: 1 } }
          - name: broken
            process:
              module: control:identity
              params:
                v: "{{ d.missing.x }}"
          - name: gated
            when: "d.nope.x"
            process: { module: control:identity, params: { v: 1 } }
        """,
    )
    proc = gxo("run", playbook.name, cwd=tmp_path)
    assert proc.returncode == 1
    assert "rt.gxo.yaml:11:" in proc.stderr and "undefined name 'missing'" in proc.stderr
    assert "rt.gxo.yaml:13:5: " in proc.stderr and "undefined name 'nope'" in proc.stderr


# -- --report ------------------------------------------------------------------------


def test_report_writes_through_a_symlink(gxo, tmp_path: Path) -> None:
    playbook = write(tmp_path / "ok.gxo.yaml", OK)
    real = tmp_path / "reports" / "real.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    proc = gxo("run", str(playbook), "--report", str(link), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert json.loads(real.read_text())["status"] == "Completed"


def test_report_dash_writes_json_to_stdout_and_progress_to_stderr(gxo, tmp_path: Path) -> None:
    playbook = write(tmp_path / "ok.gxo.yaml", OK)
    proc = gxo("run", str(playbook), "--report", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["workloads"]["a"]["status"] == "Completed"
    assert "Completed ok" in proc.stderr


def test_report_to_a_link_to_stdout_feeds_stdout_and_keeps_the_link(tmp_path: Path) -> None:
    # /dev/stdout is such a link; a private one keeps a regression away from the machine's.
    playbook = write(tmp_path / "ok.gxo.yaml", OK)
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    proc = subprocess.run(
        [sys.executable, "-m", "gxo.cli", "run", str(playbook), "--report", str(link)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "Completed"
    assert link.is_symlink() and os.readlink(link) == "/proc/self/fd/1"


def test_report_to_a_fifo_is_written_through_it(tmp_path: Path) -> None:
    playbook = write(tmp_path / "ok.gxo.yaml", OK)
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gxo.cli", "run", str(playbook), "--report", str(fifo)],
        stderr=subprocess.PIPE,
        text=True,
    )
    with open(fifo, encoding="utf-8") as reader:
        data = reader.read()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert json.loads(data)["status"] == "Completed"
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("dir", "is a directory"),
        ("/proc/version", "kernel pseudo-file"),
        ("under_a_file", "a parent of it is a file"),
    ],
)
def test_unwritable_report_path_is_exit_2_before_the_run(
    gxo, tmp_path: Path, where: str, expected: str
) -> None:
    marker = tmp_path / "ran"
    playbook = write(
        tmp_path / "p.gxo.yaml",
        f"""\
        schemaVersion: "1.0.0"
        name: p
        workloads:
          - name: touch
            process: {{ module: filesystem:write, params: {{ path: "{marker}", content: x }} }}
        """,
    )
    (tmp_path / "dir").mkdir()
    (tmp_path / "a_file").write_text("")
    target = {
        "dir": str(tmp_path / "dir"),
        "under_a_file": str(tmp_path / "a_file" / "r.json"),
    }.get(where, where)
    proc = gxo("run", str(playbook), "--report", target, cwd=tmp_path)
    no_traceback(proc)
    assert proc.returncode == 2
    assert expected in proc.stderr
    assert not marker.exists()  # refused before anything ran


def test_leftover_temp_files_of_a_killed_write_are_removed(gxo, tmp_path: Path) -> None:
    playbook = write(tmp_path / "ok.gxo.yaml", OK)
    target = tmp_path / "r.json"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = tmp_path / f".r.json.{dead.stdout.strip()}.abc123.gxo-tmp"
    stale.write_text("{half")
    alive = tmp_path / f".r.json.{os.getpid()}.def456.gxo-tmp"  # a live writer's: kept
    alive.write_text("{")
    other = tmp_path / ".other.json.1.x.gxo-tmp"  # another target's: not ours to remove
    other.write_text("")
    proc = gxo("run", str(playbook), "--report", str(target), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(target.read_text())["status"] == "Completed"
    assert not stale.exists()
    assert alive.exists() and other.exists()
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode


def test_gxo_test_and_gxo_run_name_the_same_template_line(gxo, tmp_path: Path) -> None:
    text = """\
    schemaVersion: "1.0.0"
    name: rt
    vars: { d: {} }
    workloads:
      - name: broken
        process:
          module: control:identity
          params:
            v: "{{ d.missing.x }}"
    """
    write(tmp_path / "rt.test.gxo.yaml", text)
    tested = gxo("test", "rt.test.gxo.yaml", cwd=tmp_path)
    ran = gxo("run", "rt.test.gxo.yaml", cwd=tmp_path)
    assert tested.returncode == ran.returncode == 1
    assert "rt.test.gxo.yaml:9:9: workload 'broken' (control:identity) failed" in tested.stdout
    assert "rt.test.gxo.yaml:9:9: param 'v': undefined name 'missing'" in ran.stderr
