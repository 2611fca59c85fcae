"""Per-workload logs: stdout/stderr lines and module log lines, tailing live, searchable."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.highlighter import Highlighter
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Log, Static

from gxo.tui.model import LOG_LIMIT, LogLine

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from gxo.tui.session import RunSession

__all__ = ["LogPanel"]

# One marker character per line says where it came from; the highlighter colours
# lines by it. Log renders (and highlights) only the visible lines, so tens of
# thousands of lines cost nothing until they are looked at.
_MARKER = {"stdout": "│", "stderr": "┃"}
_LEVEL_MARKER = {"warning": "!", "error": "✘", "debug": "·"}
_MARKER_STYLE = {"┃": "red", "!": "yellow", "✘": "bold red", "·": "dim", "•": "dim"}


class _LineHighlighter(Highlighter):
    """Colours a line by its marker and highlights the search text."""

    def __init__(self) -> None:
        self.query = ""

    def highlight(self, text: Text) -> None:
        style = _MARKER_STYLE.get(text.plain[:1])
        if style:
            text.stylize(style)
        if self.query:
            text.highlight_words([self.query], style="reverse yellow", case_sensitive=False)


class LogPanel(Vertical):
    """The selected workload's log lines. ``/`` (on the screen) opens the search box:
    lines are filtered as you type (case-insensitive) and matches highlighted;
    enter keeps the filter, escape clears it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear_search", "Clear search", show=False)
    ]

    class SearchChanged(Message):
        """The filter changed: the screen redraws the panel at once, not on the next tick."""

        def __init__(self, panel: LogPanel) -> None:
            super().__init__()
            self.panel = panel

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.query_text = ""
        self._key: tuple[int, str] | None = None
        self._last_seq = 0
        self._shown = 0
        self._last_shown: tuple[RunSession, str] | None = None
        self._highlighter = _LineHighlighter()

    def compose(self) -> ComposeResult:
        search = Input(placeholder="search logs — enter keeps, esc clears", id="log-search")
        search.display = False
        yield search
        yield Static(id="log-title")
        log = Log(id="log-lines", max_lines=LOG_LIMIT, highlight=True, auto_scroll=True)
        log.highlighter = self._highlighter
        yield log

    # -- data --------------------------------------------------------------------------

    def show(self, session: RunSession, name: str | None) -> None:
        """Tail ``name``'s lines: append what is new, or refill after a change of workload."""
        if name is None:
            return
        key = (id(session), name)
        self._last_shown = (session, name)
        lines = session.model.log_lines(name)
        log = self.query_one("#log-lines", Log)
        if key != self._key:
            self._key = key
            log.clear()
            self._shown = 0
            # A new run (re-run) numbers its lines from 1 again: forget the old run's last.
            self._last_seq = 0
            fresh = list(lines)
        else:
            fresh = []
            for line in reversed(lines):  # newest first: stop at the first line already shown
                if line.seq <= self._last_seq:
                    break
                fresh.append(line)
            fresh.reverse()
        if fresh:
            self._last_seq = fresh[-1].seq
            wanted = self.query_text.lower()
            texts = [
                self._format(line) for line in fresh if not wanted or wanted in line.text.lower()
            ]
            self._shown += len(texts)
            log.write_lines(texts)
        view = session.model.workloads.get(name)
        self._title(name, len(lines), running=view is None or view.status in ("Pending", "Running"))

    @staticmethod
    def _format(line: LogLine) -> str:
        if line.stream == "log":
            marker = _LEVEL_MARKER.get(line.level, "•")
        else:
            marker = _MARKER.get(line.stream, "•")
        return f"{marker} {line.text}"

    def _title(self, name: str, total: int, *, running: bool) -> None:
        title = Text(name, style="bold")
        title.append(f"  {total} line{'s' if total != 1 else ''}", style="dim")
        if self.query_text:
            title.append(
                f"  filter “{self.query_text}”: {self._shown} match{'es' if self._shown != 1 else ''}",
                style="yellow",
            )
        elif total == 0:
            title.append("  (no output yet)" if running else "  (no output)", style="dim")
        self.query_one("#log-title", Static).update(title)

    # -- search ---------------------------------------------------------------------------

    def open_search(self) -> None:
        search = self.query_one("#log-search", Input)
        search.display = True
        search.focus()

    def set_search(self, text: str) -> None:
        self.query_text = text
        self._highlighter.query = text
        self._key = None  # force a refill on the next show()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.set_search(event.value)
        self.post_message(LogPanel.SearchChanged(self))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one("#log-lines", Log).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Without a search, escape belongs to the screen (back to the DAG).
        if action == "clear_search":
            return bool(self.query_text) or self.query_one("#log-search", Input).display
        return True

    def action_clear_search(self) -> None:
        search = self.query_one("#log-search", Input)
        search.value = ""
        search.display = False
        self.set_search("")
        self.post_message(LogPanel.SearchChanged(self))
        self.query_one("#log-lines", Log).focus()
