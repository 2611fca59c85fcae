"""A real ``gxo daemon`` subprocess on a temp socket with temp SQLite state."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

_STATE_KEY: list[Path] = []


def state_key_file() -> Path:
    """One state key (mode 0600) for every daemon of the session: fleet members sharing a
    PostgreSQL state need the same key, and no test touches ~/.gxo/state.key."""
    if not _STATE_KEY:
        import atexit
        import shutil

        from gxo.state.crypto import generate_key, write_key_file

        folder = Path(tempfile.mkdtemp(prefix="gxok-", dir="/tmp"))
        atexit.register(shutil.rmtree, folder, True)
        _STATE_KEY.append(write_key_file(folder / "state.key", generate_key()))
    return _STATE_KEY[0]


class DaemonProc:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "run" / "d.sock"
        self.state = f"sqlite:///{folder / 'state.db'}"
        self.proc: subprocess.Popen[str] | None = None
        self.started: list[subprocess.Popen[str]] = []

    def start(self, *extra: str, wait: bool = True) -> subprocess.Popen[str]:
        cmd = [sys.executable, "-m", "gxo.cli", "daemon", "--socket", str(self.socket)]
        cmd += ["--state", self.state, *extra]
        if not {"--state-key-file", "--state-key-cmd"} & set(extra):
            cmd += ["--state-key-file", str(state_key_file())]
        log = open(self.folder / f"daemon{len(self.started)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
        log.close()
        self.started.append(proc)
        self.proc = proc
        if wait:
            self.wait_ready(proc)
        return proc

    def wait_ready(self, proc: subprocess.Popen[str], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"daemon exited {proc.returncode}: {self.logs()}")
            if self.socket.exists() and self.ctl("status").returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"daemon not ready: {self.logs()}")

    def open_state(self) -> Any:
        """The daemon's state store, opened with the key the daemons were given."""
        from gxo.state.crypto import AesGcmCodec, read_key_file
        from gxo.state.sql import SqlState

        return SqlState(self.state, codec=AesGcmCodec(read_key_file(state_key_file())))

    def logs(self) -> str:
        return "".join(p.read_text() for p in sorted(self.folder.glob("daemon*.log")))

    def ctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "gxo.cli", "ctl", "--socket", str(self.socket), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def ctl_json(self, *args: str) -> Any:
        out = self.ctl(*args, "-o", "json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def wait_status(self, name: str, wanted: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        row: dict[str, Any] = {}
        while time.monotonic() < deadline:
            row = self.ctl_json("status", name)[0]
            if row["status"] == wanted:
                return row
            time.sleep(0.1)
        raise AssertionError(f"{name} is {row.get('status')}, not {wanted}: {self.logs()}")

    def descendants(self) -> list[psutil.Process]:
        procs = []
        for proc in self.started:
            try:
                procs.extend(psutil.Process(proc.pid).children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        return procs

    def stop(self) -> None:
        """Teardown: every daemon started is ended (TERM, then KILL) with its children."""
        for proc in self.started:
            if proc.poll() is not None:
                continue
            children = []
            try:
                children = psutil.Process(proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            for child in children:
                try:
                    child.kill()
                except psutil.NoSuchProcess:
                    pass


@pytest.fixture
def daemon() -> Iterator[DaemonProc]:
    # A short private directory: AF_UNIX paths are limited to 107 bytes.
    folder = Path(tempfile.mkdtemp(prefix="gxod-", dir="/tmp"))
    os.chmod(folder, 0o700)
    d = DaemonProc(folder)
    try:
        yield d
    finally:
        d.stop()
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def fleet_on_postgres(count: int, label: str) -> Iterator[list[DaemonProc]]:
    """``count`` daemons (not started) sharing a fresh PostgreSQL database; on exit they
    are stopped, their temp folders removed and the database dropped."""
    from sqlalchemy import create_engine, text

    name = f"gxo_test_{label}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    procs = []
    try:
        for _ in range(count):
            folder = Path(tempfile.mkdtemp(prefix="gxom-", dir="/tmp"))  # AF_UNIX: short
            os.chmod(folder, 0o700)
            d = DaemonProc(folder)
            d.state = f"postgresql://postgres@127.0.0.1:5432/{name}"
            procs.append(d)
        yield procs
    finally:
        for d in procs:
            d.stop()
            shutil.rmtree(d.folder, ignore_errors=True)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def until(check: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")
