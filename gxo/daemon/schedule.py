"""Fire times of ``scheduled`` workloads: cron in a time zone, ``@every``, missed fires.

Pure logic over aware datetimes; the reconciler owns the clock and the timers.

Cron is evaluated on the wall clock of the workload's ``timezone`` (default: the daemon's
local zone), and daylight-saving changes are handled the way Vixie cron users expect:

- **Spring forward** — a wall time that does not exist that day (02:30 in Europe/Berlin on
  the last Sunday of March) fires once, shifted forward by the gap (03:30 CEST). Times that
  collide with a regular fire after the shift fire once.
- **Fall back** — a wall time that happens twice (02:30 on the last Sunday of October)
  fires once, at its first occurrence, unless the expression fires every hour (hour field
  ``*``, e.g. ``*/15 * * * *``): then it fires in both hours, so an "every 15 minutes"
  job has no one-hour hole.

``@every <duration>`` ignores the wall clock: fires are ``anchor + k * interval`` in
absolute time. With no anchor, ``next_after(t)`` is ``t + interval``, so a reconciler that
passes the previous *scheduled* fire time (not the time the instance really started)
gets a schedule that does not drift.

Fire times are returned in UTC, and all arithmetic is done in UTC: Python compares and
subtracts aware datetimes that share a tzinfo by their wall time, which is wrong across a
DST change (``b - a`` of two Berlin times around the fall-back is off by an hour). Use
:meth:`Schedule.local` to show a fire time on the schedule's wall clock.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from gxo.config.cron import check_timezone, parse_cron
from gxo.config.models import CatchupPolicy

if TYPE_CHECKING:
    from gxo.config.models import LifecyclePolicy

__all__ = ["MAX_CATCHUP", "CatchUp", "Schedule", "local_zone"]

# 'catchup: all' after a long outage of a frequent schedule would start thousands of
# instances at once; the most recent MAX_CATCHUP missed fires are run, older ones dropped.
MAX_CATCHUP = 1000
# Larger than any daylight-saving or zone change still in the tz database that matters
# here (1h, Lord Howe 30m); bounds how far around a fold or gap we look.
_MARGIN = timedelta(hours=3)
# Wall times examined per next_after(); a minute-by-minute cron near a transition needs ~400.
_MAX_STEPS = 20_000


def local_zone() -> tzinfo:
    """The daemon's local time zone, DST rules included (not just today's UTC offset)."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return check_timezone(name)
        except ValueError:
            pass
    try:
        with open("/etc/localtime", "rb") as fh:
            return ZoneInfo.from_file(fh, key="localtime")
    except (OSError, ValueError):
        return UTC


@dataclass(frozen=True)
class CatchUp:
    """Missed fires to run (oldest first); ``dropped`` tells that older ones were left out."""

    fires: list[datetime] = field(default_factory=list)
    dropped: bool = False


