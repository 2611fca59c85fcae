"""Screens of the workbench, one per file."""

from gxo.tui.screens.approval import ApprovalScreen
from gxo.tui.screens.confirm_cancel import ConfirmCancelScreen
from gxo.tui.screens.confirm_quit import ConfirmQuitScreen
from gxo.tui.screens.error_screen import ErrorScreen
from gxo.tui.screens.help import HelpScreen
from gxo.tui.screens.run_screen import RunScreen

__all__ = [
    "ApprovalScreen",
    "ConfirmCancelScreen",
    "ConfirmQuitScreen",
    "ErrorScreen",
    "HelpScreen",
    "RunScreen",
]
