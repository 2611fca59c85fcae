"""``gxo ui --attach``: the run screen over a real ``gxo daemon`` subprocess (Pilot)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Log

from gxo.ctl.client import Client
from gxo.tui.attach import AttachApp, AttachScreen
from gxo.tui.widgets import DagView, LogPanel

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: shop
workloads:
  - name: setup
    process: { module: exec, params: { command: echo, args: ["ready to serve"] } }
  - name: server
    lifecycle: { policy: supervise, restart_policy: always, stop_timeout: 2s }
    process: { module: exec, params: { command: sleep, args: ["60"] } }
"""

OTHER = """\
schemaVersion: "1.0.0"
name: other
workloads:
  - name: ping
    process: { module: exec, params: { command: echo, args: ["pong"] } }
"""


def _daemon_harness() -> Any:
    """The daemon tests' harness (tests/daemon/conftest.py), reused, not copied."""
    spec = importlib.util.spec_from_file_location(
        "gxo_daemon_test_harness", ROOT / "tests" / "daemon" / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DaemonProc


@pytest.fixture
def daemon() -> Iterator[Any]:
    folder = Path(tempfile.mkdtemp(prefix="gxoa-", dir="/tmp"))  # AF_UNIX path limit
    os.chmod(folder, 0o700)
    d = _daemon_harness()(folder)
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _log_lines(screen: Any) -> list[str]:
    return list(screen.query_one("#log-panel", LogPanel).query_one("#log-lines", Log).lines)


def _prompt(dag: DagView, name: str) -> str:
    return str(dag.get_option(name).prompt)


async def test_attach_shows_a_completed_and_a_running_workload_and_stops_one(
    daemon: Any, wait_until: Any
) -> None:
    daemon.start()
    path = daemon.folder / "shop.gxo.yaml"
    path.write_text(PLAYBOOK, encoding="utf-8")
    daemon.ctl_json("apply", "-f", str(path))
    daemon.wait_status("setup", "Completed")
    daemon.wait_status("server", "Running")

    app = AttachApp(Client(daemon.socket), timings=False, poll=0.2)
    async with app.run_test(size=(130, 40)) as pilot:
        await wait_until(lambda: isinstance(app.screen, AttachScreen), what="the run screen")
        screen = app.screen
        dag = screen.query_one(DagView)
        await wait_until(lambda: dag.shown == ["shop/setup", "shop/server"], what="the DAG")
        await wait_until(
            lambda: (
                _prompt(dag, "shop/setup").startswith("✔ shop/setup")
                and _prompt(dag, "shop/server").startswith("▶ shop/server")
            ),
            what="Completed and Running in the DAG",
        )
        model = app.session.model
        assert model.workloads["shop/setup"].status == "Completed"
        assert model.workloads["shop/server"].status == "Running"
        assert model.level_labels == ["playbook shop"]
        # The run_once workload's output came from the daemon (GetLogs / StreamEvents).
        assert [line.text for line in model.log_lines("shop/setup")] == ["ready to serve"]
        dag.select("shop/setup")
        await pilot.pause()
        await wait_until(
            lambda: any("ready to serve" in line for line in _log_lines(screen)),
            what="the log panel",
        )

        # s stops the selected supervised workload in the daemon; S starts it again.
        dag.select("shop/server")
        await pilot.press("s")
        await wait_until(
            lambda: model.workloads["shop/server"].status == "Stopped", 20, "Stopped on screen"
        )
        row = await asyncio.to_thread(daemon.ctl_json, "status", "shop/server")
        assert row[0]["status"] == "Stopped"
        await pilot.press("S")
        await wait_until(
            lambda: model.workloads["shop/server"].status == "Running", 20, "Running again"
        )

        # A playbook applied while attached shows up under its own heading.
        other = daemon.folder / "other.gxo.yaml"
        other.write_text(OTHER, encoding="utf-8")
        await asyncio.to_thread(daemon.ctl_json, "apply", "-f", str(other))
        await wait_until(
            lambda: (
                "other/ping" in dag.shown and _prompt(dag, "other/ping").startswith("✔ other/ping")
            ),
            20,
            "the new playbook's workload, Completed",
        )
        assert model.level_labels == ["playbook other", "playbook shop"]
        assert [line.text for line in model.log_lines("other/ping")] == ["pong"]
        await pilot.press("q")
    assert app.return_code == 0
    # Quitting the UI leaves the daemon's workloads running.
    row = daemon.ctl_json("status", "shop/server")[0]
    assert row["status"] == "Running"


def test_attach_without_a_daemon_exits_3_naming_the_socket(tmp_path: Path) -> None:
    sock = tmp_path / "none.sock"
    proc = subprocess.run(
        [sys.executable, "-m", "gxo.cli", "ui", "--attach", str(sock)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert str(sock) in proc.stderr and "gxo daemon" in proc.stderr


async def test_a_daemon_that_goes_away_is_reported_not_hidden(daemon: Any, wait_until: Any) -> None:
    proc = daemon.start()
    path = daemon.folder / "other.gxo.yaml"
    path.write_text(OTHER, encoding="utf-8")
    daemon.ctl_json("apply", "-f", str(path))
    daemon.wait_status("ping", "Completed")
    app = AttachApp(Client(daemon.socket), timings=False, poll=0.2)
    async with app.run_test(size=(130, 40)) as pilot:
        await wait_until(lambda: isinstance(app.screen, AttachScreen), what="the run screen")
        await wait_until(lambda: app.session.model.workloads.get("other/ping") is not None)
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)
        await wait_until(lambda: app.session.model.run_status == "Interrupted", 20, "Interrupted")
        assert app.session.error
        await pilot.pause()
        await pilot.press("q")
