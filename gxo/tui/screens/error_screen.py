"""A readable screen for an error that stops the workbench (invalid playbook, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

if TYPE_CHECKING:
    from textual.app import ComposeResult

__all__ = ["ErrorScreen"]

Choice = Literal["reload", "quit"]


class ErrorScreen(Screen[Choice]):
    """Shows ``title`` and ``message`` (the loader's ``file:line:col: ...`` lines).

    Dismissed with "reload" (fix the file, press r) or "quit".
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "choose('reload')", "Reload"),
        Binding("q,escape", "choose('quit')", "Quit"),
    ]

    def __init__(
        self, title: str, message: str, *, hint: str | None = None, reload: bool = True
    ) -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.hint = hint
        self.reload = reload

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="error-box"):
            yield Static(Text(f"✘ {self.title_text}", style="bold red"), id="error-title")
            yield Static(Text(self.message), id="error-message")
            hint = self.hint or (
                "Fix the file and press r to reload, or q to quit."
                if self.reload
                else "Press q to quit."
            )
            yield Static(Text(hint, style="dim"), id="error-hint")
        yield Footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "choose" and parameters and parameters[0] == "reload":
            return self.reload
        return True

    def action_choose(self, choice: Choice) -> None:
        self.dismiss(choice)
