"""The resume-tokens panel: workloads paused for a human, with token and prompt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.containers import Vertical
from textual.widgets import DataTable, Static

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from gxo.tui.session import RunSession

__all__ = ["ResumePanel"]


class ResumePanel(Vertical):
    """Paused workloads (status ``Paused``), filled from WORKLOAD_STATUS events that
    carry ``resume_token`` and ``prompt``; a workload leaves the list when its status
    changes again. Empty until human-in-the-loop workloads exist."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._key: tuple[int, tuple[str, ...]] | None = None

    def compose(self) -> ComposeResult:
        yield Static(
            "No paused workloads. Workloads waiting for a human appear here with their resume token.",
            id="resume-empty",
        )
        table: DataTable[str] = DataTable(id="resume-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("workload", "token", "prompt")
        table.display = False
        yield table

    def show(self, session: RunSession) -> None:
        paused = session.model.paused
        key = (id(session), tuple(f"{p.workload}\0{p.token}\0{p.prompt}" for p in paused.values()))
        if key == self._key:
            return
        self._key = key
        table = self.query_one("#resume-table", DataTable)
        table.clear()
        for entry in paused.values():
            table.add_row(entry.workload, entry.token, entry.prompt, key=entry.workload)
        table.display = bool(paused)
        self.query_one("#resume-empty", Static).display = not paused
