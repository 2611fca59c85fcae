"""filesystem:* and http:request through the real ``gxo`` command."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "modules"))
from http_server import TOKEN, LocalServer, serve

PLAYBOOK = Path(__file__).resolve().parents[1] / "playbooks" / "stdlib_fs_http.gxo.yaml"


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with serve() as srv:
        yield srv


def test_playbook_runs_and_secret_stays_out_of_every_output(
    gxo, server: LocalServer, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    ws = tmp_path / "ws"
    ws.mkdir()
    proc = gxo(
        "run",
        str(PLAYBOOK),
        "-e",
        f"api={server.url}",
        "--report",
        str(report),
        "--workspace",
        str(ws),
        "-v",
        env={"API_TOKEN": TOKEN},
    )
    assert proc.returncode == 0, proc.stderr
    assert [
        json.loads(line)["id"] for line in (ws / "out" / "users.jsonl").read_text().splitlines()
    ] == [1, 2, 3, 4, 5]
    # The token was really sent ...
    assert all(r.headers.get("Authorization") == f"Bearer {TOKEN}" for r in server.requests)
    # ... and appears in no output, although /echo sent it back in its body.
    text = report.read_text()
    for output in (proc.stdout, proc.stderr, text):
        assert TOKEN not in output
    data = json.loads(text)
    assert data["status"] == "Completed"
    echoed = data["workloads"]["echo"]["summary"]["json_body"]["headers"]["authorization"]
    assert echoed == "Bearer [REDACTED]"
    assert data["workloads"]["users"]["records_out"] == 5
    assert data["workloads"]["out_dir_again"]["summary"]["changed"] is False


def test_http_failure_exits_1_with_status_and_body(
    gxo, server: LocalServer, write_playbook
) -> None:
    path = write_playbook(
        f"""
        schemaVersion: "1.0.0"
        name: http-fail
        workloads:
          - name: broken
            process: {{ module: http:request, params: {{ url: "{server.url}/status/503" }} }}
        """
    )
    proc = gxo("run", str(path))
    assert proc.returncode == 1
    assert (
        f"GET {server.url}/status/503 returned HTTP 503 Service Unavailable (expected 2xx): status 503 body"
        in proc.stderr
    )


def test_validate_rejects_bad_params_with_file_and_line(gxo, write_playbook) -> None:
    path = write_playbook(
        """
        schemaVersion: "1.0.0"
        name: bad-params
        workloads:
          - name: dirs
            process:
              module: filesystem:manage
              params: { path: out, state: directory, mode: 0755 }
          - name: call
            process:
              module: http:request
              params:
                url: http://127.0.0.1:9/x
                method: FETCH
                timeout: soon
          - name: pages
            process:
              module: http:request
              params:
                url: http://127.0.0.1:9/x
                paginate: { next: "{{ response.json_body.next }}" }
          - name: save
            process:
              module: filesystem:write
              params: { path: x, contnet: hi }
        """,
        name="bad.gxo.yaml",
    )
    proc = gxo("validate", str(path))
    assert proc.returncode == 2
    err = proc.stderr
    assert f"{path}:7:" in err and "workload 'dirs'" in err
    assert 'mode must be a quoted octal string such as "0644", got 755' in err
    assert f"{path}:13:" in err and "module 'http:request' params: method" in err
    assert f"{path}:14:" in err and "invalid duration 'soon'" in err
    assert f"{path}:18:" in err and "workload 'pages'" in err and "paginate needs emit" in err
    assert f"{path}:24:" in err and "unknown key 'contnet' (did you mean 'content'?)" in err


def test_modules_command_documents_the_new_modules(gxo) -> None:
    proc = gxo("modules")
    for name in (
        "filesystem:read",
        "filesystem:write",
        "filesystem:stat",
        "filesystem:list",
        "filesystem:manage",
        "http:request",
    ):
        assert name in proc.stdout
    proc = gxo("modules", "http:request")
    assert proc.returncode == 0
    for text in ("paginate", "expected_status", "json_body", "Example:", "max_pages: 50"):
        assert text in proc.stdout
    proc = gxo("modules", "filesystem:manage", "--json")
    ref = json.loads(proc.stdout)
    assert {row["name"] for row in ref["params"]} == {
        "path",
        "state",
        "mode",
        "owner",
        "group",
        "recursive",
    }
    assert "changed" in ref["summary"]
