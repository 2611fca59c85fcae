"""Widgets of the workbench, one per file."""

from gxo.tui.widgets.dag_view import DagView
from gxo.tui.widgets.details_panel import DetailsPanel
from gxo.tui.widgets.log_panel import LogPanel
from gxo.tui.widgets.resume_panel import ResumePanel
from gxo.tui.widgets.run_header import RunHeader
from gxo.tui.widgets.stream_panel import StreamPanel
from gxo.tui.widgets.timeline import Timeline

__all__ = [
    "DagView",
    "DetailsPanel",
    "LogPanel",
    "ResumePanel",
    "RunHeader",
    "StreamPanel",
    "Timeline",
]
