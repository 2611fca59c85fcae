"""``gxo run --state sqlite:///F --state-key-file K``: a run-once playbook's registered
results persist, encrypted, between runs (subprocess ``gxo``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gxo.state.crypto import AesGcmCodec, generate_key, read_key_file, write_key_file
from gxo.state.sql import SqlState

SECRET = "tok-93c1-secret"
FIRST = f"""\
schemaVersion: "1.0.0"
name: sync
workloads:
  - name: login
    process: {{ module: control:identity, params: {{ token: {SECRET}, n: 41 }} }}
    register: session
"""
SECOND = """\
schemaVersion: "1.0.0"
name: sync
workloads:
  - name: use
    process:
      module: exec
      params:
        command: echo
        args: ["n={{ session.n + 1 if session is defined else 'none' }}"]
"""


def gxo(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "gxo.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_results_persist_encrypted_between_runs(tmp_path: Path) -> None:
    key = write_key_file(tmp_path / "k.key", generate_key())
    first, second = tmp_path / "first.gxo.yaml", tmp_path / "second.gxo.yaml"
    first.write_text(FIRST)
    second.write_text(SECOND)
    db = tmp_path / "run.db"
    state = ["--state", f"sqlite:///{db}", "--state-key-file", str(key)]

    memory = gxo("run", "-v", str(second))  # default: the memory store, nothing persisted
    assert memory.returncode == 2 and "'session' is not defined" in memory.stderr

    assert gxo("run", str(first), *state).returncode == 0
    again = gxo("run", "-v", str(second), *state)
    assert again.returncode == 0, again.stderr
    assert "n=42" in again.stderr + again.stdout
    assert SECRET.encode() not in db.read_bytes()
    with SqlState(f"sqlite:///{db}", codec=AesGcmCodec(read_key_file(key))) as store:
        assert store.results("sync").get("session")["token"] == SECRET

    other = write_key_file(tmp_path / "other.key", generate_key())
    wrong = gxo("run", str(second), "--state", f"sqlite:///{db}", "--state-key-file", str(other))
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert "is encrypted with key" in wrong.stderr
    no_key = gxo("run", str(second), "--state", f"sqlite:///{db}")  # HOME has no state.key
    assert no_key.returncode == 2 and "does not exist" in no_key.stderr
    assert not (Path.home() / ".gxo" / "state.key").exists()
    by_cmd = gxo(
        "run", "-v", str(second), "--state", f"sqlite:///{db}", "--state-key-cmd", f"cat {key}"
    )
    assert by_cmd.returncode == 0, by_cmd.stderr
    assert "n=42" in by_cmd.stderr + by_cmd.stdout
