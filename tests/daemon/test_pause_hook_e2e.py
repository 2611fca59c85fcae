"""A paused() hook under a real ``gxo daemon``: started as soon as the workload it waits
for pauses, it gets the single-use resume token (secret: redacted in logs and reports)
and delivers it; ``gxo ctl resume --token`` with that token resumes the run, and a plain
always() workload downstream still waits for the end of the pause."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.daemon.conftest import DaemonProc

pytestmark = pytest.mark.timeout(120)

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: hooked
workloads:
  - name: approve
    process:
      module: control:wait_for_signal
      params:
        prompt: "Ship {{ 'v2' }}?"
        payload_schema: { type: object, properties: { ok: { type: boolean } }, required: [ok] }
        timeout: 5m
    register: approval
  - name: notify
    depends_on: [approve]
    when: "paused()"
    process:
      module: exec
      params:
        command: sh
        args: ["-c", "printf %s \\"$TOKEN\\" > TOKEN_FILE; echo token=$TOKEN id=$TOKEN_ID"]
        environment:
          TOKEN: "{{ _gxo.pause.token }}"
          TOKEN_ID: "{{ _gxo.pause.token_id }}"
          PATH: /usr/bin:/bin
  - name: after
    depends_on: [approve]
    when: "always()"
    process: { module: control:identity, params: { ok: "{{ approval.payload.ok }}" } }
"""


def _statuses(daemon: DaemonProc) -> dict[str, str]:
    return {f"{r['playbook']}/{r['workload']}": r["status"] for r in daemon.ctl_json("status")}


def _wait(check, what: str, timeout: float = 30, step: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


def test_hook_delivers_the_token_and_it_resumes(daemon: DaemonProc, tmp_path: Path) -> None:
    token_file = tmp_path / "token.txt"
    playbook = daemon.folder / "hooked.gxo.yaml"
    playbook.write_text(PLAYBOOK.replace("TOKEN_FILE", str(token_file)), encoding="utf-8")
    daemon.start()
    applied = daemon.ctl("apply", "-f", str(playbook))
    assert applied.returncode == 0, applied.stderr
    # the hook runs while approve is paused (not after it), and writes the token
    token = _wait(lambda: token_file.exists() and token_file.read_text(), "the hook", 30)
    [row] = daemon.ctl_json("paused")
    assert token.startswith(row["token_id"] + ".") and len(token) > 40
    statuses = _wait(
        lambda: (s := _statuses(daemon)).get("hooked/notify") == "Completed" and s,
        "notify",
        20,
        0.2,
    )
    assert statuses["hooked/approve"] == "Paused"
    assert statuses["hooked/after"] != "Completed"  # a plain always() waits for the end
    # secret-tainted: the hook's log shows it redacted, never in clear
    logs = daemon.ctl("logs", "hooked/notify").stdout
    assert f"id={row['token_id']}" in logs and "token=[REDACTED]" in logs and token not in logs

    resumed = daemon.ctl("resume", "--token", token, "--payload", '{"ok": true}')
    assert resumed.returncode == 0, resumed.stderr
    statuses = _wait(
        lambda: (s := _statuses(daemon)).get("hooked/after") == "Completed" and s, "after", 20, 0.2
    )
    assert statuses["hooked/approve"] == "Completed"
    # the workload_paused event still carries the token for those allowed to resume
    out = daemon.ctl("events", "-o", "json", "--tail", "2000")
    events = [json.loads(line) for line in out.stdout.splitlines()]
    [paused] = [e for e in events if e["kind"] == "workload_paused"]
    assert paused["data"]["token"] == token
    # ... and so does the Paused status event; nothing else does (the hook's are redacted)
    others = [
        e for e in events if e["kind"] != "workload_paused" and e["data"].get("status") != "Paused"
    ]
    assert any(e["workload"] == "notify" for e in others)
    assert token not in json.dumps(others)
