"""`gxo run` / `validate` / `schema` / `modules` as a user runs them: a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import EXAMPLES, PLAYBOOKS


def test_quickstart_example_runs(gxo) -> None:
    proc = gxo("run", str(EXAMPLES / "quickstart.gxo.yaml"))
    assert proc.returncode == 0, proc.stderr
    assert "Completed quickstart" in proc.stderr
    assert proc.stdout == ""  # progress goes to stderr


def test_kernel_features_report_shape(gxo, tmp_path: Path) -> None:
    report = tmp_path / "out" / "report.json"
    proc = gxo(
        "run",
        str(PLAYBOOKS / "kernel_features.gxo.yaml"),
        "-e",
        "target=gxo",
        "--report",
        str(report),
        "-v",
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(report.read_text())
    assert set(data) >= {"playbook", "run_id", "status", "started_at", "duration_ms", "workloads"}
    assert data["status"] == "Completed"
    assert data["started_at"].endswith("Z")
    for entry in data["workloads"].values():
        assert set(entry) >= {
            "status",
            "attempts",
            "duration_ms",
            "error",
            "summary",
            "records_in",
            "records_out",
        }
    w = data["workloads"]
    assert w["greet"]["summary"]["stdout"] == "hello gxo"
    assert w["numbers"]["records_out"] == 5
    assert w["fan_a"]["records_in"] == 5 and w["fan_a"]["records_out"] == 5
    assert w["merged"]["records_in"] == 10
    assert (
        w["optional"]["status"] == "Skipped"
        and w["optional"]["reason"] == "when condition is false"
    )
    assert [i["status"] for i in w["squares"]["iterations"]] == ["Completed"] * 5
    assert "greet | hello gxo" in proc.stderr  # -v shows workload output


def test_failure_exit_code_and_partial_output_in_report(gxo, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    proc = gxo("run", str(PLAYBOOKS / "failing.gxo.yaml"), "--report", str(report))
    assert proc.returncode == 1
    data = json.loads(report.read_text())
    boom = data["workloads"]["boom"]
    assert boom["status"] == "Failed"
    assert boom["summary"]["stdout"] == "partial" and boom["summary"]["exit_code"] == 7
    assert boom["error"] == "command exited with code 7: partial"
    assert data["workloads"]["after"] == {
        **data["workloads"]["after"],
        "status": "Skipped",
        "reason": "dependency failed: 'boom' is Failed",
    }
    assert "✘ boom" in proc.stderr


def test_secrets_never_reach_any_output(gxo, tmp_path: Path) -> None:
    token = "tok-9f8e7d6c5b"
    report = tmp_path / "r.json"
    proc = gxo(
        "run",
        str(PLAYBOOKS / "secrets.gxo.yaml"),
        "-v",
        "--report",
        str(report),
        env={"GXO_TEST_TOKEN": token},
    )
    assert proc.returncode == 0, proc.stderr
    text = report.read_text()
    for output in (proc.stdout, proc.stderr, text):
        assert token not in output
    data = json.loads(text)
    assert data["workloads"]["use_token"]["summary"]["stdout"] == "token is [REDACTED]"
    assert data["workloads"]["echo_back"]["summary"]["header"] == "Bearer [REDACTED]"
    assert data["workloads"]["fail_with_secret"]["error"] == "bad token [REDACTED]"
    assert "leaked [REDACTED]" in proc.stderr


def test_missing_secret_is_a_clear_failure(gxo) -> None:
    proc = gxo("run", str(PLAYBOOKS / "secrets.gxo.yaml"), env={"GXO_TEST_TOKEN": ""})
    # an empty variable is "set"; remove it entirely:
    env = {k: v for k, v in os.environ.items() if k != "GXO_TEST_TOKEN"}
    proc = subprocess.run(
        [sys.executable, "-m", "gxo.cli", "run", str(PLAYBOOKS / "secrets.gxo.yaml")],
        capture_output=True,
        text=True,
        env={**env, "NO_COLOR": "1", "COLUMNS": "200"},
        timeout=60,
    )
    assert proc.returncode == 1
    assert (
        "secret 'GXO_TEST_TOKEN' is not set (looked for environment variable GXO_TEST_TOKEN)"
        in proc.stderr
    )


def test_invalid_playbook_exits_2_with_location(gxo, write_playbook) -> None:
    path = write_playbook(
        'schemaVersion: "1.0.0"\nname: t\nworkloads:\n  - name: a\n    proces: {}\n'
    )
    proc = gxo("run", str(path))
    assert proc.returncode == 2
    assert (
        f"error: {path}:5:5: workload 'a': unknown key 'proces' (did you mean 'process'?)"
        in proc.stderr
    )
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nope.yaml"], "playbook not found: nope.yaml"),
        (["run", "{pb}", "-e", "no_equals"], "-e 'no_equals': expected key=value"),
        (["run", "{pb}", "--vars-file", "missing.yaml"], "cannot read vars file missing.yaml"),
        (["run", "{pb}", "--concurrency", "0"], "Invalid value"),
        (["modules", "exex"], "unknown module 'exex' (did you mean exec?)"),
        (["migrate", "-f", "{pb}", "-o", "x", "--in-place"], "use either --output or --in-place"),
    ],
)
def test_usage_errors_exit_2(gxo, args: list[str], message: str) -> None:
    pb = str(EXAMPLES / "quickstart.gxo.yaml")
    proc = gxo(*[a.replace("{pb}", pb) for a in args])
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_vars_file_and_extra_vars_precedence(gxo, write_playbook, tmp_path: Path) -> None:
    pb = write_playbook(
        'schemaVersion: "1.0.0"\nname: v\nvars: { a: 1, b: 1, c: 1 }\nworkloads:\n'
        '  - name: check\n    process: { module: control:assert, params: { condition: "a == 1 and b == 2 and c == 3 and d == [1, 2]" } }\n'
    )
    varsfile = tmp_path / "vars.yaml"
    varsfile.write_text("b: 2\nc: 2\n")
    proc = gxo("run", str(pb), "--vars-file", str(varsfile), "-e", "c=3", "-e", '{"d": [1, 2]}')
    assert proc.returncode == 0, proc.stderr


def test_validate_many_files(gxo, write_playbook) -> None:
    bad = write_playbook(
        'schemaVersion: "1.0.0"\nname: t\nworkloads:\n  - name: a\n    process: { module: nope }\n',
        "bad.yaml",
    )
    proc = gxo("validate", str(EXAMPLES / "quickstart.gxo.yaml"), str(bad))
    assert proc.returncode == 2
    assert "ok: " in proc.stdout and "quickstart" in proc.stdout
    assert f"{bad}:5:16: workload 'a': unknown module 'nope'" in proc.stderr
    assert gxo("validate", str(EXAMPLES / "quickstart.gxo.yaml")).returncode == 0


def test_schema_and_modules_and_version(gxo) -> None:
    schema = json.loads(gxo("schema").stdout)
    assert schema["title"].startswith("GXO playbook")
    assert "workloads" in schema["properties"]
    listing = gxo("modules").stdout
    assert "exec" in listing and "data:join" in listing
    one = gxo("modules", "exec")
    assert "ok_exit_codes" in one.stdout and "Example" in one.stdout
    as_json = json.loads(gxo("modules", "data:join", "--json").stdout)
    assert as_json["name"] == "data:join" and as_json["produces_stream"] is True
    assert gxo("--version").stdout.startswith("gxo ")


def _wait_for(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_kills_children_writes_report_exits_130(tmp_path: Path, sig: int) -> None:
    report = tmp_path / "r.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gxo.cli",
            "run",
            str(PLAYBOOKS / "long_running.gxo.yaml"),
            "-v",
            "--report",
            str(report),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        parent = psutil.Process(proc.pid)
        _wait_for(
            lambda: any(
                "sleep" in " ".join(c.cmdline())
                for c in parent.children(recursive=True)
                if c.is_running()
            )
        )
        descendants = parent.children(recursive=True)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    _wait_for(
        lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in descendants),
        5,
    )
    data = json.loads(report.read_text())
    assert data["status"] == "Interrupted"
    assert data["workloads"]["sleeper"]["status"] == "Failed"
    assert data["workloads"]["sleeper"]["error"] == "cancelled: the run was interrupted"
    assert data["workloads"]["never"]["status"] == "Skipped"


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys, runpy; sys.argv=['gxo','--help']\n"
        "try:\n runpy.run_module('gxo.cli', run_name='__main__')\nexcept SystemExit: pass\n"
        "heavy=[m for m in ('textual','prompt_toolkit','httpx','networkx','sqlalchemy','grpc','watchfiles') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "Usage" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "HEAVY=", out.stdout


def test_validate_graph_prints_levels_pipelines_and_critical_path(gxo) -> None:
    proc = gxo("validate", "--graph", str(PLAYBOOKS / "kernel_features.gxo.yaml"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "8 workloads, 9 edges (5 state, 0 order, 4 stream), 4 levels, 5 scheduling units" in out
    assert "  level 3: verify" in out
    assert "  pipeline: numbers ≈> fan_a; numbers ≈> fan_b; fan_a ≈> merged; fan_b ≈> merged" in out
    assert "  critical path (4): numbers -> fan_a -> merged -> verify" in out


def test_migrate_to_unwritable_target_is_a_clear_error(gxo, tmp_path: Path) -> None:
    legacy = PLAYBOOKS / "legacy" / "nightly_report.gxo.yaml"
    proc = gxo("migrate", "-f", str(legacy), "-o", str(tmp_path / "missing" / "x.yaml"))
    assert proc.returncode == 2
    assert (
        f"cannot write {tmp_path / 'missing' / 'x.yaml'}: No such file or directory" in proc.stderr
    )
    assert "Traceback" not in proc.stderr


def test_legacy_warnings_are_shown_when_the_migrated_file_is_invalid(gxo) -> None:
    proc = gxo("validate", str(PLAYBOOKS / "legacy" / "needs_manual_fix.yaml"))
    assert proc.returncode == 2
    assert "warning:" in proc.stderr and "gxo migrate" in proc.stderr
    assert proc.stderr.index("warning:") < proc.stderr.index("error:")


def test_python_dash_m_gxo_is_the_gxo_command() -> None:
    """``python -m gxo`` runs the same entry point as the console script."""
    env = {**os.environ, "NO_COLOR": "1"}
    version = subprocess.run(
        [sys.executable, "-m", "gxo", "--version"], capture_output=True, text=True, env=env
    )
    assert version.returncode == 0 and version.stdout.startswith("gxo ")
    run = subprocess.run(
        [sys.executable, "-m", "gxo", "run", "-q", str(EXAMPLES / "quickstart.gxo.yaml")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 0, run.stderr
