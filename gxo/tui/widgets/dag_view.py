"""The DAG panel: workloads grouped by dependency level, with their inputs as edges."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option, OptionDoesNotExist

from gxo.tui.format import EDGE_ARROWS, STATUS_STYLE, duration
from gxo.tui.model import RunModel, WorkloadView

__all__ = ["DagView"]

INLINE_EDGES_WIDTH = 56  # from this panel width on, edges share the workload's line


class DagView(OptionList):
    """Workloads by level (level 0 first); each row shows status, duration, attempts.

    Under each workload its inputs are drawn as arrows: ``◀─`` reads a result
    (state), ``◀┄`` waits for (depends_on), ``◀≈`` consumes records (stream).
    Keys: up/down or j/k move, left/right jump between levels, enter opens the
    details, ``f`` (on the screen) shows failed workloads only.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "Details", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("right,l", "next_level", "Next level", show=False),
        Binding("left,h", "previous_level", "Previous level", show=False),
    ]

    class WorkloadHighlighted(Message):
        """The selection moved to ``workload``."""

        def __init__(self, workload: str) -> None:
            super().__init__()
            self.workload = workload

    class WorkloadChosen(Message):
        """Enter was pressed on ``workload``: show its details."""

        def __init__(self, workload: str) -> None:
            super().__init__()
            self.workload = workload

    def __init__(self, *, timings: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self.timings = timings
        self.failed_only = False
        self._model: RunModel | None = None
        self._prompts: dict[str, Text] = {}
        self._shown: list[str] = []
        self._inline = False

    # -- data ------------------------------------------------------------------------

    def show_model(self, model: RunModel) -> None:
        """(Re)build the list for a new run, keeping the selected workload."""
        keep = self.selected
        self._model = model
        self._prompts = {}
        self._rebuild(keep)

    def sync(self) -> None:
        """Redraw the rows whose workload changed since the last call."""
        model = self._model
        if model is None:
            return
        if self.failed_only and self._failed_names() != self._shown:
            self._rebuild(self.selected)
            return
        for name in self._shown:
            prompt = self._prompt(model.workloads[name])
            if prompt != self._prompts.get(name):
                self._prompts[name] = prompt
                self.replace_option_prompt(name, prompt)

    def toggle_failed_only(self) -> bool:
        self.failed_only = not self.failed_only
        self.border_title = "Workloads · failed only" if self.failed_only else "Workloads"
        self._rebuild(self.selected)
        return self.failed_only

    def on_mount(self) -> None:
        self.border_title = "Workloads"
        self.border_subtitle = "[blue]─[/] state [dim]┄[/] order [magenta]≈[/] stream"

    @property
    def shown(self) -> list[str]:
        """Workloads listed, top to bottom (all of them, or the failed ones)."""
        return list(self._shown)

    @property
    def selected(self) -> str | None:
        option = self.highlighted_option
        return option.id if option is not None else None

    def select(self, name: str) -> None:
        try:
            self.highlighted = self.get_option_index(name)
        except OptionDoesNotExist:  # hidden by the failed-only filter: keep the current row
            return

    # -- rendering ---------------------------------------------------------------------

    def _failed_names(self) -> list[str]:
        assert self._model is not None
        return [
            n
            for names in self._model.levels
            for n in names
            if self._model.workloads[n].status == "Failed"
        ]

    def _rebuild(self, keep: str | None) -> None:
        model = self._model
        if model is None:
            return
        wanted = set(self._failed_names()) if self.failed_only else None
        options: list[Option] = []
        shown: list[str] = []
        for level, names in enumerate(model.levels):
            names = [n for n in names if wanted is None or n in wanted]
            if not names:
                continue
            labels = model.level_labels
            label = labels[level] if labels and level < len(labels) else f"level {level}"
            options.append(Option(Text(f"── {label} ──", style="bold dim"), disabled=True))
            for name in names:
                prompt = self._prompt(model.workloads[name])
                self._prompts[name] = prompt
                options.append(Option(prompt, id=name))
                shown.append(name)
        if not options:
            message = "no failed workloads" if self.failed_only else "no workloads"
            options.append(Option(Text(message, style="dim italic"), disabled=True))
        self._shown = shown
        self.set_options(options)
        target = keep if keep in shown else (shown[0] if shown else None)
        if target is not None:
            self.highlighted = self.get_option_index(target)
            # A rebuild may not move the highlight; the panels must still follow it.
            self.post_message(self.WorkloadHighlighted(target))

    def _name_width(self) -> int:
        assert self._model is not None
        longest = max((len(n) for n in self._model.workloads), default=8)
        return min(longest, 24)

    def _prompt(self, view: WorkloadView) -> Text:
        glyph, style = STATUS_STYLE.get(view.status, ("•", ""))
        width = self._name_width()
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{glyph} ", style=style)
        text.append(
            view.name.ljust(width), style=style if view.status in ("Failed", "Running") else ""
        )
        if view.iterations_total:
            text.append(f" {view.iterations_done}/{view.iterations_total}", style="cyan")
        if view.attempts > 1:
            text.append(f" ×{view.attempts}", style="yellow")
        if view.retry:
            text.append(" ↻", style="yellow")
        ms = self._model.live_duration(view.name) if self._model is not None else view.duration_ms
        if self.timings and ms is not None and view.status != "Pending":
            text.append(f" {duration(ms)}", style="dim")
        elif view.status == "Skipped":
            text.append(" skipped", style="dim")
        if view.inputs:
            text.append("  " if self._inline else "\n    ")
            for i, (producer, kind) in enumerate(view.inputs):
                arrow, arrow_style = EDGE_ARROWS.get(kind, ("◀─", ""))
                if i:
                    text.append(" ")
                text.append(arrow + " ", style=arrow_style)
                text.append(producer, style="dim")
        return text

    def on_resize(self) -> None:
        inline = self.size.width >= INLINE_EDGES_WIDTH
        if inline != self._inline:
            self._inline = inline
            self._rebuild(self.selected)

    # -- keys and messages ---------------------------------------------------------------

    def _jump_level(self, step: int) -> None:
        model = self._model
        current = self.selected
        if model is None or current is None:
            return
        level = model.workloads[current].level + step
        while 0 <= level < len(model.levels):
            for name in model.levels[level]:
                if name in self._shown:
                    self.select(name)
                    return
            level += step

    def action_next_level(self) -> None:
        self._jump_level(1)

    def action_previous_level(self) -> None:
        self._jump_level(-1)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        if event.option.id is not None:
            self.post_message(self.WorkloadHighlighted(event.option.id))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.post_message(self.WorkloadChosen(event.option.id))
