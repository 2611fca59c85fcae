"""``webhook:/PATH`` end to end: a real ``gxo daemon --http 127.0.0.1:<port>`` and real
HTTP requests (httpx).

Each accepted request starts one instance that sees ``_gxo.event`` (method, JSON body,
headers); the HMAC signature is checked; unknown paths, wrong methods and big bodies are
refused; a full queue answers 429 (drop_new) or 503 (block); the secret appears in no
status, event, run or log line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:  # the fixture's class; conftest is not imported as a module
    from tests.daemon.conftest import DaemonProc

pytestmark = pytest.mark.timeout(120)

SECRET = "s3cr3t-hook-key+/="  # '+', '/', '=' as in a base64 secret
SECRET_ENV = "GXO_TEST_WEBHOOK_KEY"

HOOKS = """\
schemaVersion: "1.0.0"
name: hooks
workloads:
  - name: deploy
    lifecycle:
      policy: event_driven
      source: "webhook:/hooks/deploy?secret={{ secret('GXO_TEST_WEBHOOK_KEY') }}&max_body=256"
      max_concurrency: 2
    process:
      module: control:identity
      params:
        method: "{{ _gxo.event.method }}"
        ref: "{{ _gxo.event.data.ref }}"
        tag: "{{ _gxo.event.headers['x-tag'] }}"
        subject: "{{ _gxo.event.subject }}"
        source: "{{ _gxo.event.source }}"
        id: "{{ _gxo.event.id }}"
        env: "{{ _gxo.event.query.env }}"
  - name: open
    lifecycle:
      policy: event_driven
      source: "webhook:/hooks/open?methods=POST,PUT"
    process:
      module: control:identity
      params: { method: "{{ _gxo.event.method }}", data: "{{ _gxo.event.data }}" }
