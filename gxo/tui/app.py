"""The ``gxo ui`` application and its factory (used by the CLI and the snapshot tests)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from gxo.api import GxoError, LoadedPlaybook, load_playbook
from gxo.tui.screens import ConfirmQuitScreen, ErrorScreen, RunScreen
from gxo.tui.session import RunSession
from gxo.tui.watch import PlaybookWatch, watch_loop

__all__ = ["GxoApp", "create_app", "print_outcome"]

INVALID_PLAYBOOK = 2
INTERRUPTED = 130


class GxoApp(App[int]):
    """Loads the playbook, runs it, shows it live; the exit code is the run's."""

    CSS_PATH = "gxo.tcss"
    TITLE = "GXO"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    # ctrl+c and ctrl+q (Textual's own binding) both go through action_quit's confirmation.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True)
    ]

    def __init__(
        self,
        playbook: Path,
        *,
        variables: dict[str, Any] | None = None,
        report: Path | None = None,
        concurrency: int | None = None,
        workspace: str | None = None,
        timings: bool = True,
        run_id: str | None = None,
        watch: bool = False,
        watch_debounce_ms: int = 400,
        keep_runs: int = 0,
        replay: tuple[dict[str, Any], list[dict[str, Any]]] | None = None,
    ) -> None:
        super().__init__()
        self.playbook_path = playbook
        self.variables = dict(variables or {})
        self.report = report
        self.concurrency = concurrency
        self.workspace = workspace
        self.timings = timings  # False freezes clocks and durations (snapshot tests)
        self.run_id = run_id
        self.loaded: LoadedPlaybook | None = None
        self.session: RunSession | None = None
        self.load_error: str | None = None
        self.exit_code = 0
        # --watch: run again when the playbook or a file it reads is saved
        self.file_watch: PlaybookWatch | None = PlaybookWatch(playbook) if watch else None
        self.watch_debounce_ms = watch_debounce_ms
        self._watch_stop = asyncio.Event()
        self.reruns_on_change = 0
        self.keep_runs = keep_runs  # runs kept under .gxo/runs/ (gxo/tui/history.py)
        self.kept: Path | None = None  # the last run's directory there
        self.replay = replay  # (report, log lines) of a finished run to show

    # -- start-up ----------------------------------------------------------------------

    def on_mount(self) -> None:
        # SIGTERM gets the same clean cancel as quitting (skipped off the main thread).
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._terminate)
        if self.file_watch is not None:
            self.run_worker(self._watch_files(), group="watch", exclusive=True)
        if self.replay is not None:
            self.show_replay(*self.replay)
        else:
            self.load_and_run()

    def show_replay(self, report: dict[str, Any], logs: list[dict[str, Any]]) -> None:
        """``gxo ui --replay``: a finished run in the same panels (r runs it for real)."""
        from gxo.tui.history import ReplaySession

        try:
            self.loaded = load_playbook(
                self.playbook_path, check_lifecycles=True, extra_names=set(self.variables)
            )
        except GxoError as exc:
            self.load_error = str(exc)
            self.exit_code = INVALID_PLAYBOOK
            self.push_screen(ErrorScreen("Invalid playbook", str(exc)), self._error_closed)
            return
        session = ReplaySession(self.loaded, report, logs)
        self.session = session  # type: ignore[assignment]  # stands where a RunSession stands
        self.push_screen(RunScreen(session, timings=self.timings))  # type: ignore[arg-type]
        when = str(report.get("started_at", ""))
        self.notify(
            f"Replay of run {report.get('run_id')} ({session.model.run_status}, {when}); "
            "r runs the playbook again for real.",
            timeout=8,
        )

    def load_and_run(
        self, select: Callable[[LoadedPlaybook], set[str] | None] | None = None
    ) -> None:
        """Load the playbook (again) and run it; ``select`` names the workloads of a
        partial re-run (the others keep the last run's outcome)."""
        try:
            self.loaded = load_playbook(
                self.playbook_path, check_lifecycles=True, extra_names=set(self.variables)
            )
        except GxoError as exc:
            self.load_error = str(exc)
            self.exit_code = INVALID_PLAYBOOK
            self.push_screen(ErrorScreen("Invalid playbook", str(exc)), self._error_closed)
            return
        self.load_error = None
        only = select(self.loaded) if select is not None else None
        self.start_run(only=only)

    def _error_closed(self, choice: str | None) -> None:
        if choice == "reload":
            self.load_and_run()
        else:
            self.exit(self.exit_code, return_code=self.exit_code)

    def start_run(self, only: set[str] | None = None) -> None:
        assert self.loaded is not None
        previous = self.session if only is not None else None
        session = RunSession(
            self.loaded,
            variables=self.variables,
            concurrency=self.concurrency,
            workspace=self.workspace,
            report=self.report,
            run_id=self.run_id,
            on_done=self._run_done,
            only=only,
            previous=previous,
        )
        self.session = session
        if self.file_watch is not None:
            self.file_watch.run_started()
        if isinstance(self.screen, RunScreen):
            self.screen.attach(session)
        else:
            self.push_screen(RunScreen(session, timings=self.timings))
        session.start()

    def _run_done(self, session: RunSession) -> None:
        if session is not self.session:
            return
        if self.file_watch is not None:
            self.file_watch.run_ended()
        self.exit_code = session.exit_code
        if session.result is not None and self.keep_runs > 0:
            from gxo.tui.history import save_run

            try:
                self.kept = save_run(
                    session.result, playbook=self.playbook_path, keep=self.keep_runs
                )
            except OSError as exc:
                self.notify(
                    f"cannot keep the run in .gxo/runs: {exc.strerror or exc}",
                    severity="warning",
                    timeout=6,
                )
        if session.result is not None:
            known = self.loaded.warnings if self.loaded is not None else []
            for warning in session.result.warnings:
                if warning not in known:  # e.g. playbook vars that failed to render
                    self.notify(warning, title="Warning", severity="warning", timeout=15)
        if session.report_error:
            self.notify(session.report_error, title="Report", severity="error", timeout=10)
        if session.error is not None:
            self.push_screen(
                ErrorScreen("The run could not start", str(session.error), reload=False),
                self._error_closed,
            )
        elif session.crash is not None:
            self.push_screen(
                ErrorScreen("Internal error (please report it)", session.crash, reload=False),
                self._error_closed,
            )

    # -- --watch -------------------------------------------------------------------------

    async def _watch_files(self) -> None:
        assert self.file_watch is not None
        await watch_loop(
            self.file_watch, self._watch_stop, self._files_changed, debounce=self.watch_debounce_ms
        )

    async def _files_changed(self, changed: list[Path]) -> None:
        """A watched file was saved: cancel a run in progress, close what belongs to it
        (an approval form, the quit question, an error screen), load and run again."""
        names = [_shown_path(p) for p in changed]
        more = f" (+{len(names) - 3} more)" if len(names) > 3 else ""
        self.notify(f"changed: {', '.join(names[:3])}{more} — running again", timeout=3)
        if self.session is not None and self.session.running:
            await self.session.cancel()
        while len(self.screen_stack) > 1 and not isinstance(self.screen, RunScreen):
            self.pop_screen()
        self.reruns_on_change += 1
        self.load_and_run()

    def exit(self, *args: Any, **kwargs: Any) -> None:
        self._watch_stop.set()  # the watching thread returns within one step
        super().exit(*args, **kwargs)

    # -- actions -----------------------------------------------------------------------

    def action_rerun(self) -> None:
        """Run again from the file as it is now: an edit since the last run counts, and
        an edit that broke it shows the loader's error screen."""
        if self.session is not None and self.session.running:
            self.notify("The run is still in progress.", severity="warning", timeout=3)
            return
        self.load_and_run()

    def action_rerun_failed(self) -> None:
        """``R``: run again what did not complete (failed, skipped, interrupted), with
        the stream partners they need; what completed keeps its outcome and results."""
        if not self._can_rerun():
            return
        assert self.session is not None
        done = {n for n, s in self.session.engine.states.items() if s.status.value == "Completed"}
        if len(done) == len(self.session.engine.states):
            self.notify("Nothing failed: every workload completed.", timeout=3)
            return
        self.load_and_run(
            lambda loaded: _with_partners(
                loaded, {w.name for w in loaded.playbook.workloads} - done
            )
        )

    def action_run_from(self, name: str | None) -> None:
        """``s``: run the selected workload and everything downstream of it again."""
        if name is None or not self._can_rerun():
            return

        def select(loaded: LoadedPlaybook) -> set[str] | None:
            graph = loaded.graph
            if graph is None or name not in graph.dependents:
                self.notify(f"'{name}' is no longer in the playbook.", severity="warning")
                return None
            chosen, todo = {name}, [name]
            while todo:
                current = todo.pop()
                for dependent in graph.dependents[current] | set(graph.stream_consumers[current]):
                    if dependent not in chosen:
                        chosen.add(dependent)
                        todo.append(dependent)
            return _with_partners(loaded, chosen)

        self.load_and_run(select)

    def action_edit(self, name: str | None) -> None:
        """``e``: open the playbook in ``$VISUAL``/``$EDITOR`` at ``name``'s definition."""
        import os
        import shlex
        import subprocess

        from textual.app import SuspendNotSupported

        if name is None or self.loaded is None:
            return
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
        if not editor:
            self.notify("Set $EDITOR (or $VISUAL) to open the playbook from here.", timeout=4)
            return
        location = self.loaded.workload_location(name)
        at_line = [f"+{location.line}"] if location.line is not None else []
        command = [*shlex.split(editor), *at_line, location.file]
        try:
            with contextlib.ExitStack() as stack:
                with contextlib.suppress(SuspendNotSupported):  # headless (tests): no terminal
                    stack.enter_context(self.suspend())
                code = subprocess.call(command)
        except OSError as exc:
            self.notify(f"cannot run {command[0]}: {exc.strerror or exc}", severity="error")
            return
        if code != 0:
            self.notify(f"{command[0]} exited with {code}", severity="warning", timeout=4)
        elif self.file_watch is None:
            self.notify("Saved? Press r to run it again.", timeout=4)

    def _can_rerun(self) -> bool:
        if self.session is not None and self.session.running:
            self.notify("The run is still in progress.", severity="warning", timeout=3)
            return False
        if self.session is None or self.session.result is None:
            self.notify("No finished run to start from: press r.", timeout=3)
            return False
        return True

    async def action_quit(self) -> None:
        session = self.session
        if session is not None and session.running:
            if not isinstance(self.screen, ConfirmQuitScreen):
                self.push_screen(ConfirmQuitScreen(), self._quit_confirmed)
            return
        self.exit(self.exit_code, return_code=self.exit_code)

    async def _quit_confirmed(self, quit_: bool | None) -> None:
        if quit_:
            await self.cancel_and_exit()

    async def cancel_and_exit(self) -> None:
        """Cancel the run, wait for its cleanup (children killed, report written), exit 130."""
        session = self.session
        if session is not None and session.running:
            self.notify("Cancelling the run…", timeout=5)
            await session.cancel()
            self.exit_code = INTERRUPTED
        self.exit(self.exit_code, return_code=self.exit_code)

    def _terminate(self) -> None:
        self.run_worker(self.cancel_and_exit(), group="terminate", exclusive=True)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        if isinstance(screen, RunScreen):
            yield SystemCommand("Re-run", "Run the playbook again (r)", self.action_rerun)
            yield SystemCommand(
                "Re-run failed",
                "Run again what did not complete; the rest keeps its results (R)",
                self.action_rerun_failed,
            )
            yield SystemCommand(
                "Run from here",
                "Run the selected workload and its dependents again (s)",
                screen.action_run_from,
            )
            yield SystemCommand(
                "Edit", "Open the selected workload in $EDITOR (e)", screen.action_edit
            )
            if screen.check_action("cancel_workload", ()):
                yield SystemCommand(
                    "Cancel workload",
                    "Cancel the selected workload; the rest of the run goes on (x)",
                    screen.action_cancel_workload,
                )
            yield SystemCommand("Keys", "Every key of the workbench (?)", screen.action_help)
            yield SystemCommand(
                "Failed only",
                "Show only failed workloads in the DAG (f)",
                screen.action_failed_only,
            )
            yield SystemCommand(
                "Search logs",
                "Filter the selected workload's log lines (/)",
                screen.action_search_logs,
            )
            yield SystemCommand(
                "Details",
                "Show the selected workload's details (enter)",
                lambda: screen.action_tab("details"),
            )
        yield SystemCommand(
            "Quit", "Quit; asks first while a run is in progress (q)", self.action_quit
        )
        for command in super().get_system_commands(screen):
            if command.title != "Quit":
                yield command

    async def on_unmount(self) -> None:
        # However the app ends (an exception, a test's app.exit()), never leave a
        # run behind: its child processes would outlive the UI.
        if self.session is not None and self.session.running:
            await self.session.cancel()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)


