"""Wall-clock deadlines for many schedules on one event-loop timer.

A daemon may hold thousands of ``scheduled`` workloads, and ``@every`` schedules applied
together fire in the same millisecond. One sleeping task per schedule costs a task
wake-up, a timer handle and a wall-clock read per fire; this heap keeps every deadline
and arms a single ``loop.call_at`` for the earliest one, then runs all the due callbacks
in one go (bench/bench_scheduled.py: 1,000 simultaneous fires).

Deadlines are absolute wall-clock instants (UTC datetimes). The loop timer is armed at
``loop.time() + (deadline − wall now)``, at most :data:`MAX_SLEEP` ahead, so a wall-clock
step (NTP, a suspended laptop) is noticed within that time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import weakref
from collections.abc import Callable
from datetime import datetime

__all__ = ["MAX_SLEEP", "Deadline", "WallTimers", "shared_timers"]

log = logging.getLogger("gxo.daemon")

# Re-read the wall clock at least this often while waiting.
MAX_SLEEP = 30.0
# The loop's timer may wake a hair before the wall clock says the deadline has come
# (two clocks; epoll rounds to the millisecond): within this it counts as due, rather
# than costing another loop iteration and up to a millisecond of lag.
EARLY = 0.001

Callback = Callable[[datetime, datetime], None]


class Deadline:
    """One pending callback; :meth:`WallTimers.cancel` it to drop it."""

    __slots__ = ("callback", "cancelled", "seq", "ts", "when")

    def __init__(self, ts: float, seq: int, when: datetime, callback: Callback) -> None:
        self.ts = ts
        self.seq = seq
        self.when = when
        self.callback = callback
        self.cancelled = False


class WallTimers:
    """Callbacks ``callback(when, now)`` run on the loop once the wall clock reaches ``when``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, wall: Callable[[], datetime]) -> None:
        self.loop = loop
        self.wall = wall
        # (ts, seq, entry) tuples: compared in C, not through a Python __lt__.
        self._heap: list[tuple[float, int, Deadline]] = []
        self._live = 0
        self._seq = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = 0.0

    def __len__(self) -> int:
        return self._live

    def add(self, when: datetime, callback: Callback) -> Deadline:
        ts, seq = when.timestamp(), next(self._seq)
        entry = Deadline(ts, seq, when, callback)
        heapq.heappush(self._heap, (ts, seq, entry))
        self._live += 1
        if self._heap[0][2] is entry:
            self._arm()
        return entry

    def cancel(self, entry: Deadline | None) -> None:
        if entry is None or entry.cancelled:
            return
        entry.cancelled = True
        self._live -= 1
        if self._live == 0:
            # Nothing left: no timer handle stays behind on the loop.
            self._heap.clear()
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None

    def _arm(self) -> None:
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        if not heap:
            return
        delay = heap[0][0] - self.wall().timestamp()
        at = self.loop.time() + min(max(delay, 0.0), MAX_SLEEP)
        if self._handle is not None:
            if self._armed_at <= at:
                return  # already armed early enough: it re-arms when it runs
            self._handle.cancel()
        self._armed_at = at
        self._handle = self.loop.call_at(at, self._run)

    def _run(self) -> None:
        self._handle = None
        now = self.wall()
        due = now.timestamp() + EARLY
        heap = self._heap
        while heap and heap[0][0] <= due:
            entry = heapq.heappop(heap)[2]
            if entry.cancelled:
                continue
            entry.cancelled = True
            self._live -= 1
            try:
                entry.callback(entry.when, now)
            except Exception:  # one broken schedule must not stop the others
                log.exception("timer callback %r failed", entry.callback)
        self._arm()


_SHARED: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[Callable[[], datetime], WallTimers]
] = weakref.WeakKeyDictionary()


def shared_timers(wall: Callable[[], datetime]) -> WallTimers:
    """The running loop's timers for the wall clock ``wall`` (one heap per loop and clock)."""
    loop = asyncio.get_running_loop()
    per_wall = _SHARED.setdefault(loop, {})
    timers = per_wall.get(wall)
    if timers is None:
        timers = per_wall[wall] = WallTimers(loop, wall)
    return timers
