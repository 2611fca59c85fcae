"""``gxo daemon`` with its encrypted state: what the file holds, wrong/missing keys,
tampering, and arbitrary bytes as the state file (exit 2 with a clear error, never a
traceback). Real daemon subprocesses (tests/daemon/conftest.py)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gxo.state.crypto import AesGcmCodec, generate_key, key_id, read_key_file, write_key_file
from gxo.state.sql import SqlState, StateError

if TYPE_CHECKING:
    from tests.daemon.conftest import DaemonProc

pytestmark = pytest.mark.timeout(300)

SECRET = "sekret-token-4711"
PLAYBOOK = f"""\
schemaVersion: "1.0.0"
name: vault
vars: {{ token: {SECRET} }}
workloads:
  - name: hello
    process: {{ module: exec, params: {{ command: echo, args: ["{{{{ token }}}}"] }} }}
    register: greet
"""


def _start_fails(d: DaemonProc, *extra: str) -> str:
    proc = d.start(*extra, wait=False)
    assert proc.wait(30) == 2, d.logs()
    logs = d.logs()
    assert "Traceback" not in logs, logs
    return " ".join(logs.split())


def test_the_state_file_holds_no_secret_and_needs_its_key(
    daemon: DaemonProc, tmp_path: Path
) -> None:
    key_file = write_key_file(tmp_path / "own.key", generate_key())
    daemon.start("--state-key-file", str(key_file))
    path = daemon.folder / "vault.gxo.yaml"
    path.write_text(PLAYBOOK)
    assert daemon.ctl("apply", "-f", str(path)).returncode == 0
    daemon.wait_status("hello", "Completed")
    daemon.stop()
    raw = b"".join(p.read_bytes() for p in daemon.folder.glob("state.db*"))
    assert SECRET.encode() not in raw and b"echo" not in raw and b"greet" in raw  # key: plain
    kid = key_id(read_key_file(key_file))

    other = write_key_file(tmp_path / "other.key", generate_key())
    daemon.started.clear()
    logs = _start_fails(daemon, "--state-key-file", str(other))
    assert f"is encrypted with key {kid}, not with the key given" in logs
    assert "--state-key-file FILE or --state-key-cmd CMD" in logs

    # No key option and no ~/.gxo/state.key: refused, and no new key is made.
    daemon.started.clear()
    home_key = Path.home() / ".gxo" / "state.key"
    logs = _start_fails(daemon, "--state-key-cmd", "false")
    assert "--state-key-cmd: false exited 1" in logs
    key_cmd = f"cat {key_file}"
    daemon.started.clear()
    for log in daemon.folder.glob("daemon*.log"):
        log.unlink()
    daemon.start("--state-key-cmd", key_cmd)  # the right key from a command
    assert daemon.wait_status("hello", "Completed")
    assert "encrypted values verified" in daemon.logs() and SECRET not in daemon.logs()
    daemon.stop()
    assert not home_key.exists()
    cmd = [sys.executable, "-m", "gxo.cli", "daemon", "--socket", str(daemon.socket)]
    out = subprocess.run(
        [*cmd, "--state", daemon.state], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"the default key {home_key} does not exist" in " ".join(out.stderr.split())
    assert not home_key.exists()


def test_a_tampered_row_stops_the_daemon_naming_the_row(daemon: DaemonProc) -> None:
    daemon.start()
    path = daemon.folder / "vault.gxo.yaml"
    path.write_text(PLAYBOOK)
    assert daemon.ctl("apply", "-f", str(path)).returncode == 0
    daemon.wait_status("hello", "Completed")
    daemon.stop()
    db = sqlite3.connect(daemon.folder / "state.db")
    (value,) = db.execute("SELECT value FROM gxo_results WHERE key = 'greet'").fetchone()
    flipped = value[:-6] + ("A" if value[-6] != "A" else "B") + value[-5:]
    db.execute("UPDATE gxo_results SET value = ? WHERE key = 'greet'", (flipped,))
    db.commit()
    db.close()
    daemon.started.clear()
    logs = _start_fails(daemon)
    assert "state row results/vault/greet (value) fails authentication" in logs


def test_a_default_key_is_created_0600_and_logged(daemon: DaemonProc) -> None:
    home_key = Path.home() / ".gxo" / "state.key"  # HOME: a temp dir (tests/conftest.py)
    logs = _start_fails(daemon, "--state-key-file", "")
    assert "--state-key-file: empty path" in logs
    daemon.started.clear()
    cmd = [sys.executable, "-m", "gxo.cli", "daemon", "--socket", str(daemon.socket)]
    with open(daemon.folder / "daemon0.log", "w") as log:  # no key option at all
        proc = subprocess.Popen([*cmd, "--state", daemon.state], stdout=log, stderr=log)
    daemon.started.append(proc)  # type: ignore[arg-type]
    daemon.wait_ready(proc)  # type: ignore[arg-type]
    daemon.stop()
    assert f"created the state key {home_key} (mode 0600)" in " ".join(daemon.logs().split())
    assert home_key.stat().st_mode & 0o777 == 0o600
    with pytest.raises(StateError, match="is encrypted"):
        SqlState(daemon.state)
    SqlState(daemon.state, codec=AesGcmCodec(read_key_file(home_key))).close()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.binary(min_size=1, max_size=8192))
@example(data=b"SQLite format 3\x00" + bytes(84) + b"\xff" * 3996)
@example(data=b"\x00" * 4096)
def test_arbitrary_bytes_as_the_state_file_exit_2(data: bytes) -> None:
    from tests.daemon.conftest import state_key_file

    folder = Path(tempfile.mkdtemp(prefix="gxoh-", dir="/tmp"))  # AF_UNIX: a short path
    try:
        state = folder / "state.db"
        state.write_bytes(data)
        cmd = [sys.executable, "-m", "gxo.cli", "daemon", "--socket", str(folder / "d.sock")]
        cmd += ["--state", f"sqlite:///{state}", "--state-key-file", str(state_key_file())]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert "cannot open the state store sqlite:///" in " ".join(out.stderr.split())


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=16384), cut=st.integers(0, 16384))
def test_arbitrary_or_damaged_bytes_give_a_state_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, cut: int
) -> None:
    """SqlState on arbitrary bytes, or on a real encrypted store cut short or overwritten
    in part: it opens (and verifies) or raises StateError, nothing else."""
    from gxo.state._sql_crypto import check_sqlite_file, verify_store
    from gxo.state.crypto import AesGcmCodec

    folder = tmp_path_factory.mktemp("bytes")
    key = AesGcmCodec(b"k" * 32)
    for variant in ("raw", "damaged"):
        path = folder / f"{variant}.db"
        if variant == "raw":
            path.write_bytes(data)
        else:
            with SqlState(f"sqlite:///{path}", codec=key) as state:
                for i in range(40):
                    state.set_status("p", f"w{i}", {"status": "Completed", "pad": "y" * 150})
            blob = path.read_bytes()
            start = min(cut, len(blob))
            blob = blob[:start] + data + blob[start + len(data) :]
            path.write_bytes(blob[: max(len(blob) - cut, 1)] if cut % 3 == 0 else blob)
        try:
            check_sqlite_file(f"sqlite:///{path}")  # as the daemon and gxo run do first
            state = SqlState(f"sqlite:///{path}", codec=key)
        except StateError:
            continue
        try:
            verify_store(state)
            state.list_statuses()
        except StateError:
            pass
        finally:
            state.close()
