"""The Resume tab: workloads paused for a human, and the key that answers one."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from gxo.engine.payload_form import schema_summary

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from gxo.tui.model import PausedView
    from gxo.tui.session import RunSession

__all__ = ["ResumePanel", "age_text"]

NO_TOKEN = "—"
PROMPT_WIDTH = 48


def _clip(text: str, width: int) -> str:
    """The first line, at most ``width`` characters; "…" says something was left out."""
    line = text.splitlines()[0] if text.strip() else ""
    if len(line) > width:
        return line[: width - 1] + "…"
    return line if line == text else line + " …"


def age_text(since: float, expires_at: float | None, now: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``; with a timeout, the time left too: ``42s · 18s left``."""
    text = _span(now - since)
    if expires_at is not None:
        text += f" · {_span(expires_at - now)} left"
    return text


def _span(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class ResumePanel(Vertical):
    """Paused workloads (status ``Paused``) from WORKLOAD_STATUS events: prompt, payload
    schema, age, and the resume token when the run has one (the daemon's; a local run
    is answered here, without a token). A workload leaves the list as soon as its status
    changes — resumed, rejected, or its timeout decided.

    ``a`` or ``enter`` on a row asks to answer it (:class:`AnswerRequested`); the screen
    opens the form.
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("a", "answer", "Answer")]

    class AnswerRequested(Message):
        def __init__(self, workload: str) -> None:
            super().__init__()
            self.workload = workload

    def __init__(self, *, timings: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self.timings = timings  # False: ages frozen (snapshot tests)
        self._key: tuple[int, bool, tuple[PausedView, ...]] | None = None
        self._ages: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Static(
            "No paused workloads. Workloads waiting for a human (control:wait_for_signal) "
            "appear here; select one and press a or enter to answer it.",
            id="resume-empty",
        )
        table: DataTable[str] = DataTable(id="resume-table", cursor_type="row", zebra_stripes=True)
        for column in ("workload", "age", "token", "prompt"):
            table.add_column(column, key=column)
        table.display = False
        yield table
        yield Static("", id="resume-detail")

    @property
    def table(self) -> DataTable[str]:
        return self.query_one("#resume-table", DataTable)

    @property
    def selected(self) -> str | None:
        """The workload of the row under the cursor."""
        table = self.table
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return row_key.value

    def show(self, session: RunSession, now: float | None = None) -> None:
        """Rows from the model; only the ages change when the pauses did not."""
        now = time.time() if now is None else now
        paused = session.model.paused
        answerable = getattr(session, "approvals", None) is not None
        key = (id(session), answerable, tuple(paused.values()))
        table = self.table
        if key != self._key:
            self._key = key
            selected = self.selected
            table.clear()
            self._ages = {}
            for entry in paused.values():
                age = self._age(entry, now)
                self._ages[entry.workload] = age
                table.add_row(
                    entry.workload,
                    age,
                    entry.token or NO_TOKEN,
                    _clip(entry.prompt, PROMPT_WIDTH),
                    key=entry.workload,
                )
            if selected in paused:
                table.move_cursor(row=table.get_row_index(selected))
            table.display = bool(paused)
            self.query_one("#resume-empty", Static).display = not paused
            self._show_detail(session)
            return
        for entry in paused.values():
            age = self._age(entry, now)
            if self._ages.get(entry.workload) != age:
                self._ages[entry.workload] = age
                table.update_cell(entry.workload, "age", age)

    def _age(self, entry: PausedView, now: float) -> str:
        return age_text(entry.since, entry.expires_at, now) if self.timings else "--"

    def _show_detail(self, session: RunSession) -> None:
        """The pause under the cursor in full: prompt, payload fields, how to answer."""
        detail = self.query_one("#resume-detail", Static)
        entry = session.model.paused.get(self.selected or "")
        detail.display = entry is not None
        if entry is None:
            return
        text = Text()
        text.append(f"⏸ {entry.workload}\n", style="bold magenta")
        text.append(f"{entry.prompt}\n")
        text.append("payload: ", style="dim")
        text.append(f"{schema_summary(entry.schema, width=300)}\n")
        if entry.token:
            text.append("token: ", style="dim")
            text.append(f"{entry.token}\n")
        answerable = getattr(session, "approvals", None) is not None
        text.append(
            "a / enter: answer (approve or reject)" if answerable else "answer with gxo ctl resume",
            style="dim",
        )
        detail.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        session = getattr(self.screen, "session", None)
        if session is not None:
            self._show_detail(session)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.AnswerRequested(event.row_key.value))

    def action_answer(self) -> None:
        workload = self.selected
        if workload is not None:
            self.post_message(self.AnswerRequested(workload))
