"""The header: playbook, run status, elapsed time and workload counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from gxo.tui.format import STATUS_STYLE, elapsed, status_text

if TYPE_CHECKING:
    from gxo.tui.session import RunSession

__all__ = ["RunHeader"]

_COUNTED = ("Completed", "Failed", "Skipped", "Running", "Paused", "Pending")


class RunHeader(Static):
    """One line. The run status comes from the model, which takes its final value
    only from RUN_FINISHED: it never says Completed while anything still runs."""

    def __init__(self, *, timings: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self.timings = timings

    def show(self, session: RunSession) -> None:
        model = session.model
        text = Text(" GXO ", style="bold reverse")
        text.append(f" {model.playbook}  ", style="bold")
        if session.cancelling and not model.finished:
            text.append_text(Text("■ Cancelling…", style="bold yellow"))
        else:
            text.append_text(status_text(model.run_status))
        text.append("  ⏱ ", style="dim")
        text.append(elapsed(model.elapsed()) if self.timings else "--:--.-", style="dim")
        counts = model.counts()
        text.append("  ")
        for status in _COUNTED:
            if counts.get(status):
                glyph, style = STATUS_STYLE[status]
                text.append(f" {glyph}{counts[status]}", style=style)
        text.append(f"  of {len(model.workloads)}", style="dim")
        self.update(text)
