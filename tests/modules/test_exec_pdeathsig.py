"""The daemon's opt-in: exec's command dies with GXO even when GXO is SIGKILLed.

A Python process runs ``sleep 60`` through the engine, then is killed with
SIGKILL (no cleanup code can run). With the parent-death signal on, the sleep
dies within a second; off (what ``gxo run`` does), it survives, which shows the
test measures the option and not something else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from gxo.modules.system import _pdeathsig

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux prctl")

SCRIPT = """
import asyncio, sys
from gxo.config.loader import load_playbook
from gxo.engine.scheduler import Engine
from gxo.modules.system import _pdeathsig, exec as exec_module

mode, pidfile = sys.argv[1], sys.argv[2]
if mode == "function":
    exec_module.set_parent_death_signal(True)
elif mode == "preexec":  # the fallback without setpriv
    exec_module.set_parent_death_signal(True)
    _pdeathsig._setpriv_path = ""
PLAYBOOK = '''
schemaVersion: "1.0.0"
name: pdeathsig
workloads:
  - name: sleeper
    process: { module: exec, params: { command: sh, args: ["-c", "echo $$ > %s; exec sleep 60"] } }
''' % pidfile
asyncio.run(Engine(load_playbook(text=PLAYBOOK)).run())
"""


def _gone(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # we may be its subreaper: reap the zombie
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _run_and_kill(tmp_path: Path, mode: str, env: dict[str, str]) -> tuple[int, float | None]:
    """Start the script, SIGKILL it once the sleep runs; (sleep pid, seconds until it died)."""
    pidfile = tmp_path / f"{mode}.pid"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, mode, str(pidfile)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while not (pidfile.exists() and pidfile.read_text().strip()):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.02)
        pid = int(pidfile.read_text())
        time.sleep(0.1)  # past `exec sleep 60`
        assert psutil.Process(pid).name() == "sleep"
        proc.kill()
        proc.wait()
        killed = time.monotonic()
        while time.monotonic() - killed < 1.0:
            if _gone(pid):
                return pid, time.monotonic() - killed
            time.sleep(0.01)
        return pid, None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.mark.parametrize(
    ("mode", "env"),
    [("function", {}), ("env", {"GXO_PDEATHSIG": "1"}), ("preexec", {})],
)
def test_command_dies_with_a_killed_gxo(tmp_path: Path, mode: str, env: dict[str, str]) -> None:
    pid, died_after = _run_and_kill(tmp_path, mode, env)
    if died_after is None:
        os.kill(pid, signal.SIGKILL)
    assert died_after is not None, f"sleep {pid} outlived its SIGKILLed parent ({mode})"


def test_off_by_default_the_command_survives(tmp_path: Path) -> None:
    pid, died_after = _run_and_kill(tmp_path, "off", {})
    try:
        assert died_after is None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if _gone(pid):
                break
            time.sleep(0.01)


def test_spawn_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pdeathsig, "_enabled", None)
    assert _pdeathsig.parent_death_spawn(["/bin/true"]) == (["/bin/true"], None)
    monkeypatch.setenv("GXO_PDEATHSIG", "1")
    monkeypatch.setattr(_pdeathsig, "_setpriv_path", "/usr/bin/setpriv")
    assert _pdeathsig.parent_death_spawn(["/bin/true", "x"]) == (
        ["/usr/bin/setpriv", "--pdeathsig", "KILL", "--", "/bin/true", "x"],
        None,
    )
    # a command that cannot start fails as it would without the option
    missing = str(tmp_path / "missing")
    argv, preexec = _pdeathsig.parent_death_spawn([missing])
    assert argv == [missing] and callable(preexec)
    # relative commands are looked up where they will start
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert _pdeathsig.parent_death_spawn(["./run.sh"], str(tmp_path))[0][0] == "/usr/bin/setpriv"
    _pdeathsig.set_parent_death_signal(False)
    try:
        assert _pdeathsig.parent_death_spawn(["/bin/true"]) == (["/bin/true"], None)
    finally:
        _pdeathsig.set_parent_death_signal(None)
