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


ORPHANS = """\
schemaVersion: "1.0.0"
name: orphans
security_context: {{ namespaces: [mount, ipc], seccomp: unconfined }}
workloads:
  - name: sleeper
    process:
      module: exec
      params:
        command: sh
        args:
          - -c
          - >-
            setsid sh -c 'echo $$ > {dir}/bg.pid; exec sleep {marker}' > /dev/null 2>&1 &
            echo $$ > {dir}/fg.pid; exec sleep {marker}
"""


def test_daemon_killed_with_sigkill_leaves_no_sandboxed_process(daemon: DaemonProc) -> None:
    """kill -9 of the daemon: a command in a sandbox without a pid namespace, and the
    background child it left in a session of its own, die with it."""
    import signal
    import time

    import psutil

    from tests.daemon.conftest import until

    marker = f"{400 + os.getpid() % 1000}.{time.time_ns() % 10**6}"

    def marked() -> set[int]:
        return {
            p.pid
            for p in psutil.process_iter(["cmdline", "status"])
            if marker in (p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE
        }

    proc = daemon.start()
    path = daemon.folder / "orphans.gxo.yaml"
    path.write_text(ORPHANS.format(dir=daemon.folder, marker=marker))
    try:
        out = daemon.ctl("apply", "-f", str(path))
        assert out.returncode == 0, out.stderr
        until(lambda: len(marked()) == 2, 15, "both sleeps running")
        sandbox = {p.pid for p in daemon.descendants()}
        assert marked() <= sandbox
        proc.send_signal(signal.SIGKILL)
        proc.wait()

        def left() -> set[int]:
            alive = set()
            for pid in sandbox | marked():
                try:
                    if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                        alive.add(pid)
                except psutil.Error:
                    pass
            return alive

        deadline = time.monotonic() + 5
        while left() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not left(), [psutil.Process(pid).cmdline() for pid in left()]
    finally:
        for pid in marked():  # never left running by a failure
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass
