"""``gxo ui`` in a real terminal: tmux runs it, the test reads the pane and types keys.

Skipped locally when tmux is missing; under CI=true a missing tmux is a failure
(.ci/run installs it).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
QUICKSTART_WORKLOADS = (
    "whoami",
    "per_team",
    "records",
    "only_in_prod",
    "say_hello",
    "forward",
    "check",
)


def _gxo_command() -> list[str]:
    script = Path(sys.executable).with_name("gxo")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gxo.cli"]


class Tmux:
    """One private tmux server (own socket, no user config) running one session."""

    def __init__(self, socket: Path, workdir: Path) -> None:
        self.socket = socket
        self.workdir = workdir
        self.exit_file = workdir / "gxo-exit-code"

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-S", str(self.socket), "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=10,
        )

    def start(self, gxo_args: list[str], *, cwd: Path, size: tuple[int, int] = (100, 30)) -> None:
        command = " ".join(shlex.quote(a) for a in [*_gxo_command(), *gxo_args])
        script = (
            f"cd {shlex.quote(str(cwd))} && {command}; echo $? > {shlex.quote(str(self.exit_file))}"
        )
        self.tmux("new-session", "-d", "-s", "gxo", "-x", str(size[0]), "-y", str(size[1]), script)

    def capture(self) -> str:
        result = self.tmux("capture-pane", "-p", "-t", "gxo", check=False)
        return result.stdout if result.returncode == 0 else ""

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "gxo", *keys)

    @property
    def alive(self) -> bool:
        return self.tmux("has-session", "-t", "gxo", check=False).returncode == 0

    def gxo_process(self) -> psutil.Process:
        pane_pid = int(
            self.tmux("display-message", "-p", "-t", "gxo", "#{pane_pid}").stdout.strip()
        )
        shell = psutil.Process(pane_pid)
        for child in shell.children():
            if "gxo" in " ".join(child.cmdline()):
                return child
        raise AssertionError("gxo is not running in the pane")

    def wait_for(self, predicate: Callable[[str], bool], what: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.capture()
            if predicate(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; the pane shows:\n{screen}")

    def wait_closed(self, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while self.alive or not self.exit_file.exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"gxo ui did not exit; the pane shows:\n{self.capture()}")
            time.sleep(0.1)
        return int(self.exit_file.read_text().strip())


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("tmux is not installed (CI=true: .ci/run must install it)")
        pytest.skip("tmux is not installed")
    # Short socket path: AF_UNIX paths are limited to ~100 bytes.
    sock_dir = Path(f"/tmp/gxo-tmux-{os.getpid()}-{time.monotonic_ns()}")
    sock_dir.mkdir()
    session = Tmux(sock_dir / "s", tmp_path)
    try:
        yield session
    finally:
        session.tmux("kill-server", check=False)
        shutil.rmtree(sock_dir, ignore_errors=True)


def _descendants(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _all_gone(procs: list[psutil.Process], timeout: float = 5.0) -> bool:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return not [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_quickstart_in_a_real_terminal(tmux: Tmux) -> None:
    # --keep-runs 0: no .gxo/runs/ left in the checkout
    tmux.start(["ui", "examples/quickstart.gxo.yaml", "--keep-runs", "0"], cwd=ROOT)
    screen = tmux.wait_for(
        lambda s: "✔ Completed" in s and all(name in s for name in QUICKSTART_WORKLOADS),
        "every workload name and the final status",
    )
    assert "quickstart" in screen
    assert "Re-run" in screen and "Quit" in screen  # the footer's key bindings
    procs = _descendants(tmux.gxo_process())
    tmux.send("q")
    assert tmux.wait_closed() == 0
    assert _all_gone(procs), "gxo ui left processes behind"


def test_quit_while_running_in_a_real_terminal(tmux: Tmux, tmp_path: Path) -> None:
    shutil.copyfile(PLAYBOOKS / "midrun.gxo.yaml", tmp_path / "midrun.gxo.yaml")
    tmux.start(["ui", "midrun.gxo.yaml", "--report", "report.json"], cwd=tmp_path)
    tmux.wait_for(lambda s: "▶ Running" in s and "build" in s, "the run to be in progress")
    procs = _descendants(tmux.gxo_process())
    deadline = time.monotonic() + 10
    while not any("31.4159" in p.cmdline() for p in procs if p.is_running()):
        assert time.monotonic() < deadline, "the sleep child never started"
        time.sleep(0.1)
        procs = _descendants(tmux.gxo_process())
    tmux.send("q")
    tmux.wait_for(lambda s: "A run is in progress" in s, "the confirmation")
    tmux.send("y")
    assert tmux.wait_closed() == 130
    assert _all_gone(procs), "the command started by the run outlived the UI"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "Interrupted"


def test_sigterm_cancels_the_run_cleanly(tmux: Tmux, tmp_path: Path) -> None:
    shutil.copyfile(PLAYBOOKS / "midrun.gxo.yaml", tmp_path / "midrun.gxo.yaml")
    tmux.start(["ui", "midrun.gxo.yaml"], cwd=tmp_path)
    tmux.wait_for(lambda s: "▶ Running" in s, "the run to be in progress")
    gxo = tmux.gxo_process()
    deadline = time.monotonic() + 10
    while not any("31.4159" in p.cmdline() for p in _descendants(gxo)[1:]):
        assert time.monotonic() < deadline, "the sleep child never started"
        time.sleep(0.1)
    procs = _descendants(gxo)
    gxo.send_signal(signal.SIGTERM)
    assert tmux.wait_closed() == 130
    assert _all_gone(procs)


def test_invalid_playbook_in_a_real_terminal(tmux: Tmux, tmp_path: Path) -> None:
    shutil.copyfile(PLAYBOOKS / "invalid.gxo.yaml", tmp_path / "invalid.gxo.yaml")
    tmux.start(["ui", "invalid.gxo.yaml"], cwd=tmp_path)
    screen = tmux.wait_for(lambda s: "Invalid playbook" in s, "the error screen")
    assert "invalid.gxo.yaml:8:5" in screen and "unknown key 'retries'" in screen
    tmux.send("q")
    assert tmux.wait_closed() == 2
