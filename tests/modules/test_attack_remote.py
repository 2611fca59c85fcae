"""Regression tests for what attacking the ssh:* modules (issue 13) found: a pooled
connection was reused for a request whose own known_hosts does not trust the server
(host key verification skipped on reuse). Against the real SSH server of
tests/modules/ssh_server.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ssh_server import PASSWORD, USER, SshServer, serve

from gxo.modules.testkit import run_playbook_text


@pytest.fixture(scope="module")
def ssh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with serve(tmp_path_factory.mktemp("ssh-attack")) as server:
        yield server


def step(ssh: SshServer, name: str, after: str | None, known_hosts: Path | None) -> str:
    trust = f'known_hosts: "{known_hosts}"' if known_hosts is not None else ""
    return f"""
  - name: {name}
    {f"depends_on: [{after}]" if after else ""}
    when: "always()"
    process:
      module: ssh:command
      params:
        host: 127.0.0.1
        port: {ssh.port}
        username: {USER}
        password: {PASSWORD}
        {trust}
        command: echo {name}"""


async def test_a_pooled_connection_is_reused_only_where_known_hosts_trusts_the_server(
    ssh: SshServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/known_hosts
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    text = 'schemaVersion: "1.0.0"\nname: ssh-reuse\nworkloads:' + "".join(
        [
            step(ssh, "first", None, ssh.known_hosts),
            step(ssh, "wrong", "first", ssh.wrong_known_hosts),
            step(ssh, "empty", "wrong", empty),
            step(ssh, "default", "empty", None),
            step(ssh, "again", "default", ssh.known_hosts),
        ]
    )
    accepted = ssh.accepted
    result = await run_playbook_text(text, workspace=tmp_path)
    states = result.states
    assert states["first"].summary["stdout"] == "first"
    for name, where in (("wrong", ssh.wrong_known_hosts), ("empty", empty)):
        assert states[name].status.value == "Failed"
        assert states[name].error == (
            f"SSH host key verification failed for 127.0.0.1:{ssh.port}: the server's key "
            f"{ssh.fingerprint} is not in known_hosts {where}"
        )
    # No known_hosts: ~/.ssh/known_hosts, which this HOME does not have.
    assert states["default"].error == (
        f"SSH host key verification failed for 127.0.0.1:{ssh.port}: the server's key "
        f"{ssh.fingerprint} is not in ~/.ssh/known_hosts (no known_hosts or host_key given); "
        "add it there, pin it with host_key, or set insecure_skip_host_key_check: true"
    )
    # The trusted request still reuses the connection: one login in all.
    assert states["again"].summary["stdout"] == "again"
    assert states["again"].summary["connection_id"] == states["first"].summary["connection_id"]
    assert ssh.accepted == accepted + 1
