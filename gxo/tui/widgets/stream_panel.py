"""The stream panel: each stream link's counters, queue fill and records/s."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.color import Color
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.renderables.sparkline import Sparkline
from textual.widgets import Static

from gxo.tui.model import RATE_POINTS, LinkView

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from gxo.tui.session import RunSession

__all__ = ["StreamPanel"]

BAR_WIDTH = 10
SPARK_WIDTH = 16


class StreamPanel(VerticalScroll):
    """Per link: records sent/delivered, queue depth against the buffer size,
    drops, and a records/s sparkline. A full queue is drawn red and, with the
    ``block`` strategy, marked as a blocked producer: back-pressure at a glance."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._key: tuple[int, int] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="streams-body")

    def show(self, session: RunSession) -> None:
        model = session.model
        key = (id(session), model.links_version)
        if key == self._key:
            return
        self._key = key
        policy = session.loaded.playbook.channel_policy
        strategy = str(getattr(policy.overflow_strategy, "value", policy.overflow_strategy))
        head = Text(f"buffer {policy.buffer_size} · overflow {strategy}", style="dim")
        if not model.links:
            body: RenderableType = Group(
                head, Text("\nNo stream links in this playbook.", style="dim italic")
            )
        else:
            body = Group(head, *(_link(link, strategy) for link in model.links.values()))
        self.query_one("#streams-body", Static).update(body)


def _link(link: LinkView, strategy: str) -> RenderableType:
    title = Text("\n")
    title.append(link.producer, style="bold")
    title.append(" ≈▶ ", style="magenta")
    title.append(link.consumer, style="bold")
    if link.closed and link.depth == 0:
        title.append("  done", style="green")
    elif link.full:
        title.append("  FULL", style="bold red")
        if strategy == "block":
            title.append(" · producer blocked", style="red")

    fill = link.depth / link.capacity if link.capacity else 0.0
    cells = round(fill * BAR_WIDTH)
    if link.depth and not cells:
        cells = 1  # a non-empty queue never looks empty
    color = "red" if link.full else "yellow" if fill >= 0.75 else "green"
    bar = Text("█" * cells, style=color)
    bar.append("░" * (BAR_WIDTH - cells), style="dim")
    bar.append(f" {link.depth}/{link.capacity}")

    rates = list(link.rates)
    padded = [0.0] * (RATE_POINTS - len(rates)) + rates  # fixed width: the line never jumps
    rate = Text(f"{rates[-1]:.0f}/s " if rates else "0/s ", style="bold")

    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True, min_width=5)
    grid.add_column(overflow="fold")
    grid.add_row("queue", bar)
    counters = Text()
    for i, (label, value, alarm) in enumerate(
        (
            ("sent", link.sent, False),
            ("recv", link.delivered, False),
            ("drop", link.dropped, link.dropped > 0),
        )
    ):
        counters.append(" · " if i else "", style="dim")
        counters.append(f"{label} ", style="dim")
        counters.append(f"{value:,}", style="bold red" if alarm else "bold")
    grid.add_row("count", counters)
    spark = Sparkline(
        padded, width=SPARK_WIDTH, min_color=Color.parse("green"), max_color=Color.parse("yellow")
    )
    grid.add_row("rate", _inline(rate, spark))
    return Group(title, grid)


def _inline(label: Text, spark: Sparkline[float]) -> Table:
    row = Table.grid(padding=0)
    row.add_column(no_wrap=True)
    row.add_column(no_wrap=True, width=SPARK_WIDTH)  # the sparkline measures itself 1 cell wide
    row.add_row(label, spark)
    return row
