"""The Timeline tab: one bar per workload from its start to its end (a Gantt chart),
the critical path highlighted, so where the time went is visible at a glance.

The critical path is the chain of dependencies (state and order edges, as ``gxo
validate --graph`` analyses them) whose durations add up to the most: shortening
anything off it does not shorten the run. Live runs use the workloads' real start
and end times. A replayed run has durations only, so its bars start when their
dependencies ended (as soon as possible), which the title says. With ``timings``
off (snapshot tests) every workload counts one unit, so the picture is stable.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from gxo.tui.format import STATUS_STYLE, duration

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from gxo.tui.session import RunSession

__all__ = ["Timeline", "critical_path", "spans"]

NAME_WIDTH = 18
MIN_BAR = 10


def spans(session: Any, *, timings: bool) -> tuple[dict[str, tuple[float, float]], bool]:
    """``{workload: (start, end)}`` in seconds from the run's start, and whether they are
    derived from durations and dependencies (a replay, or timings off) rather than seen."""
    states = session.engine.states
    now = time.monotonic()
    seen = {
        name: (s.started_at, s.finished_at if s.finished_at is not None else now)
        for name, s in states.items()
        if s.started_at is not None and s.started_at > 0
    }
    if timings and seen:
        base = min(start for start, _ in seen.values())
        return {n: (a - base, b - base) for n, (a, b) in seen.items()}, False
    graph = session.loaded.graph
    out: dict[str, tuple[float, float]] = {}
    for name in graph.order() if graph is not None else list(states):
        state = states.get(name)
        if state is None or state.status.value in ("Pending", "Skipped"):
            continue
        if timings:
            ms = state.duration_ms
            length = (ms or 0.0) / 1000
        else:
            length = 1.0
        deps = graph.upstream.get(name, ()) if graph is not None else ()
        start = max((out[d][1] for d in deps if d in out), default=0.0)
        out[name] = (start, start + length)
    return out, True


def critical_path(session: Any, bars: dict[str, tuple[float, float]]) -> list[str]:
    """The dependency chain with the largest total duration (ends at the latest end)."""
    graph = session.loaded.graph
    if graph is None or not bars:
        return []
    best: dict[str, tuple[float, str | None]] = {}
    for name in graph.order():
        if name not in bars:
            continue
        length = bars[name][1] - bars[name][0]
        before = [(best[d][0], d) for d in graph.upstream.get(name, ()) if d in best]
        total, previous = max(before, default=(0.0, None))
        best[name] = (total + length, previous)
    end: str | None = max(best, key=lambda n: best[n][0])
    path: list[str] = []
    while end is not None:
        path.append(end)
        end = best[end][1]
    return path[::-1]


class Chart:
    """The bars, laid out for the width they are drawn at (a Rich renderable)."""

    def __init__(
        self,
        session: Any,
        bars: dict[str, tuple[float, float]],
        *,
        derived: bool,
        timings: bool,
    ) -> None:
        self.session = session
        self.bars = bars
        self.derived = derived
        self.timings = timings

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        bars, session = self.bars, self.session
        if not bars:
            yield Text("Nothing has started yet.", style="dim italic")
            return
        critical = critical_path(session, bars)
        on_path = set(critical)
        total = max(end for _, end in bars.values()) or 1.0
        width = max(MIN_BAR, options.max_width - NAME_WIDTH - 10)
        title = Text("critical path: ", style="bold")
        title.append(" → ".join(critical), style="bold yellow")
        if self.timings:
            length = sum(bars[n][1] - bars[n][0] for n in critical)
            title.append(f"  ({duration(length * 1000)} of {duration(total * 1000)})", style="dim")
        if self.derived:
            title.append(
                "\nbars start when their dependencies ended (durations only)"
                if self.timings
                else "\none unit per workload (timings off)",
                style="dim",
            )
        yield title
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True, width=NAME_WIDTH, overflow="ellipsis")
        table.add_column(no_wrap=True, width=width)
        table.add_column(no_wrap=True, justify="right")
        for name, view in session.model.workloads.items():
            if name not in bars:
                continue
            start, end = bars[name]
            first = int(start / total * width)
            last = max(first + 1, round(end / total * width))
            glyph, style = STATUS_STYLE.get(view.status, ("•", ""))
            bar = Text(" " * first)
            bar.append("█" * (last - first), style="bold yellow" if name in on_path else style)
            label = Text(f"{glyph} ", style=style)
            label.append(name, style="bold" if name in on_path else "")
            took = duration((end - start) * 1000) if self.timings else ""
            table.add_row(label, bar, Text(took, style="dim"))
        yield table


class Timeline(VerticalScroll):
    def __init__(self, *, timings: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self.timings = timings
        self._key: tuple[Any, ...] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="timeline-body")

    def show(self, session: RunSession) -> None:
        model = session.model
        running = self.timings and model.any_running
        key = (id(session), model.version, time.monotonic() if running else 0)
        if key == self._key:
            return
        self._key = key
        bars, derived = spans(session, timings=self.timings)
        chart = Chart(session, bars, derived=derived, timings=self.timings)
        self.query_one("#timeline-body", Static).update(chart)
