"""ssh:connect, ssh:command, ssh:script, ssh:upload, ssh:download against a real SSH server.

The server (tests/modules/ssh_server.py) is asyncssh's, on 127.0.0.1 in a thread of
this process: commands are real subprocesses, SFTP is chrooted to a temp directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ssh_server import DISCONNECT, PASSPHRASE, PASSWORD, USER, SshServer, serve

from gxo.engine.events import EventKind
from gxo.engine.report import build_report
from gxo.modules.testkit import run_module, run_playbook_text
from gxo.template.secrets import SecretRegistry


@pytest.fixture(scope="module")
def ssh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with serve(tmp_path_factory.mktemp("ssh")) as server:
        yield server


def login(srv: SshServer, **extra: Any) -> dict[str, Any]:
    """Inline connection params: password login, host key checked against known_hosts."""
    params: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": srv.port,
        "username": USER,
        "password": PASSWORD,
        "known_hosts": str(srv.known_hosts),
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


async def until(check: Any, limit: float = 5.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.02)
    return bool(check())


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- connecting and host keys -------------------------------------------------------------


async def test_connect_with_password_then_command_by_connection_id(
    ssh: SshServer, tmp_path: Path
) -> None:
    text = f"""
schemaVersion: "1.0.0"
name: ssh-connect
workloads:
  - name: conn
    process:
      module: ssh:connect
      params:
        host: 127.0.0.1
        port: {ssh.port}
        username: {USER}
        password: "{{{{ secret('SSH_PW') }}}}"
        known_hosts: {ssh.known_hosts}
    register: conn
  - name: hello
    process:
      module: ssh:command
      params:
        connection_id: "{{{{ conn.connection_id }}}}"
        command: "echo hello; echo oops >&2; printf 'no newline'"
    register: hello
