"""Asked before ``x`` cancels a running workload (a pending one is cancelled at once)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

if TYPE_CHECKING:
    from textual.app import ComposeResult

__all__ = ["ConfirmCancelScreen"]


class ConfirmCancelScreen(ModalScreen[bool]):
    """Dismissed with True to cancel the workload, False to let it run."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Cancel the workload"),
        Binding("n,escape", "answer(False)", "Keep it running"),
    ]

    def __init__(self, workload: str) -> None:
        super().__init__()
        self.workload = workload

    def compose(self) -> ComposeResult:
        name = escape(self.workload)
        with Vertical(id="confirm-dialog"):
            yield Static(f"[b]Cancel {name}?[/b] It is running.", id="confirm-title")
            yield Static(
                "Its child processes are stopped and it ends cancelled; what depends on it "
                "is skipped (unless its when calls always() or cancelled()). "
                "The rest of the run goes on.",
                id="confirm-text",
            )
            with Horizontal(id="confirm-buttons"):
                yield Button("Cancel it (y)", variant="error", id="confirm-yes")
                yield Button("Keep running (n)", variant="primary", id="confirm-no")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, cancel: bool) -> None:
        self.dismiss(cancel)
