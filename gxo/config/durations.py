"""Go-style durations (``500ms``, ``10s``, ``1m30s``, ``2h``) as seconds."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

__all__ = ["DURATION_PATTERN", "Duration", "format_duration", "parse_duration"]

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"


def parse_duration(value: Any) -> float:
    """Seconds from a Go duration string or a non-negative number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: expected e.g. 500ms, 10s, 1m30s")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: must not be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}: expected e.g. 500ms, 10s, 1m30s")
    text = value.strip()
    pos, total = 0, 0.0
    while pos < len(text):
        m = _PART.match(text, pos)
        if not m:
            raise ValueError(f"invalid duration {value!r}: expected e.g. 500ms, 10s, 1m30s")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text:
        raise ValueError("invalid duration '': expected e.g. 500ms, 10s, 1m30s")
    return total


def format_duration(seconds: float) -> str:
    """The shortest Go-style spelling of ``seconds`` (used by migration and docs)."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000, 3):g}ms"
    out, rest = [], seconds
    for unit, size in (("h", 3600), ("m", 60)):
        if rest >= size:
            n = int(rest // size)
            out.append(f"{n}{unit}")
            rest -= n * size
    if rest or not out:
        out.append(f"{round(rest, 3):g}s")
    return "".join(out)


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0},
            ],
            "description": "Go-style duration (500ms, 10s, 1m30s, 2h) or seconds",
        }
    ),
]
