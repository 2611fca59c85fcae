"""``gxo run --check`` / ``--diff`` as a user runs them: a subprocess."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

PLAYBOOK = """
schemaVersion: "1.0.0"
name: site
workloads:
  - name: config
    process:
      module: filesystem:write
      params: { path: app.conf, content: "port: 8080\\ntoken: {{ secret('GXO_TEST_CHECK_TOKEN') }}\\n" }
  - name: restart
    depends_on: [config]
    process: { module: exec, params: { command: touch, args: [restarted] } }
    register: restarted
  - name: notify
    process: { module: control:identity, params: { code: "{{ restarted.exit_code }}" } }
  - name: version
    process: { module: exec, params: { command: echo, args: ["1.2"], check_mode: safe } }
"""


def test_check_changes_nothing_and_reports_a_redacted_diff(gxo, tmp_path: Path) -> None:
    (tmp_path / "app.conf").write_text("port: 80\ntoken: old\n")
    playbook = tmp_path / "site.gxo.yaml"
    playbook.write_text(textwrap.dedent(PLAYBOOK))
    report = tmp_path / "report.json"
    secret = "s3cr3t-check-token"
    proc = gxo(
        "run",
        str(playbook),
        "--workspace",
        str(tmp_path),
        "--check",
        "--diff",
        "--report",
        str(report),
        env={"GXO_TEST_CHECK_TOKEN": secret},
    )
    assert proc.returncode == 0, proc.stderr
    assert secret not in proc.stderr and secret not in report.read_text()
    assert (tmp_path / "app.conf").read_text() == "port: 80\ntoken: old\n"
    assert not (tmp_path / "restarted").exists()
    err = proc.stderr
    assert "config Completed" in err and "(check: predicted)" in err
    assert "restart Skipped — check mode: module 'exec' cannot predict" in err
    assert "notify Skipped — check mode: needs 'restart', which was not run" in err
    assert "── diff config" in err
    assert "-port: 80\n-token: old\n+port: 8080\n+token: [REDACTED]\n" in err
    assert "Completed (check) site (run " in err
    assert "check: 1 would change, 2 not run" in err
    data = json.loads(report.read_text())
    assert data["check"] is True
    w = data["workloads"]
    assert w["config"]["check"] == "predicted" and w["config"]["summary"]["changed"] is True
    assert w["config"]["diff"].endswith("-token: old\n+port: 8080\n+token: [REDACTED]\n")
    assert w["restart"] | {"duration_ms": None} == {
        "status": "Skipped",
        "attempts": 1,
        "duration_ms": None,
        "error": None,
        "summary": None,
        "records_in": 0,
        "records_out": 0,
        "reason": "check mode: module 'exec' cannot predict what it would do, so it was not "
        "run (set check_mode: safe on a read-only command to run it under --check)",
        "check": "not run",
    }
    assert w["version"]["check"] == "ran" and w["version"]["summary"]["stdout"] == "1.2"


def test_diff_without_check_shows_the_real_changes(gxo, tmp_path: Path) -> None:
    (tmp_path / "app.conf").write_text("port: 80\n")
    playbook = tmp_path / "site.gxo.yaml"
    playbook.write_text(
        textwrap.dedent(
            """
            schemaVersion: "1.0.0"
            name: real
            workloads:
              - name: config
                process: { module: filesystem:write, params: { path: app.conf, content: "port: 81\\n" } }
            """
        )
    )
    report = tmp_path / "report.json"
    proc = gxo(
        "run", str(playbook), "--workspace", str(tmp_path), "--diff", "--report", str(report)
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "app.conf").read_text() == "port: 81\n"
    assert "── diff config" in proc.stderr and "-port: 80\n+port: 81\n" in proc.stderr
    assert "Completed real (run " in proc.stderr
    data = json.loads(report.read_text())
    assert "check" not in data
    assert data["workloads"]["config"]["diff"].endswith("-port: 80\n+port: 81\n")


def test_check_reads_the_state_store_but_never_writes_it(gxo, tmp_path: Path) -> None:
    from gxo.state.crypto import AesGcmCodec, generate_key, read_key_file, write_key_file
    from gxo.state.sql import SqlState

    key = write_key_file(tmp_path / "k.key", generate_key())
    db = tmp_path / "run.db"
    state = ["--state", f"sqlite:///{db}", "--state-key-file", str(key)]
    playbook = tmp_path / "sync.gxo.yaml"
    body = """
        schemaVersion: "1.0.0"
        name: sync
        workloads:
          - name: count
            process: {{ module: control:identity, params: {{ n: {n} }} }}
            register: {key}
        """
    playbook.write_text(textwrap.dedent(body.format(n=41, key="counter")))
    assert gxo("run", str(playbook), *state).returncode == 0
    playbook.write_text(textwrap.dedent(body.format(n='"{{ counter.n + 1 }}"', key="next")))
    report = tmp_path / "report.json"
    proc = gxo("run", str(playbook), *state, "--check", "--report", str(report))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(report.read_text())["workloads"]["count"]["summary"] == {"n": 42}
    with SqlState(f"sqlite:///{db}", codec=AesGcmCodec(read_key_file(key))) as store:
        results = store.results("sync")
        assert results.get("counter") == {"n": 41} and "next" not in results
