"""``x`` cancels the selected workload: a pending one at once, a running one after a
confirmation; the rest of the run goes on. Disabled in a replay."""

from __future__ import annotations

import io
import os
from typing import Any

from rich.console import Console
from textual.widgets import Static

from gxo.tui.app import create_app
from gxo.tui.screens import ConfirmCancelScreen, HelpScreen, RunScreen
from gxo.tui.widgets import DagView

SIZE = (100, 32)

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: cancel-key
workloads:
  - name: slow
    process:
      module: exec
      params: { command: sh, args: [-c, "echo $$ > slow.pid; exec sleep 30"] }
  - name: next
    depends_on: [slow]
    process: { module: control:identity, params: {} }
  - name: later
    depends_on: [next]
    process: { module: exec, params: { command: touch, args: [later.ran] } }
  - name: cleanup
    depends_on: [slow]
    when: "always()"
    process: { module: control:identity, params: { saw: "{{ _gxo.workloads.slow.status }}" } }
  - name: quick
    process: { module: control:identity, params: { ok: true } }
"""


def status(app: Any, name: str) -> str:
    return app.session.engine.states[name].status.value


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def text_of(widget: Static) -> str:
    console = Console(width=140, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


def notes(app: Any) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_x_cancels_pending_at_once_and_running_after_a_confirmation(
    write_playbook: Any, wait_until: Any
) -> None:
    path = write_playbook(PLAYBOOK)
    pidfile = path.parent / "slow.pid"  # exec runs in the workspace: the playbook's directory
    app = create_app(path, timings=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(
            lambda: pidfile.exists() and pidfile.read_text().strip(), what="slow started"
        )
        pid = int(pidfile.read_text())
        dag = app.screen.query_one(DagView)

        # A pending workload: no question, it ends at once and never runs.
        dag.select("later")
        await pilot.press("x")
        assert isinstance(app.screen, RunScreen)
        assert status(app, "later") == "Failed"
        assert app.session.engine.states["later"].error == "cancelled by the user"
        await wait_until(lambda: app.session.model.workloads["later"].status == "Failed")
        assert "later cancelled: it will not run." in notes(app)

        # A running one asks first; n keeps it running.
        dag.select("slow")
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmCancelScreen)
        await pilot.press("n")
        assert isinstance(app.screen, RunScreen)
        await pilot.pause(0.1)
        assert status(app, "slow") == "Running" and alive(pid)

        # y cancels it: its child is stopped, its dependents skipped, always() runs.
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmCancelScreen)
        await pilot.press("y")
        await wait_until(lambda: not app.session.running, what="the run's end")
        assert not alive(pid)
        assert {n: status(app, n) for n in app.session.engine.states} == {
            "slow": "Failed",
            "next": "Skipped",
            "later": "Failed",
            "cleanup": "Completed",
            "quick": "Completed",
        }
        assert app.session.engine.states["slow"].error == "cancelled by the user"
        assert app.session.engine.states["next"].reason.startswith("dependency cancelled")
        assert not (path.parent / "later.ran").exists()
        await wait_until(lambda: app.session.model.run_status == "Failed")
        assert app.session.model.workloads["slow"].error == "cancelled by the user"

        # The run is over: x says so and asks nothing.
        await pilot.press("x")
        assert isinstance(app.screen, RunScreen)
        assert "No run in progress: nothing to cancel." in notes(app)


async def test_x_on_a_finished_workload_and_in_the_help(
    write_playbook: Any, wait_until: Any
) -> None:
    path = write_playbook(PLAYBOOK)
    app = create_app(path, timings=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: status(app, "quick") == "Completed")
        app.screen.query_one(DagView).select("quick")
        await pilot.press("x")
        assert isinstance(app.screen, RunScreen)
        assert "quick has ended (Completed)." in notes(app)
        assert status(app, "slow") == "Running"

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = text_of(app.screen.query_one("#help-keys", Static))
        assert any(
            line.strip().startswith("x") and "Cancel the selected workload" in line
            for line in text.splitlines()
        ), text
        await pilot.press("question_mark")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Cancel workload" in titles
        await app.session.cancel()


async def test_x_is_disabled_in_a_replay(write_playbook: Any) -> None:
    path = write_playbook(PLAYBOOK)
    report = {
        "run_id": "r1",
        "status": "Completed",
        "workloads": {"slow": {"status": "Running"}, "quick": {"status": "Completed"}},
    }
    app = create_app(path, timings=False, replay=(report, []))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RunScreen)
        assert screen.check_action("cancel_workload", ()) is False
        assert "Cancel workload" not in [c.title for c in app.get_system_commands(screen)]
        screen.query_one(DagView).select("slow")
        before = {n: (s.status, s.error) for n, s in app.session.engine.states.items()}
        await pilot.press("x")
        screen.action_cancel_workload()  # even called directly (palette): nothing happens
        assert isinstance(app.screen, RunScreen)
        assert {n: (s.status, s.error) for n, s in app.session.engine.states.items()} == before
        assert not any(
            isinstance(n.message, str) and "cancel" in n.message for n in app._notifications
        )
