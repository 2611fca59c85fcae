"""``gxo daemon --require-sandbox`` on a real daemon: a playbook with a workload
without security_context is refused (INVALID_ARGUMENT, ctl exit 2) and nothing of it
runs; a sandboxed one (playbook-level default) is applied and runs in the sandbox."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the fixture's class; conftest is not imported as a module
    from tests.daemon.conftest import DaemonProc

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or os.geteuid() != 0,
        reason="the sandbox runs as root on Linux (as CI does)",
    ),
]

BARE = """\
schemaVersion: "1.0.0"
name: bare
workloads:
  - name: boxed
    process: { module: exec, params: { command: hostname } }
    security_context: { namespaces: [uts] }
  - name: naked
    process: { module: exec, params: { command: id } }
"""

BOXED = """\
schemaVersion: "1.0.0"
name: boxed
security_context: { namespaces: [uts, mount, pid], read_only_root: true }
workloads:
  - name: host
    process: { module: exec, params: { command: hostname } }
"""


def test_require_sandbox_refuses_unsandboxed_workloads(daemon: DaemonProc) -> None:
    daemon.start("--require-sandbox")
    bare = daemon.folder / "bare.gxo.yaml"
    bare.write_text(BARE)
    out = daemon.ctl("apply", "-f", str(bare))
    assert out.returncode == 2, out.stderr
    assert "requires a sandbox (--require-sandbox)" in out.stderr
    assert "no security_context: naked" in out.stderr
    assert "boxed" not in out.stderr.split("security_context:")[-1]
    boxed = daemon.folder / "boxed.gxo.yaml"
    boxed.write_text(BOXED)
    out = daemon.ctl("apply", "-f", str(boxed))
    assert out.returncode == 0, out.stderr
    daemon.wait_status("boxed/host", "Completed")
    report = daemon.ctl_json("runs", "boxed/host")[0]["report"]["workloads"]["host"]
    assert report["summary"]["stdout"] == "gxo-sandbox"
