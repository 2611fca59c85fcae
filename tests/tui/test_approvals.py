"""Answering paused workloads (``control:wait_for_signal``) from ``gxo ui``: the Resume
tab, the form built from ``payload_schema``, approve / reject, and the timeout.

Real engine, real playbooks; keys go through Pilot as a user would type them.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.widgets import DataTable, Select, Static, TextArea

from gxo.tui.app import GxoApp, create_app
from gxo.tui.screens import ApprovalScreen, RunScreen
from gxo.tui.widgets import ResumePanel, RunHeader
from gxo.tui.widgets.resume_panel import age_text

SIZE = (100, 32)


def text_of(widget: Static) -> str:
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content)
    return console.export_text()


def header_text(app: GxoApp) -> str:
    return text_of(app.screen.query_one(RunHeader))


def paused(app: GxoApp, name: str = "approve") -> bool:
    return app.session is not None and name in app.session.model.paused


def status(app: GxoApp, name: str) -> str:
    assert app.session is not None
    return app.session.model.workloads[name].status


def resume_rows(app: GxoApp) -> list[list[str]]:
    table = app.screen.query_one("#resume-table", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def open_form(app: GxoApp, pilot: Any, wait_until: Any) -> ApprovalScreen:
    await wait_until(lambda: paused(app), what="approve to be paused")
    await pilot.press("4", "a")
    await wait_until(lambda: isinstance(app.screen, ApprovalScreen), what="the form")
    assert isinstance(app.screen, ApprovalScreen)
    return app.screen


def write_playbook(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


class TestResumeTab:
    async def test_lists_the_paused_workload_and_the_header_counts_it(
        self, ui_playbook: Any, wait_until: Any
    ) -> None:
        app = create_app(ui_playbook("approval"), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: paused(app) and status(app, "docs") == "Completed")
            await pilot.press("4")
            assert isinstance(app.screen, RunScreen)
            app.screen.sync()
            assert resume_rows(app) == [
                [
                    "approve",
                    "--",  # timings=False freezes the age
                    "—",  # a local run has no token: it is answered here
                    "Deploy 1.4.2 to production?",
                ]
            ]
            detail = text_of(app.screen.query_one("#resume-detail", Static))
            assert detail.splitlines() == [
                "⏸ approve",
                "Deploy 1.4.2 to production?",
                "payload: approved: boolean*, replicas: integer*, target: staging|production*, "
                "note: string",
                "a / enter: answer (approve or reject)",
            ]
            assert "⏸1" in header_text(app) and "▶ Running" in header_text(app)
            assert app.focused is app.screen.query_one("#resume-table")
            assert status(app, "deploy") == "Pending"  # downstream waits

    async def test_a_timeout_decided_by_the_broker_removes_the_row(
        self, tmp_path: Path, wait_until: Any, monkeypatch: Any
    ) -> None:
        monkeypatch.chdir(tmp_path)
        playbook = write_playbook(
            tmp_path / "t.gxo.yaml",
            """
            schemaVersion: "1.0.0"
            name: t
            workloads:
              - name: approve
                process:
                  module: control:wait_for_signal
                  params: { prompt: "quick?", timeout: 5s, on_timeout: continue }
              - name: after
                depends_on: [approve]
                process: { module: control:identity, params: { p: "{{ _gxo.resume_payload }}" } }
            """,
        )
        app = create_app(playbook, timings=True)
        async with app.run_test(size=SIZE) as pilot:
            # (5 s: long enough for a loaded machine to see the pause before it times out)
            await wait_until(lambda: paused(app))
            # no await from here to reading the row: the timeout cannot fire in between
            assert isinstance(app.screen, RunScreen)
            app.screen.sync()
            row = resume_rows(app)[0]
            assert row[0] == "approve" and row[3] == "quick?"
            assert row[1].endswith("s left")  # age · time left
            await pilot.press("4")
            await wait_until(lambda: app.session is not None and app.session.model.finished)
            app.screen.sync()
            panel = app.screen.query_one(ResumePanel)
            assert resume_rows(app) == [] and not panel.table.display
            assert panel.query_one("#resume-empty", Static).display
            assert status(app, "approve") == "Completed" and status(app, "after") == "Completed"
            assert app.session.engine.states["approve"].summary["timed_out"] is True

    def test_age_text(self) -> None:
        assert age_text(100.0, None, 142.9) == "42s"
        assert age_text(0.0, 200.0, 185.0) == "3m05s · 15s left"
        assert age_text(0.0, None, 3720.0) == "1h02m"
        assert age_text(0.0, 10.0, 12.0) == "12s · 0s left"


class TestApprovalForm:
    async def test_approve_through_the_form_runs_downstream_with_the_payload(
        self, ui_playbook: Any, wait_until: Any
    ) -> None:
        app = create_app(ui_playbook("approval"), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            form = await open_form(app, pilot, wait_until)
            assert app.focused is form.query_one("#field-0")  # approved (a switch)
            await pilot.press("space", "tab", "3", "tab")  # approved on, replicas 3
            assert app.focused is form.query_one("#field-2", Select)
            await pilot.press("enter", "down", "down", "enter")  # target: production
            await pilot.press("tab", *"ship it")  # note
            await pilot.press("ctrl+s")
            await wait_until(lambda: app.session is not None and app.session.model.finished)
            assert isinstance(app.screen, RunScreen)
            assert app.exit_code == 0
            states = app.session.engine.states
            summary = states["approve"].summary
            assert summary["payload"] == {
                "approved": True,
                "replicas": 3,
                "target": "production",
                "note": "ship it",
            }
            assert summary["resumed_by"].startswith("ui:")
            assert states["deploy"].summary == {
                "deployed": "app-1.4.2.tar",
                "replicas": 3,
                "target": "production",
                "note": "ship it",
                "by": summary["resumed_by"],
            }
            app.screen.sync()
            assert resume_rows(app) == [] and "⏸" not in header_text(app)

    async def test_an_invalid_payload_is_shown_and_the_workload_stays_paused(
        self, ui_playbook: Any, wait_until: Any
    ) -> None:
        app = create_app(ui_playbook("approval"), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            form = await open_form(app, pilot, wait_until)
            await pilot.press("ctrl+s")  # nothing filled in
            assert form.error_text.splitlines() == [
                "target: required",
                "replicas: required",
                "Fix the fields marked above.",
            ]
            assert form.query_one("#error-1", Static).display
            # typed, but outside the schema: jsonschema says why
            await pilot.press("tab", "4", "2")
            form.query_one("#field-2", Select).value = "staging"
            await pilot.press("ctrl+s")
            assert form.error_text == (
                "payload does not match payload_schema: replicas: 42 is greater than the "
                "maximum of 9"
            )
            assert not form.query_one("#error-1", Static).display
            assert app.screen is form
            assert paused(app) and "approve" in app.session.signals.pending
            assert status(app, "approve") == "Paused" and status(app, "deploy") == "Pending"
            # cancelled: still paused, and answerable again
            await pilot.press("escape")
            assert isinstance(app.screen, RunScreen) and paused(app)
            await pilot.press("a")
            assert isinstance(app.screen, ApprovalScreen)

    async def test_reject_with_a_reason_fails_the_workload(
        self, ui_playbook: Any, wait_until: Any
    ) -> None:
        app = create_app(ui_playbook("approval"), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            form = await open_form(app, pilot, wait_until)
            form.query_one("#approval-reason").focus()
            await pilot.press(*"not on a Friday")
            await pilot.click("#approval-reject")
            await wait_until(lambda: app.session is not None and app.session.model.finished)
            state = app.session.engine.states["approve"]
            assert state.status.value == "Failed"
            assert "not on a Friday" in (state.error or "") and "rejected by ui:" in state.error
            assert status(app, "deploy") == "Skipped" and status(app, "docs") == "Completed"
            assert app.exit_code == 1

    async def test_a_pause_decided_meanwhile_is_reported_in_the_form(
        self, ui_playbook: Any, wait_until: Any
    ) -> None:
        app = create_app(ui_playbook("approval"), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            form = await open_form(app, pilot, wait_until)
            assert app.session is not None
            form.query_one("#field-0").value = True  # type: ignore[attr-defined]
            await pilot.press("tab", "2")
            form.query_one("#field-2", Select).value = "staging"
            # someone else answered first (a second window, the timeout), and the form
            # sends before it noticed (no turn of the loop in between): the broker refuses
            app.session.signals.reject("approve", "first answer wins", by="other")
            await form.action_approve()
            assert form.error_text == "workload 'approve' was already rejected"
            assert app.screen is form
            # then the form notices by itself, and answers no more
            await wait_until(lambda: form.closed, what="the form to notice")
            assert form.error_text == (
                "approve is no longer paused: it was answered elsewhere or its timeout "
                "decided. Esc closes this form."
            )
            assert form.query_one("#approval-approve").disabled
            await wait_until(lambda: app.session.model.finished)
            assert "first answer wins" in (app.session.engine.states["approve"].error or "")
            await pilot.press("escape")
            assert isinstance(app.screen, RunScreen)

    async def test_other_schemas_are_edited_as_json(
        self, tmp_path: Path, wait_until: Any, monkeypatch: Any
    ) -> None:
        monkeypatch.chdir(tmp_path)
        playbook = write_playbook(
            tmp_path / "j.gxo.yaml",
            """
            schemaVersion: "1.0.0"
            name: j
            workloads:
              - name: approve
                process:
                  module: control:wait_for_signal
                  params:
                    prompt: "Which hosts?"
                    payload_schema: { type: array, items: { type: string }, minItems: 1 }
                register: picked
              - name: use
                depends_on: [approve]
                process: { module: control:identity, params: { hosts: "{{ picked.payload }}" } }
            """,
        )
        app = create_app(playbook, timings=False)
        async with app.run_test(size=SIZE) as pilot:
            form = await open_form(app, pilot, wait_until)
            editor = form.query_one("#approval-json", TextArea)
            assert app.focused is editor and editor.text == "[]"
            await pilot.press("ctrl+s")
            assert "[] should be non-empty" in form.error_text
            editor.text = '["web-1", '
            await pilot.press("ctrl+s")
            assert form.error_text.startswith("payload: not JSON:")
            assert paused(app)
            editor.text = '["web-1", "web-2"]'
            await pilot.press("ctrl+s")
            await wait_until(lambda: app.session is not None and app.session.model.finished)
            assert app.session.engine.states["use"].summary == {"hosts": ["web-1", "web-2"]}

    async def test_answer_key_with_nothing_paused_says_so(
        self, ui_playbook: Any, wait_until: Any
    ) -> None:
        app = create_app(ui_playbook("overview"), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: app.session is not None and app.session.model.finished)
            await pilot.press("a")
            assert isinstance(app.screen, RunScreen)
            assert [n.message for n in app._notifications] == ["No workload is paused."]

    async def test_quitting_while_paused_cancels_the_run(
        self, ui_playbook: Any, wait_until: Any
    ) -> None:
        app = create_app(ui_playbook("approval"), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: paused(app))
            await pilot.press("q", "y")  # the run is in progress: confirm, cancel, quit
            await wait_until(lambda: app.return_code is not None, what="the app to exit")
        assert app.return_code == 130
        assert app.session is not None and not app.session.running
        assert app.session.signals.pending == {}

    async def test_a_session_without_approvals_says_how_to_answer(
        self, ui_playbook: Any, wait_until: Any
    ) -> None:
        """What ``gxo ui --attach`` does until it answers the daemon's pauses itself: the
        pause is listed, and the key names the ctl command instead of opening a form."""
        app = create_app(ui_playbook("approval"), timings=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(lambda: paused(app))
            assert app.session is not None
            app.session.approvals = None  # type: ignore[assignment]
            await pilot.press("4")
            app.screen.query_one(ResumePanel).show(app.session)
            assert "answer with gxo ctl resume" in text_of(
                app.screen.query_one("#resume-detail", Static)
            )
            await pilot.press("a")
            assert isinstance(app.screen, RunScreen)
            assert [n.message for n in app._notifications] == [
                "Answer approve with `gxo ctl resume`."
            ]
            app.session.signals.reject("approve", "done here")
