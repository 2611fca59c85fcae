"""Per-workload logs: stdout/stderr lines and module log lines, tailing live, searchable."""

from __future__ import annotations

import re
import time
from pathlib import Path
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


# Workload names in the all-workloads view: distinct colours from the terminal's palette.
_WORKLOAD_COLOURS = ("cyan", "magenta", "green", "blue", "yellow", "bright_cyan", "bright_magenta")
_TIME_WIDTH = 12  # "HH:MM:SS.mmm"


def search_pattern(text: str) -> tuple[re.Pattern[str] | None, bool]:
    """The search as a case-insensitive regex, and whether it is one: text that is not a
    valid regex (``a[``) is searched literally instead of being an error."""
    if not text:
        return None, False
    try:
        return re.compile(text, re.IGNORECASE), True
    except re.error:
        return re.compile(re.escape(text), re.IGNORECASE), False


class _LineHighlighter(Highlighter):
    """Colours a line by its marker (and, in the all-workloads view, its workload's
    name) and highlights the search matches."""

    def __init__(self) -> None:
        self.pattern: re.Pattern[str] | None = None
        self.names: dict[str, str] = {}  # all-workloads view: name -> colour
        self.name_width = 0

    def highlight(self, text: Text) -> None:
        style = _MARKER_STYLE.get(text.plain[:1])
        if style:
            text.stylize(style)
        if self.name_width:
            text.stylize("dim", 2, 2 + _TIME_WIDTH)
            start = 3 + _TIME_WIDTH
            name = text.plain[start : start + self.name_width].rstrip()
            colour = self.names.get(name)
            if colour:
                text.stylize(f"bold {colour}", start, start + len(name))
        if self.pattern is not None:
            text.highlight_regex(self.pattern, style="reverse yellow")


