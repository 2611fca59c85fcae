"""A confined run (`gxo run --confine`, every daemon run) reads `secret('file://...')`
only inside its workspace and --allow-path directories, like its path params."""

from __future__ import annotations

import json
from pathlib import Path

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: secret-files
workloads:
  - name: use
    process:
      module: control:identity
      params: {{ token: "{{{{ secret('file://{path}') }}}}" }}
"""


def _run(gxo, tmp_path: Path, secret_file: Path, *extra: str):
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    pb = tmp_path / "pb.gxo.yaml"
    pb.write_text(PLAYBOOK.format(path=secret_file))
    report = tmp_path / "r.json"
    proc = gxo("run", str(pb), "-w", str(ws), "--report", str(report), *extra)
    return proc, json.loads(report.read_text())


def test_a_secret_file_outside_the_roots_is_refused_when_confined(gxo, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "tok").write_text("s3cr3t-outside\n")
    proc, report = _run(gxo, tmp_path, outside / "tok", "--confine")
    assert proc.returncode == 1
    error = report["workloads"]["use"]["error"]
    assert "is outside the directories this confined run may read" in error
    assert "s3cr3t-outside" not in proc.stdout + proc.stderr + json.dumps(report)
    # unconfined, the same file is read (and redacted)
    proc, report = _run(gxo, tmp_path, outside / "tok")
    assert proc.returncode == 0, proc.stderr
    assert report["workloads"]["use"]["summary"]["token"] == "[REDACTED]"


def test_a_secret_file_in_an_allowed_directory_is_read_when_confined(gxo, tmp_path: Path) -> None:
    allowed = tmp_path / "secrets"
    allowed.mkdir()
    (allowed / "tok").write_text("s3cr3t-allowed\n")
    proc, report = _run(gxo, tmp_path, allowed / "tok", "--confine", "--allow-path", str(allowed))
    assert proc.returncode == 0, proc.stderr
    assert report["workloads"]["use"]["summary"]["token"] == "[REDACTED]"
    # a symlink inside the allowed directory pointing out is refused
    (tmp_path / "elsewhere").write_text("s3cr3t-link\n")
    (allowed / "link").symlink_to(tmp_path / "elsewhere")
    proc, report = _run(gxo, tmp_path, allowed / "link", "--confine", "--allow-path", str(allowed))
    assert proc.returncode == 1
    assert "outside the directories" in report["workloads"]["use"]["error"]
