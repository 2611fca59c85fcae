"""exec against real processes: long lines, escaped grandchildren, held pipes, zombies."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from gxo.modules.system.exec import LOG_LINE_CAP
from gxo.modules.testkit import run_module

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


def _children() -> dict[int, str]:
    """This process's direct children: pid -> state (R, S, Z, ...)."""
    me = os.getpid()
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            data = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2 :].split()
        if int(fields[1]) == me:
            found[int(name)] = fields[0].decode()
    return found


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().split(b") ")[1][:1] != b"Z"
    except (OSError, IndexError):
        return False


@pytest.fixture(autouse=True)
def _no_leaked_children():
    """Every test here must leave no child process (running or zombie) behind."""
    before = set(_children())
    yield
    deadline = time.monotonic() + 3
    while (leaked := {p: s for p, s in _children().items() if p not in before}) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)  # asyncio's watcher thread may still be reaping a direct child
    assert not leaked, f"leaked child processes: {leaked}"


async def test_a_line_longer_than_64k_is_captured_whole_and_logged_capped(tmp_path) -> None:
    script = "import sys; sys.stdout.write('x' * 200000 + '\\nend\\n' + 'y' * 70000)"
    r = await run_module(
        "exec", {"command": sys.executable, "args": ["-c", script]}, workspace=tmp_path
    )
    assert r.ok, r.error  # was: "Separator is not found, and chunk exceed the limit"
    assert [len(line) for line in r.summary["stdout_lines"]] == [200000, 3, 70000]
    logged = [line for stream, line in r.logs if stream == "stdout"]
    assert logged[0] == "x" * LOG_LINE_CAP + f" [... {200000 - LOG_LINE_CAP} more bytes]"
    assert logged[1] == "end"
    assert logged[2].startswith("y" * LOG_LINE_CAP) and logged[2].endswith("more bytes]")


async def test_a_grandchild_escaping_with_setsid_is_stopped(tmp_path) -> None:
    r = await run_module(
        "exec",
        {"command": "sh", "args": ["-c", "setsid sleep 60 >/dev/null 2>&1 & echo $! > child.pid"]},
        workspace=tmp_path,
    )
    assert r.ok, r.error
    pid = int((tmp_path / "child.pid").read_text())
    # It left the process group and the session: only the subreaper + mark find it.
    assert not _alive(pid)


async def test_a_double_forked_daemon_without_the_mark_is_stopped(tmp_path) -> None:
    # The daemon clears its environment (env -i): it is found as the child of a marked process.
    script = (
        "import os, subprocess, sys\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    p = subprocess.Popen(['env', '-i', 'sleep', '60'])\n"
        "    open('daemon.pid', 'w').write(str(p.pid))\n"
        "    p.wait()\n"
        "    os._exit(0)\n"
        "import time; time.sleep(0.8)\n"
    )
    r = await run_module(
        "exec", {"command": sys.executable, "args": ["-c", script]}, workspace=tmp_path
    )
    assert r.ok, r.error
    assert not _alive(int((tmp_path / "daemon.pid").read_text()))


async def test_a_background_child_holding_stdout_does_not_hold_the_workload(tmp_path) -> None:
    started = time.monotonic()
    r = await run_module(
        "exec",
        {"command": "sh", "args": ["-c", "sleep 60 & echo $! > child.pid; echo started"]},
        workspace=tmp_path,
    )
    elapsed = time.monotonic() - started
    assert r.ok, r.error
    assert r.summary["stdout"] == "started"
    assert elapsed < 5, f"the workload waited {elapsed:.1f}s for a background child"
    assert not _alive(int((tmp_path / "child.pid").read_text()))


async def test_output_written_soon_after_exit_by_a_background_child_is_kept(tmp_path) -> None:
    r = await run_module(
        "exec",
        {"command": "sh", "args": ["-c", "(sleep 0.3; echo late) & echo early"]},
        workspace=tmp_path,
    )
    assert r.ok, r.error
    assert r.summary["stdout_lines"] == ["early", "late"]


async def test_an_orphan_that_exits_on_its_own_is_reaped(tmp_path) -> None:
    # The subshell exits at once, so `sleep 0.3` is re-parented to GXO (the subreaper)
    # and becomes GXO's zombie when it ends: the autouse fixture checks it was reaped.
    r = await run_module(
        "exec",
        {"command": "sh", "args": ["-c", "(sleep 0.3 >/dev/null 2>&1 &); sleep 1"]},
        workspace=tmp_path,
    )
    assert r.ok, r.error


async def test_timeout_stops_an_escaped_grandchild_too(tmp_path) -> None:
    r = await run_module(
        "exec",
        {
            "command": "sh",
            "args": ["-c", "setsid sleep 60 >/dev/null 2>&1 & echo $! > child.pid; sleep 60"],
        },
        workspace=tmp_path,
        workload={"timeout": "500ms"},
    )
    assert r.error == "timed out after 500ms"
    assert not _alive(int((tmp_path / "child.pid").read_text()))


def test_exec_ends_leftovers_in_a_real_gxo_run(tmp_path, gxo) -> None:
    pidfile = tmp_path / "child.pid"
    (tmp_path / "p.gxo.yaml").write_text(
        "schemaVersion: '1.0.0'\n"
        "name: leftovers\n"
        "workloads:\n"
        "  - name: spawn\n"
        "    process:\n"
        "      module: exec\n"
        "      params:\n"
        "        command: sh\n"
        f"        args: ['-c', 'setsid sleep 60 >/dev/null 2>&1 & echo $! > {pidfile}']\n"
    )
    proc = gxo("run", str(tmp_path / "p.gxo.yaml"))
    assert proc.returncode == 0, proc.stderr
    assert not _alive(int(pidfile.read_text()))