class Schedule:
    """When a ``scheduled`` workload fires.

    ``Schedule("0 3 * * *", "Europe/Berlin")``, ``Schedule("@every 30s", anchor=started)``.
    Invalid input raises ValueError (the loader has already checked playbook values).
    Not thread-safe: one croniter iterator is reused between calls.
    """

    def __init__(
        self, cron: str, timezone: str | None = None, *, anchor: datetime | None = None
    ) -> None:
        spec = parse_cron(cron)
        self.cron = cron
        self.tz: tzinfo = check_timezone(timezone) if timezone else local_zone()
        self.every = timedelta(seconds=spec.every) if spec.every is not None else None
        self.expression = spec.expression
        self.anchor = _utc(anchor) if anchor is not None else None
        self._every_hour = False
        if self.expression is not None:
            from croniter import croniter

            # One iterator per schedule, moved with set_current(): croniter spends most
            # of its time expanding the expression, which is done once here.
            self._iter = croniter(self.expression, datetime(2000, 1, 1))
            hours = self._iter.expanded[1]
            self._every_hour = hours == ["*"] or set(hours) >= set(range(24))

    @classmethod
    def from_lifecycle(
        cls, lifecycle: LifecyclePolicy, *, anchor: datetime | None = None
    ) -> Schedule:
        if not lifecycle.cron:
            raise ValueError("a schedule needs a lifecycle with 'cron'")
        return cls(lifecycle.cron, lifecycle.timezone, anchor=anchor)

    def __repr__(self) -> str:
        return f"Schedule({self.cron!r}, tz={self.tz})"

    # -- next fire ---------------------------------------------------------------------

    def next_after(self, dt: datetime) -> datetime:
        """The first fire strictly after ``dt`` (aware, any zone), as a UTC datetime."""
        u = _utc(dt)
        if self.every is not None:
            return self._next_every(u)
        return self._next_cron(u)

    def _next_every(self, u: datetime) -> datetime:
        assert self.every is not None
        if self.anchor is None:
            return u + self.every
        if u < self.anchor:
            return self.anchor
        return self.anchor + ((u - self.anchor) // self.every + 1) * self.every

    def _next_cron(self, u: datetime) -> datetime:
        wall = _wall(u, self.tz)
        # Near a fall-back the next instant can have an earlier wall time than ``u``
        # (and the wall time of ``u`` itself may fire again, in the second occurrence).
        if self._stable(u):
            self._iter.set_current(wall, force=True)
        else:
            self._iter.set_current(wall - _MARGIN - timedelta(seconds=1), force=True)
        it = self._iter
        best: datetime | None = None
        limit: datetime | None = None
        for _ in range(_MAX_STEPS):
            w = it.get_next(datetime)
            if limit is not None and w > limit:
                return best  # type: ignore[return-value]  # set together with limit
            for candidate in self._instants(w):
                if candidate > u and (best is None or candidate < best):
                    best = candidate
            if best is not None and limit is None:
                # Later wall times map to later instants, except around a transition,
                # where a shifted or repeated wall time may still come first.
                bw = _wall(best, self.tz)
                if self._stable(best):
                    if bw == w:  # the usual case: nothing later can come first
                        return best
                    limit = bw
                else:
                    limit = bw + _MARGIN
        if best is None:
            raise ValueError(f"cron expression {self.cron!r} does not fire after {u}")
        return best

    def _instants(self, wall: datetime) -> list[datetime]:
        """The UTC instants at which wall time ``wall`` fires (0-2 of them, see module doc)."""
        first = wall.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self.tz, fold=1).astimezone(UTC)
        if first == second:
            return [first]
        if _wall(first, self.tz) == wall:
            # Ambiguous (fall back): fold=0 is the first occurrence.
            return [first, second] if self._every_hour else [first]
        # Nonexistent (spring forward): fold=0 uses the offset before the gap, which
        # lands after the gap by the gap's length.
        return [first]

    def _stable(self, u: datetime) -> bool:
        """No UTC offset change within the margin around ``u``."""
        offset = u.astimezone(self.tz).utcoffset()
        return (
            (u - _MARGIN).astimezone(self.tz).utcoffset()
            == offset
            == (u + _MARGIN).astimezone(self.tz).utcoffset()
        )

    def local(self, dt: datetime) -> datetime:
        """``dt`` on the schedule's wall clock, for display (status ``next_run``, logs)."""
        return _utc(dt).astimezone(self.tz)

    # -- missed fires ------------------------------------------------------------------

    def missed(
        self, last_fire: datetime, now: datetime, catchup: CatchupPolicy | str
    ) -> list[datetime]:
        """Fires in (``last_fire``, ``now``] to run now under ``catchup``, oldest first."""
        return self.catch_up(last_fire, now, catchup).fires

    def catch_up(self, last_fire: datetime, now: datetime, catchup: CatchupPolicy | str) -> CatchUp:
        """Like :meth:`missed`, and whether fires beyond the bound were dropped.

        ``none``: nothing. ``one``: the most recent missed fire (one run stands for all).
        ``all``: every missed fire, at most the :data:`MAX_CATCHUP` most recent.
        """
        policy = CatchupPolicy(catchup)
        if policy == CatchupPolicy.none:
            return CatchUp()
        return self._last_fires(last_fire, now, 1 if policy == CatchupPolicy.one else MAX_CATCHUP)

    def _last_fires(self, after: datetime, upto: datetime, n: int) -> CatchUp:
        a, b = _utc(after), _utc(upto)
        if b <= a:
            return CatchUp()
        if self.every is not None:
            return self._last_every(a, b, n)
        start = self._catchup_start(a, b, n)
        kept: deque[datetime] = deque(maxlen=n)
        seen = 0
        cur = start
        while True:
            cur = self._next_cron(cur)
            if cur > b:
                break
            kept.append(cur)
            seen += 1
        dropped = seen > n or (start > a and self._next_cron(a) <= start)
        return CatchUp(list(kept), dropped)

    def _last_every(self, a: datetime, b: datetime, n: int) -> CatchUp:
        assert self.every is not None
        anchor = self.anchor if self.anchor is not None else a
        if anchor > b:
            return CatchUp()
        k_hi = (b - anchor) // self.every
        k_lo = 0 if anchor > a else (a - anchor) // self.every + 1
        if k_lo > k_hi:
            return CatchUp()
        first = max(k_lo, k_hi - n + 1)
        fires = [anchor + k * self.every for k in range(first, k_hi + 1)]
        return CatchUp(fires, first > k_lo)

    def _catchup_start(self, a: datetime, b: datetime, n: int) -> datetime:
        """An instant after which at least the last ``n`` fires before ``b`` lie.

        Walking back from ``b`` is cheap (no time-zone work); walking forward from ``a``
        after a long outage of a frequent schedule would not be.
        """
        top = _wall(b, self.tz) - _MARGIN
        bottom = _wall(a, self.tz) - _MARGIN
        it = self._iter
        it.set_current(_wall(b, self.tz) + _MARGIN, force=True)
        counted, earliest = 0, None
        # Extra walls: around a spring-forward gap several wall times share one instant.
        while counted < n + 64:
            p = it.get_prev(datetime)
            if p < bottom:
                return a
            earliest = p
            if p <= top:
                counted += 1
        assert earliest is not None
        return max(a, earliest.replace(tzinfo=self.tz).astimezone(UTC) - _MARGIN)


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"an aware datetime is needed, got the naive {dt.isoformat()}")
    return dt.astimezone(UTC)


def _wall(u: datetime, tz: tzinfo) -> datetime:
    """The naive wall-clock time of instant ``u`` in ``tz``."""
    return u.astimezone(tz).replace(tzinfo=None, fold=0)