def create_app(
    playbook: Path | str,
    *,
    variables: dict[str, Any] | None = None,
    report: Path | None = None,
    concurrency: int | None = None,
    workspace: str | None = None,
    timings: bool = True,
    run_id: str | None = None,
    watch: bool = False,
    watch_debounce_ms: int = 400,
    keep_runs: int = 0,
    replay: tuple[dict[str, Any], list[dict[str, Any]]] | None = None,
) -> GxoApp:
    """The one way to build the app: the CLI and the tests both use it."""
    return GxoApp(
        Path(playbook),
        variables=variables,
        report=report,
        concurrency=concurrency,
        workspace=workspace,
        timings=timings,
        run_id=run_id,
        watch=watch,
        watch_debounce_ms=watch_debounce_ms,
        keep_runs=keep_runs,
        replay=replay,
    )


def _with_partners(loaded: LoadedPlaybook, names: set[str]) -> set[str]:
    """``names`` plus the workloads they stream with: a pipeline runs whole."""
    graph = loaded.graph
    assert graph is not None  # load_playbook validated it
    if not graph.pipelines:
        graph.build_pipelines()
    out = set(names)
    for name in names:
        index = graph.pipeline_of.get(name)
        if index is not None:
            out.update(graph.pipelines[index].members)
    return out


def _shown_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def print_outcome(app: GxoApp) -> None:
    """After the terminal is restored: the same closing lines as ``gxo run``."""
    from gxo.console import err_console, print_error, print_summary, print_warnings

    console = err_console()
    if app.load_error is not None:
        print_error(console, app.load_error)
        return
    session = app.session
    if session is None:
        return
    if session.error is not None:
        print_error(console, str(session.error))
    if session.crash is not None:
        print_error(console, session.crash)
    if session.report_error is not None:
        print_error(console, session.report_error)
    if session.result is not None:
        loaded_warnings = app.loaded.warnings if app.loaded is not None else []
        print_warnings(
            console,
            loaded_warnings + [w for w in session.result.warnings if w not in loaded_warnings],
        )
        print_summary(console, session.result)
