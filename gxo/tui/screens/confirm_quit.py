"""Asked when quitting while a run is in progress."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

if TYPE_CHECKING:
    from textual.app import ComposeResult

__all__ = ["ConfirmQuitScreen"]


class ConfirmQuitScreen(ModalScreen[bool]):
    """Dismissed with True to cancel the run and quit, False to keep running."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Cancel run and quit"),
        Binding("n,escape", "answer(False)", "Keep running"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog"):
            yield Static("[b]A run is in progress.[/b]", id="confirm-title")
            yield Static(
                "Quit now? Running workloads are cancelled, their child processes stopped, "
                "and the report is written if --report was given.",
                id="confirm-text",
            )
            with Horizontal(id="confirm-buttons"):
                yield Button("Cancel run and quit (y)", variant="error", id="confirm-yes")
                yield Button("Keep running (n)", variant="primary", id="confirm-no")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, quit_: bool) -> None:
        self.dismiss(quit_)