"""

SLOW = """\
schemaVersion: "1.0.0"
name: slow
workloads:
  - name: dropper
    lifecycle:
      policy: event_driven
      source: "webhook:/slow/drop"
      max_concurrency: 1
      queue: 1
      overflow: drop_new
    process: {{ module: exec, params: {{ command: sleep, args: ["{sleep}"] }} }}
  - name: blocker
    lifecycle:
      policy: event_driven
      source: "webhook:/slow/block?timeout=1s"
      max_concurrency: 1
      queue: 1
      overflow: block
    process: {{ module: exec, params: {{ command: sleep, args: ["{sleep}"] }} }}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sign(body: bytes, key: str = SECRET) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def _until(predicate: Any, what: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def _start(daemon: DaemonProc, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    port = _free_port()
    daemon.start("--http", f"127.0.0.1:{port}")
    return f"http://127.0.0.1:{port}"


def _apply(daemon: DaemonProc, name: str, text: str) -> None:
    path = daemon.folder / f"{name}.gxo.yaml"
    path.write_text(text, encoding="utf-8")
    out = daemon.ctl("apply", "-f", str(path))
    assert out.returncode == 0, out.stderr + daemon.logs()


def _summaries(daemon: DaemonProc, ref: str) -> list[dict[str, Any]]:
    workload = ref.split("/")[1]
    return [
        r["report"]["workloads"][workload]["summary"]
        for r in daemon.ctl_json("runs", ref)
        if r["status"] == "Completed"
    ]


def test_requests_become_events_with_method_body_headers_and_hmac(
    daemon: DaemonProc, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = _start(daemon, monkeypatch)
    _apply(daemon, "hooks", HOOKS)
    daemon.wait_status("hooks/deploy", "Running")
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    with httpx.Client(base_url=base, timeout=10) as http:
        good = http.post(
            "/hooks/deploy?env=prod",
            content=body,
            headers={
                "content-type": "application/json",
                "x-tag": "v1",
                "X-Hub-Signature-256": _sign(body),
            },
        )
        assert good.status_code == 202, good.text
        event_id = good.json()["id"]

        bad = http.post(
            "/hooks/deploy", content=body, headers={"X-Hub-Signature-256": _sign(body, "wrong")}
        )
        assert bad.status_code == 401 and "bad" in bad.json()["error"]
        missing = http.post("/hooks/deploy", content=body)
        assert missing.status_code == 401 and "missing" in missing.json()["error"]
        tampered = http.post(
            "/hooks/deploy", content=body + b" ", headers={"X-Hub-Signature-256": _sign(body)}
        )
        assert tampered.status_code == 401

        assert http.post("/hooks/nope", content=b"{}").status_code == 404
        wrong = http.get("/hooks/deploy")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
        big = b"x" * 300  # max_body=256
        assert (
            http.post(
                "/hooks/deploy", content=big, headers={"X-Hub-Signature-256": _sign(big)}
            ).status_code
            == 413
        )

        # No secret: PUT allowed, a text body is data as text.
        put = http.put("/hooks/open", content=b"plain text")
        assert put.status_code == 202, put.text

    seen = _until(lambda: _summaries(daemon, "hooks/deploy"), lambda: daemon.logs())
    assert len(seen) == 1
    assert seen[0] == {
        "method": "POST",
        "ref": "refs/heads/main",
        "tag": "v1",
        "subject": "/hooks/deploy",
        "source": "webhook:/hooks/deploy",
        "id": event_id,
        "env": "prod",
    }
    opened = _until(lambda: _summaries(daemon, "hooks/open"), lambda: daemon.logs())
    assert opened == [{"method": "PUT", "data": "plain text"}]

    # Refused requests start nothing; failed signatures are counted.
    row = _until(
        lambda: (r := daemon.ctl_json("status", "hooks/deploy")[0]).get("completed") == 1 and r,
        lambda: daemon.ctl_json("status", "hooks/deploy"),
    )
    assert row["unauthorized"] == 3 and row["received"] == 1
    assert len(daemon.ctl_json("runs", "hooks/deploy")) == 1

    # The secret is in no output: status, runs, events, logs.
    outputs = [
        daemon.ctl("status", "-o", "json").stdout,
        daemon.ctl("status", "hooks/deploy").stdout,
        daemon.ctl("runs", "hooks/deploy", "-o", "json").stdout,
        daemon.ctl("events", "-o", "json").stdout,
        daemon.ctl("logs", "hooks/deploy").stdout,
        daemon.logs(),
    ]
    for text in outputs:
        assert SECRET not in text
    assert "webhook:/hooks/deploy" in outputs[2]  # the event source, without its secret

    # A stopped workload serves nothing (404); started again, it serves its path again.
    assert daemon.ctl("stop", "hooks/open").returncode == 0
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.put("/hooks/open", content=b"x").status_code == 404
        assert daemon.ctl("start", "hooks/open").returncode == 0
        assert _until(lambda: http.put("/hooks/open", content=b"y").status_code == 202, "202")

    # Removing the playbook frees the paths: 404, and another playbook may take them.
    assert daemon.ctl("remove", "hooks").returncode == 0
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.post("/hooks/open", content=b"x").status_code == 404
    _apply(daemon, "other", HOOKS.replace("name: hooks", "name: other"))
    daemon.wait_status("other/open", "Running")
    with httpx.Client(base_url=base, timeout=10) as http:
        assert _until(lambda: http.post("/hooks/open", content=b"x").status_code == 202, "202")


def test_full_queue_answers_429_under_drop_new_and_503_under_block(
    daemon: DaemonProc, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = _start(daemon, monkeypatch)
    _apply(daemon, "slow", SLOW.format(sleep=5))
    daemon.wait_status("slow/dropper", "Running")
    daemon.wait_status("slow/blocker", "Running")
    with httpx.Client(base_url=base, timeout=10) as http:
        # One instance running, one queued: the third has no room.
        first = http.post("/slow/drop", json={"n": 1})
        assert first.status_code == 202, first.text
        _until(
            lambda: daemon.ctl_json("status", "slow/dropper")[0].get("in_flight") == 1, "in flight"
        )
        assert http.post("/slow/drop", json={"n": 2}).status_code == 202
        third = http.post("/slow/drop", json={"n": 3})
        assert third.status_code == 429 and third.headers["retry-after"] == "1"

        assert http.post("/slow/block", json={"n": 1}).status_code == 202
        _until(
            lambda: daemon.ctl_json("status", "slow/blocker")[0].get("in_flight") == 1, "in flight"
        )
        assert http.post("/slow/block", json={"n": 2}).status_code == 202
        started = time.monotonic()
        waited = http.post("/slow/block", json={"n": 3})
        elapsed = time.monotonic() - started
        assert waited.status_code == 503, waited.text
        assert 0.9 <= elapsed < 5, elapsed  # held for timeout=1s, then refused

    row = _until(
        lambda: (r := daemon.ctl_json("status", "slow/dropper")[0]).get("dropped") == 1 and r,
        lambda: daemon.ctl_json("status", "slow/dropper"),
    )
    assert row["received"] == 3
    blocker = daemon.ctl_json("status", "slow/blocker")[0]
    assert blocker["received"] == 2 and blocker["dropped"] == 0


def test_webhook_source_needs_http_and_a_path_has_one_owner(daemon: DaemonProc) -> None:
    daemon.start()  # no --http
    path = daemon.folder / "hooks.gxo.yaml"
    path.write_text(HOOKS, encoding="utf-8")
    out = daemon.ctl("apply", "-f", str(path))
    assert out.returncode != 0
    assert "--http" in out.stderr and "hooks.gxo.yaml:" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_two_workloads_on_one_path_is_an_apply_error(
    daemon: DaemonProc, monkeypatch: pytest.MonkeyPatch
) -> None:
    _start(daemon, monkeypatch)
    twice = HOOKS.replace("webhook:/hooks/open?", "webhook:/hooks/deploy?")
    path = daemon.folder / "twice.gxo.yaml"
    path.write_text(twice, encoding="utf-8")
    out = daemon.ctl("apply", "-f", str(path))
    assert out.returncode != 0 and "already served by workload 'hooks/deploy'" in out.stderr, (
        out.stderr
    )
    _apply(daemon, "hooks", HOOKS)
    other = 'schemaVersion: "1.0.0"\nname: thief\nworkloads:\n' + HOOKS.split("workloads:\n")[1]
    path.write_text(other, encoding="utf-8")
    out = daemon.ctl("apply", "-f", str(path))
    assert out.returncode != 0 and "already served by workload 'hooks/" in out.stderr, out.stderr


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1:99999", "::1:80", "127.0.0.1:"])
def test_bad_http_address_is_a_usage_error(daemon: DaemonProc, address: str) -> None:
    proc = daemon.start("--http", address, wait=False)
    assert proc.wait(30) == 2
    logs = daemon.logs()
    assert "--http" in logs and "Traceback" not in logs, logs
