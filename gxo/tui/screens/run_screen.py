"""The workbench: header, DAG, and tabs for details, logs, streams and resume tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane

from gxo.tui.screens.approval import ApprovalScreen
from gxo.tui.widgets import (
    DagView,
    DetailsPanel,
    LogPanel,
    ResumePanel,
    RunHeader,
    StreamPanel,
    Timeline,
)

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from gxo.tui.session import RunSession

__all__ = ["RunScreen"]

REFRESH_HZ = 10  # widgets redraw from the model at most this often, however many events arrive


class RunScreen(Screen[None]):
    """Shows one :class:`RunSession`; :meth:`attach` switches to a new one (re-run)."""

    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "app.rerun", "Re-run", tooltip="Run again (the file as it is now)"),
        Binding("R", "app.rerun_failed", "Re-run what did not complete", show=False),
        Binding("s", "run_from", "Run the selected workload and its dependents", show=False),
        Binding("e", "edit", "Open the selected workload's definition in $EDITOR", show=False),
        Binding(
            "x",
            "cancel_workload",
            "Cancel the selected workload (asks if it runs)",
            show=False,
        ),
        Binding("f", "failed_only", "Failed", tooltip="Show failed workloads only (again: all)"),
        Binding("slash", "search_logs", "Search"),
        # The footer shows "1-4 Tabs"; the help overlay lists each (the tooltip).
        Binding("1", "tab('details')", "Tabs", key_display="1-5", tooltip="Details tab"),
        Binding("2", "tab('logs')", "Logs tab", show=False),
        Binding("3", "tab('streams')", "Streams tab", show=False),
        Binding("4", "tab('resume')", "Resume tab", show=False),
        Binding("5", "tab('timeline')", "Timeline tab: where the time went", show=False),
        Binding("escape", "focus_dag", "DAG", tooltip="Back to the DAG (or clear a search)"),
        Binding("question_mark", "help", "Help", tooltip="This list of keys"),
        Binding("q", "app.quit", "Quit"),
        Binding("a", "answer", "Answer a paused workload", show=False),
        Binding("w", "all_logs", "All workloads' logs, interleaved (again: one)", show=False),
        Binding("y", "copy", "Copy the selected error, resume token or params", show=False),
    ]

    def __init__(self, session: RunSession, *, timings: bool = True) -> None:
        super().__init__()
        self.session = session
        self.timings = timings
        self._seen = -1

    def compose(self) -> ComposeResult:
        yield RunHeader(timings=self.timings, id="header")
        with Horizontal(id="body"):
            yield DagView(timings=self.timings, id="dag")
            with Vertical(id="right"):
                with TabbedContent(id="tabs", initial="details"):
                    with TabPane("Details", id="details"):
                        yield DetailsPanel(timings=self.timings, id="details-panel")
                    with TabPane("Logs", id="logs"):
                        yield LogPanel(id="log-panel")
                    with TabPane("Streams", id="streams"):
                        yield StreamPanel(id="stream-panel")
                    with TabPane("Resume", id="resume"):
                        yield ResumePanel(timings=self.timings, id="resume-panel")
                    with TabPane("Timeline", id="timeline"):
                        yield Timeline(timings=self.timings, id="timeline-panel")
                # Large terminals (CSS: -wide and -tall) also keep the logs in view under the tabs.
                yield LogPanel(id="log-dock")
        yield Footer()

    def on_mount(self) -> None:
        self.attach(self.session)
        self.set_interval(1 / REFRESH_HZ, self.sync)
        self.query_one(DagView).focus()

    def attach(self, session: RunSession) -> None:
        """Show ``session`` (a new run): every panel starts over."""
        self.session = session
        self._seen = -1
        self.query_one(DagView).show_model(session.model)
        self.sync()

    # -- refresh ----------------------------------------------------------------------

    def sync(self) -> None:
        """Bring every panel up to date with the model (called at REFRESH_HZ)."""
        session = self.session
        self.query_one(RunHeader).show(session)  # every tick: the clock moves
        model = session.model
        dag = self.query_one(DagView)
        if model.version == self._seen:
            if self.timings and model.any_running:
                dag.sync()  # running durations move without events
                self.query_one(DetailsPanel).show(session, dag.selected)
            if self.timings and model.paused:
                self.query_one(ResumePanel).show(session)  # the ages move
            if self.timings and model.any_running:
                self._show_timeline()  # running bars grow
            return
        self._seen = model.version
        dag.sync()
        self._show_selected(dag.selected)
        self.query_one(StreamPanel).show(session)
        self.query_one(ResumePanel).show(session)
        self._show_timeline()

    def _show_timeline(self) -> None:
        if self.query_one(TabbedContent).active == "timeline":  # drawn only when looked at
            self.query_one(Timeline).show(self.session)

    def _show_selected(self, name: str | None) -> None:
        self.query_one(DetailsPanel).show(self.session, name)
        for logs in self.query(LogPanel):
            logs.show(self.session, name)

    # -- messages -----------------------------------------------------------------------

    def on_dag_view_workload_highlighted(self, message: DagView.WorkloadHighlighted) -> None:
        self._show_selected(message.workload)

    def on_dag_view_workload_chosen(self, message: DagView.WorkloadChosen) -> None:
        self._show_selected(message.workload)
        self.action_tab("details")

    def on_resume_panel_answer_requested(self, message: ResumePanel.AnswerRequested) -> None:
        self.answer(message.workload)

    def on_log_panel_search_changed(self, message: LogPanel.SearchChanged) -> None:
        message.panel.show(self.session, self.query_one(DagView).selected)

    # -- actions -------------------------------------------------------------------------

    def action_failed_only(self) -> None:
        on = self.query_one(DagView).toggle_failed_only()
        self.notify("Showing failed workloads only" if on else "Showing all workloads", timeout=2)

    def action_search_logs(self) -> None:
        self._visible_logs().open_search()

    def action_run_from(self) -> None:
        self.app.action_run_from(self.query_one(DagView).selected)  # type: ignore[attr-defined]

    def action_edit(self) -> None:
        self.app.action_edit(self.query_one(DagView).selected)  # type: ignore[attr-defined]

    def _live(self) -> bool:
        """A run of this UI (not a replay, not a daemon attached to)."""
        from gxo.tui.session import RunSession

        return isinstance(self.session, RunSession)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_workload":  # x: nothing to cancel in a replay or over a daemon
            return self._live()
        return True

    def action_cancel_workload(self) -> None:
        """``x``: cancel the selected workload; a running one after a confirmation, a
        pending one at once (it will not start). The rest of the run goes on."""
        from gxo.tui.screens.confirm_cancel import ConfirmCancelScreen

        name = self.query_one(DagView).selected
        if name is None or not self._live():
            return
        session = self.session
        state = session.engine.states.get(name)
        if state is None:
            return
        if not session.running or session.cancelling:
            self.notify("No run in progress: nothing to cancel.", timeout=3)
            return
        if state.status.terminal:
            self.notify(f"{name} has ended ({state.status.value}).", timeout=3)
            return

        def cancel(confirmed: bool | None = True) -> None:
            if not confirmed:
                return
            if session.engine.cancel_workload(name):
                pending = state.status.value != "Running" and state.started_at is None
                self.notify(
                    f"{name} cancelled: it will not run." if pending else f"Cancelling {name}…",
                    timeout=3,
                )
            else:
                self.notify(f"{name}: nothing left to cancel.", timeout=3)
            self.sync()

        if state.status.value == "Pending":
            cancel()
        else:  # running (or paused): its work is lost, so ask first
            self.app.push_screen(ConfirmCancelScreen(name), cancel)

    def action_help(self) -> None:
        from gxo.tui.screens.help import HelpScreen
        from gxo.tui.widgets.resume_panel import ResumePanel as Resume

        extra = type(self) is not RunScreen  # e.g. gxo ui --attach: its own keys first
        self.app.push_screen(
            HelpScreen(
                [
                    *([("Attached to a daemon", type(self).BINDINGS)] if extra else []),
                    ("Workbench", RunScreen.BINDINGS),
                    ("DAG", DagView.BINDINGS),
                    ("Logs", LogPanel.BINDINGS),
                    ("Resume tab", Resume.BINDINGS),
                ]
            )
        )

    def _visible_logs(self) -> LogPanel:
        dock = self.query_one("#log-dock", LogPanel)
        if dock.display:  # large terminal: the docked panel is in view
            return dock
        self.action_tab("logs")
        return self.query_one("#log-panel", LogPanel)

    def action_all_logs(self) -> None:
        panel = self._visible_logs()
        panel.action_toggle_all()
        panel.query_one("#log-lines").focus()

    def action_copy(self) -> None:
        """``y``: the selected workload's error, else its resume token (paused), else its
        rendered params (secrets redacted) — to the clipboard (OSC 52)."""
        import json

        name = self.query_one(DagView).selected
        if name is None:
            return
        state = self.session.engine.states.get(name)
        paused = self.session.model.paused.get(name)
        if state is not None and state.error:
            what, text = "error", str(state.error)
        elif paused is not None and paused.token:
            what, text = "resume token", paused.token
        elif state is not None and state.rendered_params is not None:
            what, text = "params", json.dumps(state.rendered_params, indent=2, default=str)
        else:
            self.notify(f"{name}: nothing to copy yet.", timeout=3)
            return
        self.app.copy_to_clipboard(text)
        self.notify(f"copied {name}'s {what}", timeout=3)

    def action_focus_dag(self) -> None:
        self.query_one(DagView).focus()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        if tab == "timeline":
            self.query_one(Timeline).show(self.session)
        if tab == "resume" and self.session.model.paused:
            self.query_one(ResumePanel).table.focus()

    def action_answer(self) -> None:
        """Answer a paused workload: the one selected in the DAG if it is paused, else
        the Resume tab's row under the cursor, else the first one."""
        paused = self.session.model.paused
        if not paused:
            self.notify("No workload is paused.", timeout=3)
            return
        selected = self.query_one(DagView).selected
        if selected not in paused:
            selected = self.query_one(ResumePanel).selected
        self.answer(selected if selected in paused else next(iter(paused)))

    def answer(self, workload: str) -> None:
        """Open the approval form of ``workload`` (a paused one)."""
        entry = self.session.model.paused.get(workload)
        if entry is None:
            self.notify(f"{workload} is no longer paused.", severity="warning", timeout=4)
            return
        approvals = getattr(self.session, "approvals", None)
        if approvals is None:
            how = f"gxo ctl resume --token {entry.token}" if entry.token else "gxo ctl resume"
            self.notify(f"Answer {workload} with `{how}`.", timeout=6)
            return

        def answered(message: str | None) -> None:
            if message:
                self.notify(message, timeout=4)
            self.sync()

        def still_paused() -> bool:
            return workload in self.session.model.paused

        form = ApprovalScreen(entry, approvals, still_paused=still_paused)
        self.app.push_screen(form, answered)
