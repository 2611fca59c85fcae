"""State keys: the key file's checks, --state-key-cmd, the default ~/.gxo/state.key, and the
``gxo admin state-key generate`` / ``gxo admin rekey-state`` commands (rekey killed with
SIGKILL at random points, on SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import os
import random
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gxo.state._sql_crypto import open_encrypted_state, rekey_state, resolve_codec, verify_store
from gxo.state.crypto import (
    AesGcmCodec,
    format_key,
    generate_key,
    key_from_command,
    key_id,
    read_key_file,
    write_key_file,
)
from gxo.state.sql import SqlState, StateError

GXO = [sys.executable, "-m", "gxo.cli"]


def gxo(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GXO, *args], capture_output=True, text=True, timeout=timeout)


# -- key files and commands -------------------------------------------------------------


def test_generate_writes_a_0600_key_and_never_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "keys" / "state.key"
    done = gxo("admin", "state-key", "generate", "--out", str(out))
    assert done.returncode == 0, done.stderr
    key = read_key_file(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.parent.stat().st_mode) == 0o700
    assert out.read_text() == format_key(key) and len(key) == 32
    assert f"key {key_id(key)}" in done.stdout and out.read_text().strip() not in done.stdout
    again = gxo("admin", "state-key", "generate", "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert "Traceback" not in again.stderr and read_key_file(out) == key


def test_a_key_file_others_can_read_or_another_user_owns_is_refused(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "k", generate_key())
    os.chmod(path, 0o640)
    with pytest.raises(StateError, match=r"--state-key-file .*/k: mode 0640 .* must be 0600"):
        read_key_file(path)
    os.chmod(path, 0o600)
    if os.geteuid() == 0:  # root can give the file away: the owner check is real
        os.chown(path, 65534, -1)
        with pytest.raises(StateError, match=r"owned by uid 65534, not by this user"):
            read_key_file(path)
        os.chown(path, 0, -1)
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(StateError, match="cannot open"):
        read_key_file(link)
    (tmp_path / "bad").write_text("not base64 at all!\n")
    os.chmod(tmp_path / "bad", 0o600)
    with pytest.raises(StateError, match="not a state key") as bad:
        read_key_file(tmp_path / "bad")
    assert "not base64 at all" not in str(bad.value)  # a mistyped key is never echoed
    with pytest.raises(StateError, match="no such file"):
        read_key_file(tmp_path / "missing")


def test_key_command(tmp_path: Path) -> None:
    key = generate_key()
    script = tmp_path / "kms"
    script.write_text(f"#!/bin/sh\necho {format_key(key).strip()}\n")
    script.chmod(0o700)
    assert key_from_command(str(script)) == key
    failing = tmp_path / "failing"
    failing.write_text("#!/bin/sh\necho SECRETOUT\necho 'vault: permission denied' >&2\nexit 3\n")
    failing.chmod(0o700)
    with pytest.raises(StateError) as err:
        key_from_command(str(failing))
    assert "exited 3: vault: permission denied" in str(err.value)
    assert "SECRETOUT" not in str(err.value)  # stdout is the key: never shown
    with pytest.raises(StateError, match=r"did not finish within 0\.5s"):
        key_from_command("sleep 5", timeout=0.5)
    with pytest.raises(StateError, match="no-such-kms: command not found"):
        key_from_command("no-such-kms get key")
    with pytest.raises(StateError, match=r"--state-key-cmd \(echo's stdout\): not a state key"):
        key_from_command("echo short")


def test_the_default_key_is_created_once_and_never_for_an_encrypted_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home_key = Path.home() / ".gxo" / "state.key"  # HOME is a temp dir (tests/conftest.py)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with caplog.at_level(logging.WARNING, logger="gxo.state"):
        state = open_encrypted_state(url, None, None)
    state.set_status("p", "w", {"status": "Running"})
    state.close()
    assert stat.S_IMODE(home_key.stat().st_mode) == 0o600
    assert f"created the state key {home_key}" in caplog.text
    assert resolve_codec(url, None, None).kid == key_id(read_key_file(home_key))
    home_key.unlink()
    with pytest.raises(StateError) as err:
        resolve_codec(url, None, None)
    assert f"the default key {home_key} does not exist" in str(err.value)
    assert "--state-key-file FILE or --state-key-cmd CMD" in str(err.value)
    assert not home_key.exists()  # no new key for an existing encrypted store
    with pytest.raises(StateError, match="not both"):
        resolve_codec(url, str(home_key), "echo x")


# -- rekey --------------------------------------------------------------------------------

ROWS = 1500


def _fill(url: str, key: bytes) -> dict[str, Any]:
    with SqlState(url, codec=AesGcmCodec(key)) as state:
        state.put_playbook("pb", source="s: 1", path="/p", checksum="c", variables={"v": 1})
        results = state.results("pb")
        with state.batch():
            for i in range(ROWS):
                state.set_status("pb", f"w{i}", {"status": "Completed", "n": i, "pad": "x" * 100})
                results.set(f"k{i}", {"n": i, "secret": f"s{i}"})
        return _snapshot(state)


def _snapshot(state: SqlState) -> dict[str, Any]:
    return {
        "statuses": state.list_statuses(),
        "results": state._load_results("pb"),
        "playbook": state.get_playbook("pb"),
    }


def _opens_with(url: str, key: bytes) -> dict[str, Any] | None:
    try:
        state = SqlState(url, codec=AesGcmCodec(key))
    except StateError as e:
        assert "encrypted with key" in str(e), e
        return None
    try:
        assert verify_store(state) == 2 * ROWS + 4
        return _snapshot(state)
    finally:
        state.close()


def _key_files(tmp_path: Path) -> tuple[bytes, Path, bytes, Path]:
    a, b = generate_key(), generate_key()
    return a, write_key_file(tmp_path / "a.key", a), b, write_key_file(tmp_path / "b.key", b)


def _rekey_cmd(url: str, old: Path, new: Path) -> list[str]:
    keys = ["--old-key-file", str(old), "--new-key-file", str(new)]
    return [*GXO, "admin", "rekey-state", "--state", url, *keys]


def _kill_loop(url: str, tmp_path: Path, iterations: int) -> dict[str, int]:
    """Rekey back and forth, SIGKILLed at a random moment of each attempt: the store then
    opens with exactly one of the two keys, every row intact."""
    a, a_file, b, b_file = _key_files(tmp_path)
    expected = _fill(url, a)
    started = time.monotonic()
    full = subprocess.run(_rekey_cmd(url, a_file, b_file), capture_output=True, text=True)
    duration = time.monotonic() - started
    assert full.returncode == 0, full.stderr
    assert f"now under key {key_id(b)}" in full.stdout and "all verified" in full.stdout
    current = (b, b_file, a, a_file)
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    outcomes = {"old": 0, "new": 0}
    for _ in range(iterations):
        key, key_file, other, other_file = current
        proc = subprocess.Popen(
            _rekey_cmd(url, key_file, other_file),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.2, 1.1) * duration)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        with_old, with_new = _opens_with(url, key), _opens_with(url, other)
        assert (with_old is None) != (with_new is None), "opens with exactly one key"
        assert (with_old or with_new) == expected
        if with_new is not None:
            outcomes["new"] += 1
            current = (other, other_file, key, key_file)
        else:
            outcomes["old"] += 1
    # Whatever the last kill left, a full rekey still succeeds (leftovers are cleaned).
    key, key_file, other, other_file = current
    done = subprocess.run(_rekey_cmd(url, key_file, other_file), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _opens_with(url, other) == expected and _opens_with(url, key) is None
    return outcomes


@pytest.mark.timeout(600)
def test_rekey_sqlite_killed_at_random_points(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    outcomes = _kill_loop(url, tmp_path, 24)
    assert sum(outcomes.values()) == 24 and outcomes["old"] >= 1  # measured: 14 old, 10 new
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("state.db"))
    assert leftovers == ["state.db"]  # no .rekey copy, no -wal/-journal left behind


@pytest.mark.timeout(600)
def test_rekey_postgresql_killed_at_random_points(
    tmp_path: Path, require_service: Callable[..., None], request: pytest.FixtureRequest
) -> None:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    url = request.getfixturevalue("pg_database")
    outcomes = _kill_loop(url, tmp_path, 20)
    assert sum(outcomes.values()) == 20


def test_rekey_refuses_a_wrong_old_key_and_a_running_daemon(tmp_path: Path) -> None:
    a, a_file, b, b_file = _key_files(tmp_path)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with SqlState(url, codec=AesGcmCodec(a)) as state:
        state.set_status("p", "w", {"status": "Running"})
        # open (as a daemon would be): refused, nothing changed
        with pytest.raises(StateError, match=r"is in use .*stop the daemon first"):
            rekey_state(url, AesGcmCodec(a), AesGcmCodec(b))
    wrong = gxo(*_rekey_cmd(url, b_file, a_file)[len(GXO) :])
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert f"is encrypted with key {key_id(a)}, not with the key given ({key_id(b)})" in (
        " ".join(wrong.stderr.split())
    )
    assert _opens_with_status(url, a) == "Running"
    same = gxo(*_rekey_cmd(url, a_file, a_file)[len(GXO) :])
    assert same.returncode == 2 and "are the same key" in same.stderr


def _opens_with_status(url: str, key: bytes) -> str:
    with SqlState(url, codec=AesGcmCodec(key)) as state:
        return str(state.get_status("p", "w")["status"])
