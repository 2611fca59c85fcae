"""``gxo ui --attach``: the Resume tab answers a real daemon's paused workload through its
RPCs (Pilot): a payload the daemon refuses is shown, approve resumes it, reject fails it."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gxo.ctl.client import Client
from gxo.engine.signals import InvalidPayload, PauseClosed
from gxo.tui.approvals import RemoteApprovals
from gxo.tui.attach import AttachApp, AttachScreen
from gxo.tui.screens import ApprovalScreen

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: rel
workloads:
  - name: approve
    process:
      module: control:wait_for_signal
      params:
        prompt: "Ship it?"
        payload_schema:
          type: object
          properties:
            approved: { type: boolean }
            replicas: { type: integer, minimum: 1 }
          required: [approved, replicas]
    register: approval
  - name: deploy
    depends_on: [approve]
    process:
      module: exec
      params: { command: echo, args: ["replicas={{ _gxo.resume_payload.replicas }}"] }
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


def _apply(daemon: Any) -> None:
    path = daemon.folder / "rel.gxo.yaml"
    path.write_text(PLAYBOOK, encoding="utf-8")
    daemon.ctl_json("apply", "-f", str(path))


async def test_approve_a_daemon_pause_from_the_resume_tab(daemon: Any, wait_until: Any) -> None:
    daemon.start()
    _apply(daemon)
    app = AttachApp(Client(daemon.socket), timings=False, poll=0.2)
    async with app.run_test(size=(130, 40)) as pilot:
        await wait_until(lambda: isinstance(app.screen, AttachScreen), what="the run screen")
        session = app.session
        assert isinstance(session.approvals, RemoteApprovals)
        await wait_until(lambda: "rel/approve" in session.model.paused, 20, "the pause")
        entry = session.model.paused["rel/approve"]
        assert entry.prompt == "Ship it?" and entry.token  # the local identity may resume

        await pilot.press("4", "a")
        await wait_until(lambda: isinstance(app.screen, ApprovalScreen), what="the form")
        await pilot.press("space", "tab", "3")  # approved on, replicas 3
        await pilot.press("ctrl+s")
        await wait_until(
            lambda: session.model.workloads["rel/deploy"].status == "Completed",
            20,
            "deploy Completed",
        )
        assert not isinstance(app.screen, ApprovalScreen)
        assert "rel/approve" not in session.model.paused
        assert any("rel/approve resumed by local-admin" in n.message for n in app._notifications)
        await pilot.press("q")
    logs = await asyncio.to_thread(daemon.ctl, "logs", "rel/deploy")
    assert "replicas=3" in logs.stdout
    row = (await asyncio.to_thread(daemon.ctl_json, "runs", "rel/approve"))[0]
    assert row["report"]["workloads"]["approve"]["summary"]["resumed_by"] == "local-admin"


async def test_remote_approvals_refusals_and_reject(daemon: Any, wait_until: Any) -> None:
    daemon.start()
    _apply(daemon)
    app = AttachApp(Client(daemon.socket), timings=False, poll=0.2)
    async with app.run_test(size=(130, 40)):
        await wait_until(lambda: isinstance(app.screen, AttachScreen), what="the run screen")
        session = app.session
        await wait_until(lambda: "rel/approve" in session.model.paused, 20, "the pause")
        entry = session.model.paused["rel/approve"]
        # What the daemon refuses reaches the form as the engine's errors.
        with pytest.raises(InvalidPayload, match="replicas: 0 is less than the minimum of 1"):
            await session.approvals.resume(entry, {"approved": True, "replicas": 0})
        message = await session.approvals.reject(entry, "not now")
        assert message == "rel/approve rejected: not now"
        await wait_until(
            lambda: session.model.workloads["rel/approve"].status == "Failed", 20, "Failed"
        )
        with pytest.raises(PauseClosed, match="already rejected by local-admin"):
            await session.approvals.resume(entry, {"approved": True, "replicas": 1})
