"""Filesystem confinement of daemon playbooks, on a real ``gxo daemon``.

Each playbook works in ``<state dir>/workspaces/<playbook>`` (0700); traversal, absolute
paths and symlinks leading out are refused (literal ones at apply, with file:line;
templated ones when the workload runs); ``--allow-path DIR`` opens one more directory.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the fixture's class; conftest is not imported as a module
    from tests.daemon.conftest import DaemonProc

pytestmark = pytest.mark.timeout(120)

TEMPLATED = """\
schemaVersion: "1.0.0"
name: {name}
vars:
  target: out/inside.txt
workloads:
  - name: write
    process:
      module: filesystem:write
      params: {{ path: "{{{{ target }}}}", content: "hello" }}
  - name: where
    process: {{ module: exec, params: {{ command: pwd }} }}
"""

LITERAL = """\
schemaVersion: "1.0.0"
name: literal
workloads:
  - name: fine
    process: { module: filesystem:write, params: { path: ok.txt, content: ok } }
  - name: up
    process:
      module: filesystem:write
      params: { path: ../../escaped.txt, content: x }
  - name: abs
    process: { module: filesystem:read, params: { path: /etc/hostname } }
  - name: cwd
    process: { module: exec, params: { command: ls, cwd: /root } }
"""


def _write(d: DaemonProc, text: str, name: str) -> Path:
    path = d.folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _apply(d: DaemonProc, text: str, *extra: str, name: str = "c") -> Any:
    return d.ctl("apply", "-f", str(_write(d, text, f"{name}.gxo.yaml")), *extra)


def _error(d: DaemonProc, ref: str) -> str:
    run = d.ctl_json("runs", ref)[0]
    return run["report"]["workloads"][ref.split("/")[1]]["error"]


def test_relative_paths_land_in_a_private_per_playbook_workspace(daemon: DaemonProc) -> None:
    daemon.start()
    out = _apply(daemon, TEMPLATED.format(name="alpha"))
    assert out.returncode == 0, out.stderr
    daemon.wait_status("alpha/write", "Completed")
    daemon.wait_status("alpha/where", "Completed")
    ws = daemon.folder / "workspaces" / "alpha"
    assert (ws / "out" / "inside.txt").read_text() == "hello"
    assert stat.S_IMODE(os.stat(ws).st_mode) == 0o700
    where = daemon.ctl_json("runs", "alpha/where")[0]["report"]["workloads"]["where"]
    assert where["summary"]["stdout"].strip() == str(ws.resolve())
    # A playbook name that is not a plain file name still gets a directory of its own.
    out = _apply(daemon, TEMPLATED.format(name='"../evil"'), name="evil")
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 20
    made: list[Path] = []
    while not made and time.monotonic() < deadline:  # "../evil/write" is no ctl ref
        made = list((daemon.folder / "workspaces").glob("evil-*/out/inside.txt"))
        time.sleep(0.1)
    assert len(made) == 1, daemon.logs()
    assert not (daemon.folder / "evil").exists()


def test_literal_escapes_are_refused_at_apply_with_file_and_line(daemon: DaemonProc) -> None:
    daemon.start()
    out = _apply(daemon, LITERAL, name="literal")
    assert out.returncode == 2, out.stdout + out.stderr
    path = daemon.folder / "literal.gxo.yaml"
    assert (
        f"{path}:9:" in out.stderr
        and "workload 'up': param 'path': path '../../escaped.txt'" in out.stderr
    )
    assert f"{path}:11:" in out.stderr and "param 'path': path '/etc/hostname'" in out.stderr
    assert f"{path}:13:" in out.stderr and "workload 'cwd': param 'cwd': path '/root'" in out.stderr
    assert "outside the workspace" in out.stderr and "Traceback" not in out.stderr
    assert daemon.ctl_json("status") == []  # nothing applied, nothing ran
    assert not (daemon.folder / "escaped.txt").exists()


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("../../outside/x.txt", "resolves to {outside}/x.txt, outside the workspace"),
        ("{outside}/x.txt", "resolves to {outside}/x.txt, outside the workspace"),
        ("to_etc/gxo-x.txt", "resolves to /etc/gxo-x.txt (through a symlink), outside"),
        ("to_outside/x.txt", "resolves to {outside}/x.txt (through a symlink), outside"),
        ("linked/deeper/x.txt", "resolves to {outside}/deeper/x.txt (through a symlink)"),
    ],
)
def test_templated_escapes_fail_the_workload_when_it_runs(
    daemon: DaemonProc, target: str, says: str
) -> None:
    outside = daemon.folder / "outside"
    (outside / "deeper").mkdir(parents=True)
    ws = daemon.folder / "workspaces" / "beta"
    ws.mkdir(parents=True, mode=0o700)
    (ws / "to_etc").symlink_to("/etc")
    (ws / "to_outside").symlink_to(outside)
    (ws / "linked").symlink_to(outside, target_is_directory=True)  # a symlinked parent dir
    daemon.start()
    target = target.format(outside=outside)
    out = _apply(daemon, TEMPLATED.format(name="beta"), "-e", f"target={target}")
    assert out.returncode == 0, out.stderr
    row = daemon.wait_status("beta/write", "Failed")
    error = _error(daemon, "beta/write")
    assert f"param 'path': path {target!r} " in error
    assert says.format(outside=outside) in error
    assert f"the workspace {ws.resolve()}" in error
    assert "allowed directories (--allow-path): none" in error
    assert "param 'path'" in (row.get("reason") or error)
    assert not (outside / "x.txt").exists() and not (outside / "deeper" / "x.txt").exists()


def test_allow_path_opens_that_directory(daemon: DaemonProc) -> None:
    outside = daemon.folder / "shared"
    outside.mkdir()
    daemon.start("--allow-path", str(outside))
    out = _apply(daemon, TEMPLATED.format(name="gamma"), "-e", f"target={outside}/from-daemon.txt")
    assert out.returncode == 0, out.stderr
    daemon.wait_status("gamma/write", "Completed")
    assert (outside / "from-daemon.txt").read_text() == "hello"
    # Only that one: /etc is still out of reach.
    out = _apply(daemon, TEMPLATED.format(name="gamma"), "-e", "target=/etc/gxo-x.txt")
    assert out.returncode == 0, out.stderr
    daemon.wait_status("gamma/write", "Failed")
    assert f"allowed directories (--allow-path): {outside}" in _error(daemon, "gamma/write")


def test_a_missing_allow_path_stops_the_daemon_with_exit_2(daemon: DaemonProc) -> None:
    proc = daemon.start("--allow-path", str(daemon.folder / "nope"), wait=False)
    assert proc.wait(30) == 2
    assert f"--allow-path {daemon.folder / 'nope'}: not a directory" in daemon.logs()
    assert "Traceback" not in daemon.logs()