"""
    result = await run_playbook_text(
        text, secrets=SecretRegistry(provider={"SSH_PW": PASSWORD}.get), workspace=tmp_path
    )
    assert result.status == "Completed", {n: s.error for n, s in result.states.items()}
    conn = result.states["conn"].summary
    assert conn["host"] == "127.0.0.1" and conn["port"] == ssh.port and conn["user"] == USER
    assert conn["host_key_fingerprint"] == ssh.fingerprint
    assert (conn["host_key_verified"], conn["reused"]) == (True, False)
    hello = result.states["hello"].summary
    assert hello["stdout"] == "hello\nno newline"
    assert hello["stdout_lines"] == ["hello", "no newline"]
    assert (hello["stderr"], hello["exit_code"], hello["timed_out"]) == ("oops", 0, False)
    assert hello["connection_id"] == conn["connection_id"]
    logs = [line for _, stream, line in result.states["hello"].logs if stream != "log"]
    assert logs == ["hello", "oops", "no newline"] or sorted(logs) == sorted(
        ["hello", "oops", "no newline"]
    )
    assert PASSWORD not in json.dumps(build_report(result), default=str)


async def test_key_auth_from_file_text_and_encrypted_file(ssh: SshServer) -> None:
    for creds in (
        {"private_key_file": str(ssh.client_key_file)},
        {"private_key": ssh.client_key_text},
        {"private_key_file": str(ssh.client_key_encrypted_file), "passphrase": PASSPHRASE},
    ):
        r = await run_module(
            "ssh:command", {**login(ssh, password=None), **creds, "command": "echo key"}
        )
        assert r.ok, (creds.keys(), r.error)
        assert r.summary["stdout"] == "key"
        assert ssh.client_key_text not in json.dumps(r.summary)


@pytest.mark.parametrize(
    ("creds", "message"),
    [
        (
            {"password": "wrong"},
            "SSH login to gxo@127.0.0.1:{port} refused: wrong username, password or key",
        ),
        (
            {"password": None, "private_key_file": "ENC"},
            "private_key_file {enc} is encrypted: give its passphrase",
        ),
        (
            {"password": None, "private_key_file": "ENC", "passphrase": "nope"},
            "private_key_file {enc} is encrypted: wrong passphrase",
        ),
        (
            {"password": None, "private_key": "not a key"},
            "private_key is not a private key (OpenSSH or PEM)",
        ),
        (
            {"password": None, "private_key_file": "missing_key"},
            "cannot read private_key_file {missing}: No such file or directory",
        ),
    ],
)
async def test_login_failures_are_clear(
    ssh: SshServer, tmp_path: Path, creds: dict[str, Any], message: str
) -> None:
    if creds.get("private_key_file") == "ENC":
        creds = {**creds, "private_key_file": str(ssh.client_key_encrypted_file)}
    r = await run_module("ssh:connect", login(ssh, **creds), workspace=tmp_path)
    assert r.status == "Failed"
    assert r.error == message.format(
        port=ssh.port, enc=ssh.client_key_encrypted_file, missing=tmp_path / "missing_key"
    )


async def test_pinned_host_key_line_and_fingerprint(ssh: SshServer) -> None:
    for pin in (ssh.host_key_line, ssh.fingerprint, f"[127.0.0.1]:{ssh.port} {ssh.host_key_line}"):
        r = await run_module("ssh:connect", login(ssh, known_hosts=None, host_key=pin))
        assert r.ok, (pin, r.error)
        assert r.summary["host_key_fingerprint"] == ssh.fingerprint


async def test_wrong_host_key_is_refused(ssh: SshServer) -> None:
    accepted = ssh.accepted
    r = await run_module("ssh:connect", login(ssh, known_hosts=str(ssh.wrong_known_hosts)))
    assert r.status == "Failed"
    assert r.error == (
        f"SSH host key verification failed for 127.0.0.1:{ssh.port}: the server's key "
        f"{ssh.fingerprint} is not in known_hosts {ssh.wrong_known_hosts}"
    )
    other = "SHA256:" + "A" * 43
    r = await run_module(
        "ssh:command", {**login(ssh, known_hosts=None, host_key=other), "command": "true"}
    )
    assert r.status == "Failed"
    assert r.error == (
        f"SSH host key verification failed for 127.0.0.1:{ssh.port}: the server's key "
        f"{ssh.fingerprint} does not match the pinned host_key"
    )
    assert ssh.accepted == accepted + 2  # it connected, and stopped at the key


async def test_unknown_host_without_known_hosts_is_refused(
    ssh: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gxo.modules.protocol import _ssh

    monkeypatch.setattr(_ssh, "DEFAULT_KNOWN_HOSTS", str(tmp_path / "no_such_known_hosts"))
    r = await run_module("ssh:connect", login(ssh, known_hosts=None))
    assert r.status == "Failed"
    assert r.error == (
        f"SSH host key verification failed for 127.0.0.1:{ssh.port}: the server's key "
        f"{ssh.fingerprint} is not in {tmp_path / 'no_such_known_hosts'} (no known_hosts or "
        "host_key given); add it there, pin it with host_key, or set insecure_skip_host_key_check: true"
    )
    # The default file is used when it exists.
    (tmp_path / "no_such_known_hosts").write_text(ssh.known_hosts.read_text())
    r = await run_module("ssh:connect", login(ssh, known_hosts=None))
    assert r.ok, r.error


async def test_insecure_flag_warns_and_connects(ssh: SshServer) -> None:
    r = await run_module(
        "ssh:connect", login(ssh, known_hosts=None, insecure_skip_host_key_check=True)
    )
    assert r.ok, r.error
    assert r.summary["host_key_verified"] is False
    warnings = [
        e.data["line"]
        for e in r.events
        if e.kind == EventKind.LOG and e.data.get("level") == "warning"
    ]
    assert warnings == [
        f"WARNING: the host key of 127.0.0.1:{ssh.port} is not checked "
        "(insecure_skip_host_key_check: true): a man-in-the-middle would not be noticed"
    ]


async def test_bad_known_hosts_files(ssh: SshServer, tmp_path: Path) -> None:
    r = await run_module("ssh:connect", login(ssh, known_hosts="nope"), workspace=tmp_path)
    assert r.error == f"known_hosts file not found: {tmp_path / 'nope'}"
    bad = tmp_path / "bad"
    bad.write_text("127.0.0.1 ssh-ed25519 !!!notbase64\n")
    r = await run_module("ssh:connect", login(ssh, known_hosts=str(bad)))
    assert r.error.startswith(  # a line that is not a key trusts nothing
        f"SSH host key verification failed for 127.0.0.1:{ssh.port}: the server's key "
    )
    r = await run_module("ssh:connect", login(ssh, known_hosts=None, host_key="garbage"))
    assert r.error == (
        "host_key must be an OpenSSH public key line (ssh-ed25519 AAAA...) or a fingerprint (SHA256:...)"
    )


async def test_connection_refused_and_timeout() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        r = await run_module(
            "ssh:connect",
            {
                "host": "127.0.0.1",
                "port": port,
                "username": "u",
                "password": "p",
                "connect_timeout": "300ms",
            },
        )
        assert r.status == "Failed"
        assert r.error.startswith(f"SSH connection to u@127.0.0.1:{port} failed: ")
        s.listen()  # accepts, never speaks SSH
        started = time.monotonic()
        r = await run_module(
            "ssh:connect",
            {
                "host": "127.0.0.1",
                "port": port,
                "username": "u",
                "password": "p",
                "connect_timeout": "300ms",
            },
        )
        assert time.monotonic() - started < 3
        assert r.error == f"SSH connection to u@127.0.0.1:{port} timed out after 0.3s"


# -- commands -----------------------------------------------------------------------------


async def test_command_timeout_kills_the_remote_process(ssh: SshServer) -> None:
    started = time.monotonic()
    r = await run_module(
        "ssh:command", {**login(ssh), "command": "echo $$; exec sleep 30", "timeout": "500ms"}
    )
    assert time.monotonic() - started < 5
    assert r.status == "Failed"
    assert r.error == "command timed out after 0.5s; the remote command was killed"
    assert r.summary["timed_out"] is True and r.summary["exit_code"] is None
    pid = int(r.summary["stdout"])
    assert pid in ssh.pids
    assert (pid, "TERM") in ssh.signals  # killed by the signal sent over SSH
    # The remote process (a child of the test server, reaped by it) no longer exists.
    assert await until(lambda: not os.path.exists(f"/proc/{pid}"))


async def test_output_lines_stream_to_the_log_as_they_come(ssh: SshServer) -> None:
    r = await run_module(
        "ssh:command",
        {**login(ssh), "command": "echo first; sleep 0.4; echo second >&2; echo third"},
    )
    assert r.ok, r.error
    lines = {
        e.data["line"]: e.time
        for e in r.events
        if e.kind == EventKind.LOG and e.data.get("stream") in ("stdout", "stderr")
    }
    assert set(lines) == {"first", "second", "third"}
    assert lines["second"] - lines["first"] >= 0.3  # logged before the command ended
    assert ("stderr", "second") in r.logs and ("stdout", "third") in r.logs


async def test_exit_codes_check_env_and_stdin(ssh: SshServer) -> None:
    r = await run_module(
        "ssh:command", {**login(ssh), "command": "echo partial; echo bad >&2; exit 3"}
    )
    assert r.status == "Failed"
    assert r.error == "command exited with code 3: bad"
    assert (r.summary["exit_code"], r.summary["stdout"]) == (3, "partial")
    r = await run_module("ssh:command", {**login(ssh), "command": f"echo pw={PASSWORD}"})
    assert r.summary["stdout"] == "pw=[REDACTED]"  # a literal password is masked too
    assert PASSWORD not in json.dumps(r.logs)
    r = await run_module("ssh:command", {**login(ssh), "command": "exit 4", "check": False})
    assert r.ok and r.summary["exit_code"] == 4
    r = await run_module("ssh:command", {**login(ssh), "command": "kill -9 $$", "check": False})
    assert r.ok and r.summary["exit_code"] == -9
    r = await run_module(
        "ssh:command",
        {
            **login(ssh),
            "command": 'printf "%s|%s|%s|" "$GREETING" "$N" "$FLAG"; cat',
            "env": {"GREETING": 'it\'s a "test" $HOME', "N": 5, "FLAG": True},
            "stdin": "from stdin",
        },
    )
    assert r.ok, r.error
    assert r.summary["stdout"] == 'it\'s a "test" $HOME|5|true|from stdin'


async def test_pooled_connection_is_reused_and_closed_at_run_end(
    ssh: SshServer, tmp_path: Path
) -> None:
    baseline = open_fds()
    accepted = ssh.accepted
    steps = "\n".join(
        f"""
  - name: c{i}
    {"depends_on: [c" + str(i - 1) + "]" if i else ""}
    process:
      module: ssh:command
      params:
        host: 127.0.0.1
        port: {ssh.port}
        username: {USER}
        private_key_file: {ssh.client_key_file}
        known_hosts: {ssh.known_hosts}
        command: echo {i}"""
        for i in range(3)
    )
    text = f"""
