"""`gxo run` / `gxo validate` with security_context, as a user runs them: a context that
cannot be enforced (or is wrong) never runs unsandboxed; a sandboxed run works and
leaves no process behind (the zygote ends with gxo)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import psutil
import pytest

SANDBOXED = """\
schemaVersion: "1.0.0"
name: boxed
security_context: { read_only_root: true, network: none }
workloads:
  - name: where
    process: { module: exec, params: { command: sh, args: ["-c", "hostname; touch /x"] } }
    register: where
"""

TYPO = """\
schemaVersion: "1.0.0"
name: typo
workloads:
  - name: a
    process: { module: exec, params: { command: id } }
    security_context: { read_only_rot: true }
"""


def test_a_wrong_security_context_is_a_load_error(gxo, tmp_path: Path) -> None:
    path = tmp_path / "typo.gxo.yaml"
    path.write_text(TYPO)
    for command in ("validate", "run"):
        proc = gxo(command, str(path))
        assert proc.returncode == 2, proc.stderr
        assert "workload 'a': unknown key 'read_only_rot'" in proc.stderr
        assert "uid=" not in proc.stdout  # nothing ran


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="the sandbox runs as root on Linux (as CI does)",
)
def test_gxo_run_sandboxed_and_nothing_left_behind(gxo, tmp_path: Path) -> None:
    path = tmp_path / "boxed.gxo.yaml"
    path.write_text(SANDBOXED)
    before = {p.pid for p in psutil.process_iter()}
    report = tmp_path / "report.json"
    proc = gxo("run", str(path), "-w", str(tmp_path / "ws"), "--report", str(report))
    assert proc.returncode == 1, proc.stderr
    assert "touch: cannot touch '/x': Read-only file system" in proc.stderr
    summary = json.loads(report.read_text())["workloads"]["where"]["summary"]
    assert summary["stdout"] == "gxo-sandbox"
    zygotes = [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.pid not in before and "--zygote" in (p.info["cmdline"] or [])
    ]
    assert zygotes == []
