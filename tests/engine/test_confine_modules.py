"""Every module param naming a path goes through the run's resolver: in a confined run
(Engine ``workspace=Confinement(...)``) each one refuses a rendered path outside."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from gxo.engine.confine import Confinement

# One workload per path param; each path comes from a template, so only the run sees it.
ESCAPES = {
    "fs_read": "{ module: filesystem:read, params: { path: '{{ out }}/f.txt' } }",
    "fs_write": "{ module: filesystem:write, params: { path: '{{ out }}/w.txt', content: x } }",
    "fs_stat": "{ module: filesystem:stat, params: { path: '{{ out }}' } }",
    "fs_list": "{ module: filesystem:list, params: { path: '{{ out }}' } }",
    "fs_manage": "{ module: filesystem:manage, params: { path: '{{ out }}/d', state: directory } }",
    "exec_cwd": "{ module: exec, params: { command: pwd, cwd: '{{ out }}' } }",
    "format_path": "{ module: data:format, params: { format: json, path: '{{ out }}/f.json' } }",
    "db_url": "{ module: database:query, params: { url: 'sqlite:///{{ out }}/x.db', query: 'select 1' } }",
    "http_ca": "{ module: http:request, params: { url: 'https://127.0.0.1:9/', ca_file: '{{ out }}/ca.pem' } }",
    "dead_letter": (
        "{ module: data:parse, params: { format: json_lines, content: 'not json', "
        "on_error: dead_letter, dead_letter: { path: '{{ out }}/dl.jsonl' } } }"
    ),
}
PARAMS = {
    "fs_read": "path",
    "fs_write": "path",
    "fs_stat": "path",
    "fs_list": "path",
    "fs_manage": "path",
    "exec_cwd": "cwd",
    "format_path": "path",
    "db_url": "url",
    "http_ca": "ca_file",
    "dead_letter": "dead_letter.path",
}


def _playbook() -> str:
    lines = ['schemaVersion: "1.0.0"', "name: escapes", "workloads:"]
    lines += [
        "  - name: gen",
        "    process: { module: data:generate_from_list, params: { items: [1] } }",
    ]
    for name, process in ESCAPES.items():
        lines += [f"  - name: {name}", f"    process: {process}"]
        if name == "format_path":
            lines += ["    stream_inputs: [gen]"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
async def test_every_path_param_is_confined(run_yaml, tmp_path: Path, how: str) -> None:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    outside.mkdir()
    (outside / "f.txt").write_text("secret")
    out = {"dotdot": "../outside", "absolute": str(outside), "symlink": "link"}[how]
    if how == "symlink":
        ws.mkdir()
        (ws / "link").symlink_to(outside)
    result = await run_yaml(
        _playbook(), workspace=Confinement(ws), extra_vars={"out": out}, concurrency=1
    )
    for name, param in PARAMS.items():
        state = result.states[name]
        assert state.status.value == "Failed", (name, state.error)
        assert f"param '{param}': path " in state.error, (name, state.error)
        assert "outside the workspace" in state.error, (name, state.error)
    assert sorted(p.name for p in outside.iterdir()) == ["f.txt"]  # nothing written there


async def test_the_same_playbook_unconfined_reaches_outside(run_yaml, tmp_path: Path) -> None:
    """``gxo run`` without --confine: today's behaviour, nothing refused."""
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    ws.mkdir()
    outside.mkdir()
    text = """
    schemaVersion: "1.0.0"
    name: free
    workloads:
      - name: w
        process: { module: filesystem:write, params: { path: ../outside/w.txt, content: hi } }
    """
    result = await run_yaml(text, workspace=str(ws))
    assert result.status == "Completed", result.states["w"].error
    assert (outside / "w.txt").read_text() == "hi"


async def test_confined_work_inside_and_in_allowed_dirs(run_yaml, tmp_path: Path) -> None:
    ws, allowed = tmp_path / "new" / "ws", tmp_path / "allowed"
    allowed.mkdir()
    text = f"""
    schemaVersion: "1.0.0"
    name: inside
    workloads:
      - name: write
        process: {{ module: filesystem:write, params: {{ path: out/a.txt, content: hi }} }}
      - name: read
        depends_on: [write]
        process: {{ module: filesystem:read, params: {{ path: out/a.txt }} }}
        register: got
      - name: pwd
        depends_on: [write]
        process: {{ module: exec, params: {{ command: pwd, cwd: out }} }}
        register: pwd
      - name: db
        process: {{ module: database:query, params: {{ url: "sqlite:///db.sqlite", query: "select 1 as n" }} }}
        register: db
      - name: elsewhere
        process: {{ module: filesystem:write, params: {{ path: {allowed}/b.txt, content: ok }} }}
    """
    result = await run_yaml(text, workspace=Confinement(ws, (str(allowed),)))
    assert result.status == "Completed", {n: s.error for n, s in result.states.items()}
    assert result.states["read"].summary["content"] == "hi"
    assert result.states["pwd"].summary["stdout"] == str(ws.resolve() / "out")
    assert (ws / "db.sqlite").exists()
    assert (allowed / "b.txt").read_text() == "ok"
    assert stat.S_IMODE(os.stat(ws).st_mode) == 0o700  # a confined workspace is private


async def test_sqlite_uri_is_refused_when_confined(run_yaml, tmp_path: Path) -> None:
    text = """
    schemaVersion: "1.0.0"
    name: uri
    workloads:
      - name: db
        process: { module: database:query, params: { url: "sqlite:///file:x.db?mode=ro&uri=true", query: "select 1" } }
    """
    result = await run_yaml(text, workspace=Confinement(tmp_path / "ws"))
    assert "file: URIs are not allowed in a confined run" in result.states["db"].error


async def test_list_does_not_follow_a_symlinked_dir_outside(run_yaml, tmp_path: Path) -> None:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    (ws / "mine").mkdir(parents=True)
    (ws / "mine" / "a.txt").write_text("a")
    outside.mkdir()
    (outside / "secret.txt").write_text("s")
    (ws / "away").symlink_to(outside)
    text = """
    schemaVersion: "1.0.0"
    name: listing
    workloads:
      - name: ls
        process: { module: filesystem:list, params: { path: ., recursive: true, follow_symlinks: true } }
        register: ls
    """
    result = await run_yaml(text, workspace=Confinement(ws))
    assert result.status == "Completed", result.states["ls"].error
    names = sorted(e["relative_path"] for e in result.states["ls"].summary["entries"])
    assert names == ["away", "mine", "mine/a.txt"]  # not away/secret.txt

    unconfined = await run_yaml(text, workspace=str(ws))
    names = sorted(e["relative_path"] for e in unconfined.states["ls"].summary["entries"])
    assert "away/secret.txt" in names


async def test_the_refusal_is_not_retried(run_yaml, tmp_path: Path) -> None:
    text = """
    schemaVersion: "1.0.0"
    name: noretry
    workloads:
      - name: w
        retry: { attempts: 5, delay: 1s }
        process: { module: filesystem:read, params: { path: "{{ '/etc/hostname' }}" } }
    """
    result = await run_yaml(text, workspace=Confinement(tmp_path / "ws"))
    state = result.states["w"]
    assert state.status.value == "Failed"
    assert "resolves to /etc/hostname" in state.error
    assert result.duration_ms < 1000  # no 1 s retry delays
    assert json.dumps(result.report())  # the report carries the error as text
