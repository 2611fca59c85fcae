"""``?``: every key of the workbench on one overlay (built from the bindings themselves,
so it cannot drift from what the keys do)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

if TYPE_CHECKING:
    from collections.abc import Iterable

    from textual.app import ComposeResult

__all__ = ["HelpScreen"]

# Keys handled outside any BINDINGS list (Textual's own), shown last.
_EVERYWHERE = [
    ("ctrl+p", "Command palette: every action by name"),
    ("ctrl+c", "Quit (asks first while a run is in progress)"),
    ("tab", "Next panel"),
]


class HelpScreen(ModalScreen[None]):
    """Sections of (key, what it does); ``?``, ``escape`` or ``q`` close it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark,escape,q", "dismiss_help", "Close help"),
    ]

    def __init__(self, sections: list[tuple[str, Iterable[BindingType]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-dialog") as box:
            box.border_title = "Keys"
            yield Static(self._table(), id="help-keys")
            yield Static(Text("? or esc closes this help", style="dim"), id="help-hint")

    def _table(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True, min_width=10)
        table.add_column()
        for title, bindings in self.sections:
            rows = list(self._rows(bindings))
            if not rows:
                continue
            table.add_row(Text(title, style="bold underline"), "")
            for keys, description in rows:
                table.add_row(keys, description)
            table.add_row("", "")
        table.add_row(Text("Everywhere", style="bold underline"), "")
        for keys, description in _EVERYWHERE:
            table.add_row(keys, description)
        return table

    def _rows(self, bindings: Iterable[BindingType]) -> Iterable[tuple[str, str]]:
        seen: dict[str, list[str]] = {}
        for binding in bindings:
            if not isinstance(binding, Binding) or not binding.description:
                continue
            keys = [
                self.app.get_key_display(Binding(key.strip(), binding.action))
                for key in binding.key.split(",")
            ]
            seen.setdefault(binding.tooltip or binding.description, []).extend(keys)
        for description, keys in seen.items():
            yield " ".join(dict.fromkeys(keys)), description

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