schemaVersion: "1.0.0"
name: ssh-pool
workloads:
  - name: conn
    process:
      module: ssh:connect
      params: {{ host: 127.0.0.1, port: {ssh.port}, username: {USER}, password: {PASSWORD}, known_hosts: {ssh.known_hosts} }}
  - name: again
    depends_on: [conn]
    process:
      module: ssh:connect
      params: {{ host: 127.0.0.1, port: {ssh.port}, username: {USER}, password: {PASSWORD}, known_hosts: {ssh.known_hosts} }}
{steps}
"""
    result = await run_playbook_text(text, workspace=tmp_path)
    assert result.status == "Completed", {n: s.error for n, s in result.states.items()}
    assert [result.states[f"c{i}"].summary["stdout"] for i in range(3)] == ["0", "1", "2"]
    conn_id = result.states["conn"].summary["connection_id"]
    assert result.states["again"].summary == {**result.states["conn"].summary, "reused": True}
    assert {result.states[f"c{i}"].summary["connection_id"] for i in range(3)} == {conn_id}
    assert ssh.accepted == accepted + 1  # one login for five workloads
    assert any("reusing SSH connection" in line for _, _, line in result.states["c2"].logs)
    # The run closed it: no connection left open on the server, no fd left here.
    assert await until(lambda: ssh.open_connections() == 0)
    assert await until(lambda: open_fds() <= baseline), (open_fds(), baseline)


async def test_unknown_connection_id(ssh: SshServer) -> None:
    r = await run_module("ssh:command", {"connection_id": "nope", "command": "true"})
    assert r.status == "Failed"
    assert r.error == "unknown or closed connection_id 'nope'"


# -- scripts ------------------------------------------------------------------------------


async def test_script_with_args_runs_and_is_removed(ssh: SshServer, tmp_path: Path) -> None:
    script = tmp_path / "show.sh"
    script.write_text(
        '#!/bin/sh\necho "n=$#"\nfor a in "$@"; do echo "[$a]"; done\necho "$STAGE" >&2\n'
    )
    r = await run_module(
        "ssh:script",
        {
            **login(ssh),
            "script_path": "show.sh",
            "script_args": ["a b", "c'd", 3, True],
            "env": {"STAGE": "prod"},
        },
        workspace=tmp_path,
    )
    assert r.ok, r.error
    assert r.summary["stdout_lines"] == ["n=4", "[a b]", "[c'd]", "[3]", "[true]"]
    assert r.summary["stderr"] == "prod"
    remote = r.summary["remote_path"]
    assert "gxo-script." in remote
    assert not os.path.exists(remote)  # the "remote" host is this one: removed
    failing = tmp_path / "fail.py"
    failing.write_text("#!/usr/bin/env python3\nimport sys\nprint('py here')\nsys.exit(7)\n")
    r = await run_module("ssh:script", {**login(ssh), "script_path": "fail.py"}, workspace=tmp_path)
    assert r.status == "Failed"
    assert r.error == "script fail.py exited with code 7: py here"
    ssh.tmpdir = str(tmp_path / "no-such-tmp")  # the remote mktemp fails
    try:
        r = await run_module(
            "ssh:script", {**login(ssh), "script_path": "show.sh"}, workspace=tmp_path
        )
    finally:
        ssh.tmpdir = None
    assert r.error.startswith("cannot copy script show.sh to the remote host: mktemp: ")
    r = await run_module(
        "ssh:script", {**login(ssh), "script_path": "missing.sh"}, workspace=tmp_path
    )
    assert (
        r.error == f"cannot read script_path {tmp_path / 'missing.sh'}: No such file or directory"
    )
    r = await run_module("ssh:script", {**login(ssh), "script_path": "."}, workspace=tmp_path)
    assert r.error == f"script_path is a directory: {tmp_path}"


# -- SFTP ---------------------------------------------------------------------------------


async def test_upload_is_idempotent_with_checksum_and_mode(ssh: SshServer, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    (tmp_path / "blob.bin").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    params = {**login(ssh), "local": "blob.bin", "remote": "/up-blob.bin", "mode": "0640"}
    r = await run_module("ssh:upload", params, workspace=tmp_path)
    assert r.ok, r.error
    s = r.summary
    assert (s["changed"], s["checksum"], s["size"], s["mode"]) == (True, digest, len(data), "0640")
    target = ssh.sftp_root / "up-blob.bin"
    assert target.read_bytes() == data and oct(target.stat().st_mode & 0o777) == "0o640"
    r = await run_module("ssh:upload", params, workspace=tmp_path)
    assert (r.summary["changed"], r.summary["checksum"]) == (False, digest)
    r = await run_module("ssh:upload", {**params, "mode": "0600"}, workspace=tmp_path)
    assert (r.summary["changed"], r.summary["mode"]) == (True, "0600")
    assert target.stat().st_mode & 0o777 == 0o600
    (tmp_path / "blob.bin").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size
    r = await run_module("ssh:upload", params, workspace=tmp_path)
    assert r.summary["changed"] is True
    assert target.read_bytes()[-1] == data[-1] ^ 1
    assert sorted(p.name for p in ssh.sftp_root.iterdir() if "gxo-" in p.name) == []
    (ssh.sftp_root / "dir").mkdir()
    r = await run_module("ssh:upload", {**params, "remote": "/dir"}, workspace=tmp_path)
    assert r.ok and r.summary["remote"] == "/dir/blob.bin"
    assert (ssh.sftp_root / "dir" / "blob.bin").exists()


async def test_upload_errors(ssh: SshServer, tmp_path: Path) -> None:
    r = await run_module(
        "ssh:upload", {**login(ssh), "local": "nope", "remote": "/x"}, workspace=tmp_path
    )
    assert r.error == f"cannot read local file {tmp_path / 'nope'}: No such file or directory"
    r = await run_module(
        "ssh:upload", {**login(ssh), "local": ".", "remote": "/x"}, workspace=tmp_path
    )
    assert r.error == f"local is not a regular file: {tmp_path}"
    (tmp_path / "f").write_text("x")
    r = await run_module(
        "ssh:upload", {**login(ssh), "local": "f", "remote": "/no/such/dir/f"}, workspace=tmp_path
    )
    assert r.status == "Failed"
    assert r.error.startswith(f"cannot upload {tmp_path / 'f'} to /no/such/dir/f: ")


async def test_download_is_idempotent_with_checksum(ssh: SshServer, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    (ssh.sftp_root / "down.bin").write_bytes(data)
    (ssh.sftp_root / "down.bin").chmod(0o640)
    digest = hashlib.sha256(data).hexdigest()
    params = {**login(ssh), "remote": "/down.bin", "local": "got.bin"}
    r = await run_module("ssh:download", params, workspace=tmp_path)
    assert r.ok, r.error
    s = r.summary
    assert (s["changed"], s["checksum"], s["size"], s["mode"]) == (True, digest, len(data), "0640")
    assert (tmp_path / "got.bin").read_bytes() == data
    r = await run_module("ssh:download", params, workspace=tmp_path)
    assert (r.summary["changed"], r.summary["checksum"], r.summary["mode"]) == (
        False,
        digest,
        "0640",
    )
    r = await run_module("ssh:download", {**params, "mode": "0600"}, workspace=tmp_path)
    assert (r.summary["changed"], r.summary["mode"]) == (True, "0600")
    (tmp_path / "got.bin").write_bytes(b"\0" * len(data))  # same size, other bytes
    r = await run_module("ssh:download", params, workspace=tmp_path)
    assert r.summary["changed"] is True and (tmp_path / "got.bin").read_bytes() == data
    assert (tmp_path / "got.bin").stat().st_mode & 0o777 == 0o600  # an existing file keeps its mode
    (tmp_path / "into").mkdir()
    r = await run_module("ssh:download", {**params, "local": "into"}, workspace=tmp_path)
    assert r.summary["local"] == str(tmp_path / "into" / "down.bin")
    assert sorted(p.name for p in tmp_path.iterdir() if "gxo-" in p.name) == []


async def test_download_errors(ssh: SshServer, tmp_path: Path) -> None:
    r = await run_module(
        "ssh:download", {**login(ssh), "remote": "/missing", "local": "x"}, workspace=tmp_path
    )
    assert r.error == "remote file not found: /missing"
    r = await run_module(
        "ssh:download", {**login(ssh), "remote": "/", "local": "x"}, workspace=tmp_path
    )
    assert r.error == "remote is not a regular file: /"


# -- params -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "params", "message"),
    [
        ("ssh:connect", {"port": 22, "password": "p"}, "host is required"),
        (
            "ssh:command",
            {"command": "x", "password": "p"},
            "host is required (or connection_id from ssh:connect)",
        ),
        (
            "ssh:command",
            {"command": "x", "connection_id": "c", "host": "h"},
            "give either connection_id or connection params, not both (got host)",
        ),
        (
            "ssh:connect",
            {"host": "h"},
            "no credentials: give password, private_key, private_key_file or agent: true",
        ),
        (
            "ssh:connect",
            {"host": "h", "private_key": "k", "private_key_file": "f"},
            "give private_key or private_key_file, not both",
        ),
        (
            "ssh:connect",
            {"host": "h", "password": "p", "passphrase": "x"},
            "passphrase needs private_key or private_key_file",
        ),
        (
            "ssh:connect",
            {
                "host": "h",
                "password": "p",
                "known_hosts": "k",
                "insecure_skip_host_key_check": True,
            },
            "insecure_skip_host_key_check: true ignores known_hosts and host_key",
        ),
        (
            "ssh:connect",
            {"host": "h", "password": "p", "known_hosts": "k", "host_key": "SHA256:x"},
            "give known_hosts or host_key, not both",
        ),
        (
            "ssh:connect",
            {"host": "h", "password": "p", "connect_timeout": 0},
            "connect_timeout must be more than 0",
        ),
        ("ssh:connect", {"host": "h", "password": "p", "port": 70000}, "port"),
        (
            "ssh:command",
            {"host": "h", "password": "p", "command": "x", "connect_timeout": -1},
            "invalid duration",
        ),
        (
            "ssh:upload",
            {"host": "h", "password": "p", "local": "a", "remote": "b", "connect_timeout": 0},
            "connect_timeout must be more than 0",
        ),
        ("ssh:command", {"host": "h", "password": "p"}, "command"),
        (
            "ssh:command",
            {"host": "h", "password": "p", "command": "x", "timeout": 0},
            "timeout must be more than 0",
        ),
        (
            "ssh:command",
            {"host": "h", "password": "p", "command": "x", "env": {"A-B": "1"}},
            "invalid environment variable name(s): A-B",
        ),
        (
            "ssh:command",
            {"host": "h", "password": "p", "command": "x", "env": ["A=1"]},
            "env",
        ),
        (
            "ssh:script",
            {"host": "h", "password": "p", "script_path": "s", "script_args": "a b"},
            "script_args",
        ),
        (
            "ssh:upload",
            {"host": "h", "password": "p", "local": "a", "remote": "b", "mode": 644},
            "mode must be a quoted octal string",
        ),
        ("ssh:script", {"host": "h", "password": "p"}, "script_path"),
    ],
)
async def test_bad_params(module: str, params: dict[str, Any], message: str) -> None:
    r = await run_module(module, params)
    assert r.status == "Failed"
    assert message in r.error, r.error
    assert "Traceback" not in r.error


async def test_agent_login(ssh: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """agent: true logs in with a key held by a real ssh-agent (and none on disk)."""
    sock = tmp_path / "agent.sock"
    agent = await asyncio.create_subprocess_exec(
        "ssh-agent", "-D", "-a", str(sock), stdout=asyncio.subprocess.DEVNULL
    )
    try:
        assert await until(sock.exists)
        add = await asyncio.create_subprocess_exec(
            "ssh-add",
            str(ssh.client_key_file),
            env={**os.environ, "SSH_AUTH_SOCK": str(sock)},
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert await add.wait() == 0
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh keys to fall back on
        r = await run_module(
            "ssh:command", {**login(ssh, password=None, agent=True), "command": "echo agent"}
        )
        assert r.ok, r.error
        assert r.summary["stdout"] == "agent"
        monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "no-agent"))
        r = await run_module("ssh:connect", login(ssh, password=None, agent=True))
        assert (
            r.error
            == f"SSH login to {USER}@127.0.0.1:{ssh.port} refused: wrong username, password or key"
        )
    finally:
        agent.terminate()
        await agent.wait()


async def test_pooled_connection_checks_a_pinned_key_and_reconnects_after_a_drop(
    ssh: SshServer, tmp_path: Path
) -> None:
    def step(name: str, after: str | None, command: str, pin: str) -> str:
        return f"""
  - name: {name}
    {f"depends_on: [{after}]" if after else ""}
    ignore_errors: true
    process:
      module: ssh:command
      params:
        host: 127.0.0.1
        port: {ssh.port}
        username: {USER}
        password: {PASSWORD}
        host_key: "{pin}"
        command: {command}"""

    other = "SHA256:" + "B" * 43
    text = 'schemaVersion: "1.0.0"\nname: ssh-pins\nworkloads:' + "".join(
        [
            step("first", None, "echo 1", ssh.fingerprint),
            step("line", "first", "echo 2", ssh.host_key_line),
            step("wrong", "line", "echo 3", other),
            step("drop", "wrong", DISCONNECT, ssh.fingerprint),
            step("after", "drop", "echo 4", ssh.fingerprint),
        ]
    )
    accepted = ssh.accepted
    result = await run_playbook_text(text, workspace=tmp_path)
    states = result.states
    assert states["first"].summary["stdout"] == "1"
    assert states["line"].summary["stdout"] == "2"
    assert states["wrong"].error == (
        f"SSH host key verification failed for 127.0.0.1:{ssh.port}: the server's key "
        f"{ssh.fingerprint} does not match the pinned host_key"
    )
    assert states["drop"].status.value == "Failed"
    assert states["after"].summary["stdout"] == "4"
    assert states["after"].summary["connection_id"] != states["first"].summary["connection_id"]
    assert ssh.accepted == accepted + 2  # the first login, and one after the drop


async def test_a_command_ignoring_sigterm_gets_sigkill(
    ssh: SshServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gxo.modules.protocol import _ssh

    monkeypatch.setattr(_ssh, "KILL_GRACE", 0.3)
    r = await run_module(
        "ssh:command",
        {**login(ssh), "command": "trap '' TERM; echo $$; exec sleep 30", "timeout": "300ms"},
    )
    assert r.error == "command timed out after 0.3s; the remote command was killed"
    pid = int(r.summary["stdout"])
    assert [name for p, name in ssh.signals if p == pid] == ["TERM", "KILL"]
    assert await until(lambda: not os.path.exists(f"/proc/{pid}"))


async def test_cancelling_the_workload_kills_the_remote_command(ssh: SshServer) -> None:
    r = await run_module(
        "ssh:command",
        {**login(ssh), "command": "echo $$; exec sleep 30"},
        workload={"timeout": "500ms"},
    )
    assert r.status == "Failed"
    pid = next(int(line) for stream, line in r.logs if stream == "stdout")
    assert (pid, "TERM") in ssh.signals
    assert await until(lambda: not os.path.exists(f"/proc/{pid}"))


async def test_long_lines_and_big_output_are_capped(
    ssh: SshServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gxo.modules.protocol import _ssh

    monkeypatch.setattr(_ssh, "MAX_CAPTURE", 20_000)
    r = await run_module(
        "ssh:command",
        {**login(ssh), "command": "head -c 30000 /dev/zero | tr '\\0' x; echo; echo end"},
    )
    assert r.ok, r.error
    assert r.summary["stdout"].endswith("\n[... output truncated at 20000 bytes]")
    assert r.summary["stdout"].startswith("x" * 8192)
    logged = [line for stream, line in r.logs if stream == "stdout"]
    assert logged == ["x" * 8192 + " [... 21808 more bytes]", "end"]


async def test_more_transfer_errors(ssh: SshServer, tmp_path: Path) -> None:
    (ssh.sftp_root / "small.txt").write_text("small")
    r = await run_module(
        "ssh:download",
        {**login(ssh), "remote": "/small.txt", "local": "/dev/null"},
        workspace=tmp_path,
    )
    assert r.error == "local is not a regular file: /dev/null"
    r = await run_module(
        "ssh:download",
        {**login(ssh), "remote": "/small.txt", "local": "nodir/x"},
        workspace=tmp_path,
    )
    assert r.error.startswith(f"cannot download /small.txt to {tmp_path / 'nodir' / 'x'}: ")
    r = await run_module("ssh:connect", login(ssh, known_hosts=str(tmp_path)))
    assert r.error.startswith(f"cannot read known_hosts {tmp_path}: ")


async def test_check_mode_predicts_transfers_and_runs_only_safe_commands(
    ssh: SshServer, tmp_path: Path
) -> None:
    (tmp_path / "new.txt").write_text("new content")
    (ssh.sftp_root / "same.txt").write_text("same")
    (tmp_path / "same.txt").write_text("same")
    (ssh.sftp_root / "remote.txt").write_text("remote content")
    creds = (
        f"host: 127.0.0.1, port: {ssh.port}, username: {USER}, password: {PASSWORD}, "
        f"known_hosts: {ssh.known_hosts}"
    )
    text = f"""
