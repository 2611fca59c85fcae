"""Cron expressions and time zones of ``scheduled`` lifecycles, checked at load time.

Three spellings are accepted (those of the cron library the Go engine would have used):
a 5-field expression (``*/5 * * * 1-5``), a macro (``@hourly``, ``@daily``, ``@weekly``,
``@monthly``, ``@yearly``, ``@annually``, ``@midnight``) and ``@every <duration>`` with a
Go-style duration (``@every 30s``, ``@every 1h30m``). Parsing is croniter's; this module
only decides what we accept and words the errors. The daemon's ``gxo.daemon.schedule``
computes fire times from the same parse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gxo.config.durations import parse_duration

__all__ = ["MACROS", "MIN_EVERY", "CronSpec", "check_cron", "check_timezone", "parse_cron"]

# Macros croniter expands itself; @reboot has no meaning for a daemon's schedule.
MACROS = ("@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight")
# A fire more often than once a second is a loop, not a schedule (robfig/cron rounds
# such intervals up to 1s; an error is clearer than a silent change).
MIN_EVERY = 1.0


@dataclass(frozen=True)
class CronSpec:
    """A parsed schedule: either ``every`` seconds or a croniter ``expression``."""

    text: str
    every: float | None = None
    expression: str | None = None


def parse_cron(text: str) -> CronSpec:
    """The schedule ``text`` stands for, or ValueError saying what is wrong with it."""
    if not isinstance(text, str):
        raise ValueError(f"invalid cron expression {text!r}: expected a string")
    value = " ".join(text.split())
    if not value:
        raise ValueError("invalid cron expression '': expected e.g. '*/5 * * * *' or '@every 30s'")
    if value.startswith("@every"):
        rest = value[len("@every") :].strip()
        if not rest or not value[len("@every") :].startswith(" "):
            raise ValueError(
                f"invalid cron expression {text!r}: '@every' needs a duration, e.g. '@every 30s'"
            )
        try:
            seconds = parse_duration(rest)
        except ValueError:
            raise ValueError(
                f"invalid cron expression {text!r}: {rest!r} is not a duration (e.g. 500ms, 30s, 1h30m)"
            ) from None
        if seconds < MIN_EVERY:
            raise ValueError(f"invalid cron expression {text!r}: '@every' needs at least 1s")
        return CronSpec(text, every=seconds)
    if value.startswith("@"):
        if value.lower() not in MACROS:
            raise ValueError(
                f"invalid cron expression {text!r}: unknown macro; use one of "
                + ", ".join(MACROS)
                + " or '@every <duration>'"
            )
        expression = value.lower()
    else:
        fields = value.split(" ")
        if len(fields) != 5:
            raise ValueError(
                f"invalid cron expression {text!r}: expected 5 fields "
                f"(minute hour day-of-month month day-of-week), got {len(fields)}"
            )
        expression = value
    _check_with_croniter(text, expression)
    return CronSpec(text, expression=expression)


def _check_with_croniter(text: str, expression: str) -> None:
    from croniter import croniter

    try:
        itr = croniter(expression, datetime(2000, 1, 1))
        # An expression can be well-formed yet never fire (30 February): croniter
        # finds out only when asked for a date.
        itr.get_next(datetime)
    except Exception as exc:  # croniter raises several unrelated types; all mean "bad input"
        reason = str(exc).strip() or type(exc).__name__
        if "failed to find" in reason:
            reason = "it never fires (no such date)"
        raise ValueError(f"invalid cron expression {text!r}: {reason}") from None


def check_cron(text: str) -> None:
    """ValueError unless ``text`` is an accepted schedule."""
    parse_cron(text)


def check_timezone(name: str) -> ZoneInfo:
    """The IANA zone ``name``, or ValueError naming it."""
    hint = "expected an IANA time zone such as Europe/Berlin or UTC"
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"invalid timezone {name!r}: {hint}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: a path-like key ('../x'); OSError: a directory ('Europe').
        raise ValueError(f"unknown timezone {name!r}: {hint}") from None
