"""``gxo ui --attach [SOCKET]``: the run screen of ``gxo ui`` over a running daemon.

Read-only, except ``s`` (stop) and ``S`` (start) of the selected workload, which go
through the daemon's ``StopWorkload``/``StartWorkload`` like ``gxo ctl stop|start``.
Quitting leaves the daemon and its workloads running.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from gxo.tui.attach_session import AttachSession
from gxo.tui.screens import ErrorScreen, RunScreen
from gxo.tui.widgets import DagView

__all__ = ["AttachApp", "AttachScreen", "run_attach"]

UNREACHABLE = 3  # as `gxo ctl`: no daemon answers


class AttachScreen(RunScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "act('stop')", "Stop"),
        Binding("S", "act('start')", "Start"),
    ]

    session: AttachSession  # type: ignore[assignment]  # stands where a RunSession stands

    def __init__(self, session: AttachSession, *, timings: bool = True) -> None:
        super().__init__(session, timings=timings)  # type: ignore[arg-type]
        self._layout = -1
        self._told_lost = False

    def sync(self) -> None:
        session = self.session
        if session.layout_version != self._layout:  # a playbook was applied or removed
            self._layout = session.layout_version
            self.query_one(DagView).show_model(session.model)
        if session.error is not None and not self._told_lost:
            self._told_lost = True  # the header says Interrupted; this says why
            self.notify(f"lost the daemon: {session.error}", severity="error", timeout=30)
        super().sync()

    def action_act(self, action: str) -> None:
        name = self.query_one(DagView).selected
        if name is None:
            return
        # A stop may take the workload's stop_timeout: the UI keeps going meanwhile.
        self.run_worker(self._act(action, name), group="act")

    async def _act(self, action: str, name: str) -> None:
        from gxo.ctl.client import CtlError

        try:
            message = await self.session.act(action, name)
        except CtlError as exc:
            self.notify(exc.message, title=f"{action} {name}", severity="error", timeout=6)
            return
        self.notify(message, timeout=3)


class AttachApp(App[int]):
    CSS_PATH = "gxo.tcss"
    TITLE = "GXO"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True)
    ]

    def __init__(self, client: Any, *, timings: bool = True, poll: float | None = None) -> None:
        super().__init__()
        self.client = client
        self.timings = timings
        self.session = AttachSession(client, **({"poll": poll} if poll else {}))
        self.exit_code = 0
        self.error: str | None = None

    async def on_mount(self) -> None:
        from gxo.ctl.client import CtlError

        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self.exit)
        try:
            await self.session.start()
        except CtlError as exc:
            self.error, self.exit_code = exc.message, exc.exit_code
            self.push_screen(
                ErrorScreen("Cannot attach to the daemon", exc.message, reload=False),
                lambda _: self.exit(self.exit_code, return_code=self.exit_code),
            )
            return
        self.push_screen(AttachScreen(self.session, timings=self.timings))

    def action_rerun(self) -> None:
        """``r`` on the run screen: nothing to re-run here; list the workloads now."""
        self.session._wake.set()
        self.notify("Attached to a daemon: read-only (s stops, S starts).", timeout=3)

    async def action_quit(self) -> None:
        self.exit(self.exit_code, return_code=self.exit_code)

    async def on_unmount(self) -> None:
        await self.session.close()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)


def run_attach(socket: str | None) -> int:
    """Attach to the daemon at ``socket`` (default: GXO_SOCKET, then the usual place)."""
    from gxo.console import err_console, print_error
    from gxo.ctl.client import Client, CtlError

    try:
        client = Client(socket)
        client.health()  # fail here, in plain text, rather than in a blank UI
    except CtlError as exc:
        print_error(err_console(), exc.message)
        return exc.exit_code
    from gxo.tui import NO_TERMINAL, require_terminal

    problem = require_terminal()
    if problem is not None:
        client.close()
        print_error(err_console(), problem)
        return NO_TERMINAL
    app = AttachApp(client)
    result = app.run()
    if app.error is not None:
        print_error(err_console(), app.error)
    if app.session.error is not None:
        print_error(err_console(), f"lost the daemon: {app.session.error}")
        return UNREACHABLE
    return int(result) if result is not None else (app.return_code or 0)