class LogPanel(Vertical):
    """The selected workload's log lines. ``/`` (on the screen) opens the search box:
    lines are filtered as you type (case-insensitive) and matches highlighted;
    enter keeps the filter, escape clears it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear_search", "Clear search", show=False),
        Binding(
            "w",
            "toggle_all",
            "All logs",
            tooltip="All workloads' lines, interleaved (again: the selected one's)",
        ),
        Binding("F", "toggle_follow", "Follow", tooltip="Follow new lines on/off", show=False),
        Binding("n", "step_match(1)", "Next match", show=False),
        Binding("N", "step_match(-1)", "Previous match", show=False),
        Binding("ctrl+s", "save", "Save", tooltip="Save the lines shown to a file", show=False),
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
        self.all_workloads = False  # w: every workload's lines, interleaved
        self.follow = True  # F: keep the newest line in view
        self.pattern: re.Pattern[str] | None = None
        self.regex = False
        self.shown_lines: list[str] = []  # what the panel shows now (ctrl+s saves it)
        self.saved: Path | None = None  # the last file ctrl+s wrote
        self.current: int | None = None  # n / N: the match in view (index in shown_lines)

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
        """Tail ``name``'s lines (or all workloads' with ``w``): append what is new, or
        refill after a change of workload, run or search."""
        if name is None and not self.all_workloads:
            return
        key = (id(session), "*" if self.all_workloads else str(name))
        self._last_shown = (session, str(name))
        log = self.query_one("#log-lines", Log)
        refill = key != self._key
        if refill:
            self._key = key
            log.clear()
            self._shown = 0
            self.shown_lines = []
            self.current = None
            # A new run (re-run) numbers its lines from 1 again: forget the old run's last.
            self._last_seq = 0
        if self.all_workloads:
            fresh = session.model.all_log_lines(self._last_seq)
            total = sum(len(lines) for lines in session.model.logs.values())
            self._name_colours(session)
        else:
            lines = session.model.log_lines(str(name))
            total = len(lines)
            fresh = []
            for line in reversed(lines):  # newest first: stop at the first line already shown
                if line.seq <= self._last_seq:
                    break
                fresh.append(line)
            fresh.reverse()
        if fresh:
            self._last_seq = fresh[-1].seq
            pattern = self.pattern
            texts = [
                self._format(line)
                for line in fresh
                if pattern is None or pattern.search(line.text) is not None
            ]
            self._shown += len(texts)
            self.shown_lines.extend(texts)
            log.write_lines(texts, scroll_end=self.follow)
        if self.all_workloads:
            self._title("all workloads", total, running=not session.model.finished)
        else:
            view = session.model.workloads.get(str(name))
            running = view is None or view.status in ("Pending", "Running")
            self._title(str(name), total, running=running)

    def _name_colours(self, session: RunSession) -> None:
        names = list(session.model.workloads)
        width = min(max((len(n) for n in names), default=0), 24)
        self._highlighter.names = {
            n: _WORKLOAD_COLOURS[i % len(_WORKLOAD_COLOURS)] for i, n in enumerate(names)
        }
        self._highlighter.name_width = width

    def _format(self, line: LogLine) -> str:
        if line.stream == "log":
            marker = _LEVEL_MARKER.get(line.level, "•")
        else:
            marker = _MARKER.get(line.stream, "•")
        if not self.all_workloads:
            return f"{marker} {line.text}"
        stamp = (
            time.strftime("%H:%M:%S", time.localtime(line.time))
            + f".{int(line.time * 1000) % 1000:03d}"
        )
        width = self._highlighter.name_width
        return f"{marker} {stamp} {line.workload[:width]:<{width}} {line.text}"

    def _title(self, name: str, total: int, *, running: bool) -> None:
        title = Text(name, style="bold")
        title.append(f"  {total} line{'s' if total != 1 else ''}", style="dim")
        if self.query_text:
            kind = "regex" if self.regex else "filter"
            title.append(
                f"  {kind} “{self.query_text}”: {self._shown} match{'es' if self._shown != 1 else ''}",
                style="yellow",
            )
        if self.current is not None and self.query_text:
            title.append(f"  at {self.current + 1} of {self._shown} (n/N)", style="yellow")
        if not self.follow:
            title.append("  (not following: F)", style="dim")
        elif total == 0:
            title.append("  (no output yet)" if running else "  (no output)", style="dim")
        self.query_one("#log-title", Static).update(title)

    # -- search ---------------------------------------------------------------------------

    def open_search(self) -> None:
        search = self.query_one("#log-search", Input)
        search.display = True
        search.focus()

    def set_search(self, text: str) -> None:
        """Filter to lines matching ``text``: a case-insensitive regex (``err|warn``),
        or literal text when it is not a valid regex."""
        self.query_text = text
        self.pattern, self.regex = search_pattern(text)
        # a plain word is shown as a filter, a pattern with regex syntax as a regex
        self.regex = self.regex and re.escape(text) != text
        self._highlighter.pattern = self.pattern
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

    def action_toggle_all(self) -> None:
        self.all_workloads = not self.all_workloads
        self._highlighter.name_width = 0
        self._key = None
        self.post_message(LogPanel.SearchChanged(self))

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        log = self.query_one("#log-lines", Log)
        log.auto_scroll = self.follow
        if self.follow:
            log.scroll_end(animate=False)
        self._key = None
        self.post_message(LogPanel.SearchChanged(self))

    def action_step_match(self, step: int) -> None:
        """``n`` / ``N``: bring the next / previous matching line to the top (following
        stops, so new lines do not pull the view away)."""
        if not self.shown_lines:
            return
        if self.current is None:
            self.current = 0 if step > 0 else len(self.shown_lines) - 1
        else:
            self.current = (self.current + step) % len(self.shown_lines)
        self.follow = False
        log = self.query_one("#log-lines", Log)
        log.auto_scroll = False
        log.scroll_to(y=self.current, animate=False)
        if self._last_shown is not None:
            session, name = self._last_shown
            current = self.current
            self.show(session, name)  # the title says where
            self.current = current

    def action_save(self) -> None:
        """Write the lines shown (the search applied) to ``gxo-logs-<time>.txt`` here."""
        target = Path(f"gxo-logs-{time.strftime('%Y%m%d-%H%M%S')}.txt")
        try:
            target.write_text("\n".join(self.shown_lines) + "\n", encoding="utf-8")
        except OSError as exc:
            self.notify(f"cannot save {target}: {exc.strerror or exc}", severity="error")
            return
        self.saved = target
        self.notify(f"saved {len(self.shown_lines)} lines to {target}", timeout=4)

    def action_clear_search(self) -> None:
        search = self.query_one("#log-search", Input)
        search.value = ""
        search.display = False
        self.set_search("")
        self.post_message(LogPanel.SearchChanged(self))
        self.query_one("#log-lines", Log).focus()
