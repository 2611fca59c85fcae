"""Shared presentation helpers: status glyphs and colours, durations, edge arrows.

Plain functions over Rich objects so widgets render the same facts the same way.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rich.text import Text

__all__ = [
    "EDGE_ARROWS",
    "STATUS_STYLE",
    "TERMINAL",
    "duration",
    "elapsed",
    "param_parts",
    "pretty_json",
    "status_text",
]

# glyph, Rich style
STATUS_STYLE: dict[str, tuple[str, str]] = {
    "Pending": ("○", "dim"),
    "Running": ("▶", "bold cyan"),
    "Completed": ("✔", "green"),
    "Failed": ("✘", "bold red"),
    "Skipped": ("↷", "yellow"),
    "Paused": ("⏸", "bold magenta"),
    "Restarting": ("↻", "yellow"),
    "Stopped": ("■", "dim"),
    "Interrupted": ("■", "bold yellow"),
}

TERMINAL = frozenset({"Completed", "Failed", "Skipped", "Stopped"})

# Edge kinds drawn into the consumer's row: state (reads a result), order
# (depends_on) and stream (records flow). Distinct shapes, not just colours, so
# they stay distinguishable on a monochrome terminal.
EDGE_ARROWS: dict[str, tuple[str, str]] = {
    "state": ("◀─", "blue"),
    "order": ("◀┄", "dim"),
    "stream": ("◀≈", "magenta"),
}


def status_text(status: str, *, label: bool = True) -> Text:
    glyph, style = STATUS_STYLE.get(status, ("•", ""))
    return Text(f"{glyph} {status}" if label else glyph, style=style)


def duration(ms: float | None) -> str:
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    minutes, seconds = divmod(int(ms / 1000), 60)
    return f"{minutes}m{seconds:02d}s"


def elapsed(seconds: float) -> str:
    minutes, secs = divmod(max(seconds, 0.0), 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:04.1f}"
    return f"{minutes:02d}:{secs:04.1f}"


def pretty_json(value: Any, *, max_items: int = 50, max_chars: int = 2000) -> str:
    """Indented JSON of ``value`` trimmed for display: a 200k-line command output
    must not cost the UI a second to format. The report keeps everything."""
    return json.dumps(_trim(value, max_items, max_chars), indent=2, default=str, ensure_ascii=False)


def _trim(value: Any, max_items: int, max_chars: int, depth: int = 0) -> Any:
    if depth > 20:
        return "…"
    if isinstance(value, str):
        return (
            value
            if len(value) <= max_chars
            else f"{value[:max_chars]}… ({len(value) - max_chars} more characters)"
        )
    if isinstance(value, dict):
        out = {
            str(k): _trim(v, max_items, max_chars, depth + 1)
            for k, v in list(value.items())[:max_items]
        }
        if len(value) > max_items:
            out["…"] = f"{len(value) - max_items} more keys"
        return out
    if isinstance(value, list | tuple):
        items = [_trim(v, max_items, max_chars, depth + 1) for v in value[:max_items]]
        if len(value) > max_items:
            items.append(f"… {len(value) - max_items} more items")
        return items
    return value


_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def param_parts(dotted: str) -> list[str | int]:
    """``args[1]`` → ``["args", 1]``; ``headers.Accept`` → ``["headers", "Accept"]``."""
    return [int(index) if index else name for name, index in _PART.findall(dotted)]
