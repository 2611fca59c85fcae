"""The detail panel: everything known about the selected workload."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.rule import Rule
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from gxo.tui.format import EDGE_ARROWS, duration, param_parts, pretty_json, status_text

if TYPE_CHECKING:
    from textual.app import ComposeResult

    from gxo.tui.session import RunSession

__all__ = ["DetailsPanel"]

MAX_JSON = 20_000  # characters of params/summary shown; the report has the rest
_PARAM_ERROR = re.compile(r"^param '([^']+)'")


class DetailsPanel(VerticalScroll):
    """Rendered params (secrets redacted), summary, error with the failing
    template and where it is written, loop iterations."""

    def __init__(self, *, timings: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self.timings = timings
        self._key: tuple[Any, ...] | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text("Select a workload.", style="dim"), id="details-body")

    def show(self, session: RunSession, name: str | None) -> None:
        """Redraw for ``name`` if anything about it changed since the last call."""
        if name is None or name not in session.model.workloads:
            return
        state = session.engine.states[name]
        view = session.model.workloads[name]
        key = (
            id(session),
            name,
            view.version,
            view.status,
            id(state.rendered_params),
            id(state.summary),
            len(state.iterations),
            state.attempts,
            # a running workload's clock, at the resolution it is shown with (the DAG's)
            duration(state.duration_ms) if self.timings and view.status == "Running" else "",
            sum(1 for it in state.iterations if it.get("status") in ("Completed", "Failed")),
        )
        if key == self._key:
            return
        reset = self._key is None or self._key[:2] != key[:2]
        self._key = key
        self.query_one("#details-body", Static).update(self._build(session, name))
        if reset:
            self.scroll_home(animate=False)

    def _build(self, session: RunSession, name: str) -> RenderableType:
        state = session.engine.states[name]
        view = session.model.workloads[name]
        loaded = session.loaded
        workload = state.workload
        parts: list[RenderableType] = []

        title = Text(name, style="bold")
        title.append(f"  {workload.process.module}", style="dim")
        parts.append(title)
        line = status_text(view.status)
        attempts = max(view.attempts, state.attempts)  # the engine's count is live
        if attempts:
            line.append(f"  attempt{'s' if attempts != 1 else ''} {attempts}", style="dim")
        elapsed_ms = state.duration_ms if view.status == "Running" else view.duration_ms
        if self.timings and elapsed_ms is not None and view.status != "Pending":
            line.append(f"  {duration(elapsed_ms)}", style="dim")
        if state.records_in or state.records_out:
            line.append(f"  records in {state.records_in} / out {state.records_out}", style="dim")
        parts.append(line)
        facts = Table.grid(padding=(0, 1))
        facts.add_column(style="dim", no_wrap=True)
        facts.add_column(overflow="fold")
        facts.add_row("defined at", str(loaded.workload_location(name)))
        if view.inputs:
            edges = Text()
            for i, (producer, kind) in enumerate(view.inputs):
                arrow, style = EDGE_ARROWS.get(kind, ("◀─", ""))
                edges.append(("" if i == 0 else "  ") + arrow + " ", style=style)
                edges.append(f"{producer} ({kind})")
            facts.add_row("inputs", edges)
        if view.reason:
            facts.add_row("reason", view.reason)
        if view.retry:
            facts.add_row("retrying", Text(view.retry, style="yellow"))
        parts.append(facts)

        if state.error:
            parts.append(Rule("Error", style="red", align="left"))
            parts.append(Text(state.error, style="red"))
            failing = self._failing_template(session, name, state.error)
            if failing is not None:
                parts.append(failing)

        if state.iterations and any("params" in it for it in state.iterations):
            pass  # each iteration's own params follow the iterations table
        elif state.rendered_params is not None:
            # A loop keeps one rendered copy: the latest iteration's; say so.
            label = "latest iteration, " if state.iterations else ""
            parts.append(
                Rule(f"Params (rendered, {label}secrets redacted)", style="blue", align="left")
            )
            parts.append(_json(state.rendered_params))
        elif workload.process.params:
            parts.append(Rule("Params (as written)", style="blue", align="left"))
            parts.append(_json(workload.process.params))

        if state.summary not in (None, {}, []):
            parts.append(Rule("Summary", style="green", align="left"))
            parts.append(_json(state.summary))

        if state.iterations:
            parts.extend(_iterations(state.iterations, timings=self.timings))
        return Group(*parts)

    @staticmethod
    def _failing_template(session: RunSession, name: str, error: str) -> RenderableType | None:
        """Where the template named by ``param '<path>': ...`` is written, and its text."""
        match = _PARAM_ERROR.match(error)
        if match is None:
            return None
        path = param_parts(match.group(1))
        workload = session.engine.states[name].workload
        if path and path[0] in ("when", "loop"):
            value: Any = getattr(workload, str(path[0]))
            where: tuple[Any, ...] = tuple(path)
        else:
            value = workload.process.params
            for part in path:
                try:
                    value = value[part]
                except (KeyError, IndexError, TypeError):
                    return None
            where = ("process", "params", *path)
        text = Text("failing template ", style="dim")
        text.append(f"{match.group(1)}: ", style="bold")
        text.append(repr(value) if not isinstance(value, str) else value, style="yellow")
        text.append(f"  at {session.loaded.workload_location(name, *where)}", style="dim")
        return text


MAX_ITERATION_PARAMS = 5  # iterations whose own rendered params are shown (failed first)


def _iterations(iterations: list[dict[str, Any]], *, timings: bool) -> list[RenderableType]:
    """The loop's table: index, item, status, tries, time, error; then each iteration's
    own rendered params when the engine recorded them (``params`` of a record)."""
    parts: list[RenderableType] = [
        Rule(f"Loop iterations ({len(iterations)})", style="cyan", align="left")
    ]
    has_item = any("item" in it for it in iterations)
    has_time = timings and any(it.get("duration_ms") is not None for it in iterations)
    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="dim")
    table.add_column("#", justify="right")
    if has_item:
        table.add_column("item", overflow="ellipsis", no_wrap=True, max_width=30)
    table.add_column("status")
    table.add_column("tries", justify="right")
    if has_time:
        table.add_column("time", justify="right")
    table.add_column("error", overflow="fold")
    for it in iterations:
        row: list[RenderableType] = [str(it.get("index", ""))]
        if has_item:
            row.append(_short(it.get("item")))
        row += [status_text(str(it.get("status", ""))), str(it.get("attempts", ""))]
        if has_time:
            row.append(duration(it.get("duration_ms")))
        row.append(Text(str(it.get("error") or ""), style="red"))
        table.add_row(*row)
    parts.append(table)
    with_params = [it for it in iterations if it.get("params") is not None]
    with_params.sort(key=lambda it: it.get("status") != "Failed")  # failed ones first
    for it in with_params[:MAX_ITERATION_PARAMS]:
        label = f"Params of iteration {it.get('index')}"
        if has_item:
            label += f" ({_short(it.get('item'))})"
        parts.append(Rule(label, style="blue", align="left"))
        parts.append(_json(it["params"]))
    if len(with_params) > MAX_ITERATION_PARAMS:
        more = len(with_params) - MAX_ITERATION_PARAMS
        parts.append(Text(f"… params of {more} more iterations in the report", style="dim"))
    omitted = sum(1 for it in iterations if it.get("params_omitted"))
    if omitted:  # the engine bounds a loop's params (gxo/engine/runner.py, PARAMS_BUDGET)
        parts.append(
            Text(f"params of {omitted} iterations not kept (size cap of the report)", style="dim")
        )
    return parts


def _short(value: Any, width: int = 30) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _json(value: Any) -> Syntax:
    text = pretty_json(value)
    if len(text) > MAX_JSON:
        text = text[:MAX_JSON] + "\n… (truncated; the report has everything)"
    return Syntax(text, "json", theme="ansi_dark", background_color="default", word_wrap=True)
