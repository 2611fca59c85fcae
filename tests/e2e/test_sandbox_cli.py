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


# A command that leaves a double-forked child in a new session, and waits: both write a
# pid file once running (pids of the sandbox's pid namespace, if it has one), and carry
# the marker in their argv (how they are found from outside).
ORPHANS = """\
schemaVersion: "1.0.0"
name: orphans
security_context: {{ {context}, seccomp: unconfined }}
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


def _marked(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if marker in (p.info["cmdline"] or []):
            found.append(p)
    return found


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="the sandbox runs as root on Linux (as CI does)",
)
@pytest.mark.parametrize(
    "context",
    [
        "namespaces: [mount, ipc]",
        "namespaces: [mount, pid]",
        "namespaces: [user, mount]",  # with a keeper (it writes the uid map)
        "namespaces: [mount], user: nobody",  # the user switch clears a parent-death signal
    ],
)
def test_gxo_killed_with_sigkill_leaves_no_sandboxed_process(context: str) -> None:
    """kill -9 of `gxo run`: the zygote sees its socket close, every sandbox dies with
    it, and an init without a pid namespace first kills what the command started (a
    background child in a session of its own too)."""
    import signal
    import subprocess
    import time

    marker = f"{300 + os.getpid() % 1000}.{time.time_ns() % 10**6}"
    import shutil
    import tempfile

    # Not pytest's tmp_path: its parent is private to root, and the user nobody writes here.
    tmp_path = Path(tempfile.mkdtemp(prefix="gxo-orphans-"))
    tmp_path.chmod(0o755)
    path = tmp_path / "orphans.gxo.yaml"
    pids = tmp_path / "pids"
    pids.mkdir()
    pids.chmod(0o777)
    path.write_text(ORPHANS.format(context=context, dir=pids, marker=marker))
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gxo.cli", "run", str(path), "-w", str(tmp_path / "ws")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 8
        while not ((pids / "bg.pid").exists() and (pids / "fg.pid").exists()):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the command did not start"
            time.sleep(0.05)
        while len(_marked(marker)) < 2:  # the background one: exec'd sleep meanwhile
            assert time.monotonic() < deadline, "the background sleep did not start"
            time.sleep(0.05)
        zygotes = [
            p for p in psutil.Process(proc.pid).children() if "--zygote" in (p.cmdline() or [])
        ]
        assert len(zygotes) == 1
        sandbox = {p.pid for p in zygotes[0].children(recursive=True)} | {zygotes[0].pid}
        assert {p.pid for p in _marked(marker)} <= sandbox  # both in the sandbox
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        left = sandbox
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = {pid for pid in sandbox if psutil.pid_exists(pid)} | {
                p.pid for p in _marked(marker)
            }
            left = {pid for pid in left if _alive(pid)}
        assert not left, [_describe(pid) for pid in left]
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        for p in _marked(marker):  # never left running by a failure
            with __import__("contextlib").suppress(psutil.Error):
                p.kill()
        shutil.rmtree(tmp_path, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its reaper."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _describe(pid: int) -> str:
    try:
        return f"{pid}: {psutil.Process(pid).cmdline()}"
    except psutil.Error:
        return str(pid)