schemaVersion: "1.0.0"
name: ssh-check
workloads:
  - name: conn
    process: {{ module: ssh:connect, params: {{ {creds} }} }}
  - name: up_new
    process: {{ module: ssh:upload, params: {{ {creds}, local: new.txt, remote: /new.txt }} }}
  - name: up_same
    process: {{ module: ssh:upload, params: {{ {creds}, local: same.txt, remote: /same.txt }} }}
  - name: down_new
    process: {{ module: ssh:download, params: {{ {creds}, remote: /remote.txt, local: remote.txt }} }}
  - name: down_mode
    process: {{ module: ssh:download, params: {{ {creds}, remote: /same.txt, local: same.txt, mode: "0600" }} }}
  - name: looks
    process: {{ module: ssh:command, params: {{ {creds}, command: "echo looked", check_mode: safe }} }}
  - name: writes
    process: {{ module: ssh:command, params: {{ {creds}, command: "touch /tmp/x" }} }}
  - name: lookup
    process: {{ module: dns:query, params: {{ name: x.test, server: 127.0.0.1, port: 1, timeout: 100ms }} }}
    ignore_errors: true
"""
    (tmp_path / "same.txt").chmod(0o644)
    result = await run_playbook_text(text, check=True, workspace=tmp_path)
    s = {name: st.summary for name, st in result.states.items()}
    assert s["conn"]["host_key_verified"] is True  # safe: it ran
    assert (s["up_new"]["changed"], s["up_new"]["checksum"]) == (
        True,
        hashlib.sha256(b"new content").hexdigest(),
    )
    assert s["up_same"]["changed"] is False
    assert (s["down_new"]["changed"], s["down_new"]["size"]) == (True, len("remote content"))
    assert s["down_new"]["checksum"] == hashlib.sha256(b"remote content").hexdigest()
    assert (s["down_mode"]["changed"], s["down_mode"]["mode"]) == (True, "0600")
    assert s["looks"]["stdout"] == "looked"
    assert result.states["writes"].status.value == "Skipped"
    assert "set check_mode: safe" in result.states["writes"].reason
    assert result.states["lookup"].error.startswith("DNS query A x.test to 127.0.0.1:1")  # it ran
    # Nothing was written on either side.
    assert not (ssh.sftp_root / "new.txt").exists()
    assert not (tmp_path / "remote.txt").exists()
    assert (tmp_path / "same.txt").stat().st_mode & 0o777 == 0o644


async def test_confined_run_refuses_the_agent_and_outside_key_files(
    ssh: SshServer, tmp_path: Path
) -> None:
    from gxo.engine.confine import Confinement

    text = f"""
schemaVersion: "1.0.0"
name: ssh-confined
workloads:
  - name: agent
    process:
      module: ssh:connect
      params: {{ host: 127.0.0.1, port: {ssh.port}, username: {USER}, agent: true, host_key: "{ssh.fingerprint}" }}
  - name: keyfile
    process:
      module: ssh:connect
      params:
        host: 127.0.0.1
        port: {ssh.port}
        username: {USER}
        private_key_file: "{{{{ '{ssh.client_key_file}' }}}}"
        host_key: "{ssh.fingerprint}"
"""
    result = await run_playbook_text(text, workspace=Confinement(tmp_path))
    assert result.states["agent"].error == (
        "agent: true is refused in a confined run (the daemon, gxo run --confine): "
        "it would log in with the keys of the user running GXO; give private_key"
    )
    assert "outside the workspace" in result.states["keyfile"].error


async def test_a_connection_id_whose_connection_dropped_fails_clearly(
    ssh: SshServer, tmp_path: Path
) -> None:
    creds = (
        f"host: 127.0.0.1, port: {ssh.port}, username: {USER}, password: {PASSWORD}, "
        f"known_hosts: {ssh.known_hosts}"
    )
    text = f"""
schemaVersion: "1.0.0"
name: ssh-dropped
workloads:
  - name: conn
    process: {{ module: ssh:connect, params: {{ {creds} }} }}
    register: conn
  - name: drop
    ignore_errors: true
    process: {{ module: ssh:command, params: {{ connection_id: "{{{{ conn.connection_id }}}}", command: {DISCONNECT} }} }}
  - name: run
    depends_on: [drop]
    ignore_errors: true
    process: {{ module: ssh:command, params: {{ connection_id: "{{{{ conn.connection_id }}}}", command: "true" }} }}
  - name: get
    depends_on: [drop]
    ignore_errors: true
    process: {{ module: ssh:download, params: {{ connection_id: "{{{{ conn.connection_id }}}}", remote: /x, local: x }} }}
"""
    result = await run_playbook_text(text, workspace=tmp_path)
    assert (
        result.states["drop"].error
        == "command ended without an exit status: the connection was lost"
    )
    gone = "the connection is closed (the server or the network dropped it)"
    assert result.states["run"].error == f"cannot run a command over SSH: {gone}"
    assert result.states["get"].error == f"cannot start SFTP over SSH: {gone}"
