"""The in-process event bus: what the engine tells progress output, the TUI and tests.

Emitting never blocks the engine. Each subscriber has its own bounded queue; when
a slow subscriber's queue is full its events are dropped, counted, and a warning
is logged once per subscriber. Events pass through secret redaction before they
are queued, so no subscriber ever sees a secret value.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Event", "EventBus", "EventKind", "Subscription"]

log = logging.getLogger("gxo.events")


class EventKind(StrEnum):
    RUN_STARTED = "run_started"
    RUN_FINISHED = "run_finished"
    WORKLOAD_STATUS = "workload_status"  # data: status, reason?, attempts, duration_ms, error?
    WORKLOAD_RETRYING = "workload_retrying"  # data: attempt, delay, error
    WORKLOAD_ITERATION = "workload_iteration"  # data: index, item?, status, error?
    WORKLOAD_SUMMARY = "workload_summary"  # data: summary (published or final)
    LOG = "log"  # data: stream (stdout|stderr|log), level, line
    STREAM_STATS = "stream_stats"  # data: links: [{producer, consumer, sent, delivered, depth, capacity, dropped}]
    WARNING = "warning"  # data: message

    # Hashed as the str it equals (Enum hashes the member's name, in Python): the bus
    # looks kinds up in sets on every event.
    __hash__ = str.__hash__


_WORKLOAD_STATUS = EventKind.WORKLOAD_STATUS  # a global: ``EventKind.X`` costs ~10x more


# Not frozen: a frozen dataclass's __init__ costs ~4x a plain one (object.__setattr__
# per field), and the engine builds two events per workload. Treat events as
# read-only all the same: every subscriber receives the same object.
@dataclass(slots=True)
class Event:
    kind: EventKind
    workload: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)
    seq: int = 0


class Subscription:
    """One subscriber's bounded queue. Iterate it, or call :meth:`get`."""

    def __init__(self, bus: EventBus, maxsize: int, kinds: frozenset[EventKind] | None) -> None:
        self._bus = bus
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)
        self.kinds = kinds
        self.dropped = 0
        self._warned = False
        self.closed = False

    def offer(self, event: Event | None) -> None:
        if self.closed:
            return
        if event is not None and self.kinds is not None and event.kind not in self.kinds:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            if event is None:
                # The end marker must arrive: make room by dropping the oldest event.
                self.queue.get_nowait()
                self.dropped += 1
                self.queue.put_nowait(None)
                return
            self.dropped += 1
            if not self._warned:
                self._warned = True
                log.warning(
                    "event subscriber is too slow: dropping events (queue size %d)",
                    self.queue.maxsize,
                )

    async def get(self) -> Event | None:
        return await self.queue.get()

    def get_nowait(self) -> Event | None:
        return self.queue.get_nowait()

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            event = await self.queue.get()
            if event is None:
                return
            yield event

    def close(self) -> None:
        self._bus.unsubscribe(self)


_NO_SKIPS: tuple[frozenset[EventKind], frozenset[str]] = (frozenset(), frozenset())
_ALL_KINDS = frozenset(EventKind)


class EventBus:
    """Fan-out of engine events to subscribers and synchronous listeners."""

    def __init__(self, redact: Callable[[Any], Any] | None = None) -> None:
        self._subs: list[Subscription] = []
        self._listeners: list[Callable[[Event], None]] = []
        # Per listener: the event kinds and workload statuses it does not want.
        self._skips: list[tuple[frozenset[EventKind], frozenset[str]]] = []
        # (listener, skipped kinds, skipped statuses, keep_dropped): what publish() walks
        self._entries: list[
            tuple[Callable[[Event], None], frozenset[EventKind], frozenset[str], bool]
        ] = []
        self._wanted: frozenset[EventKind] = frozenset()  # kinds someone receives
        self._unwanted: frozenset[str] = frozenset()  # statuses nobody receives
        self._status_wanted = False  # whether anyone receives workload_status events
        self._keeps_dropped = False  # a listener gets lost-record events of any status
        self._redact = redact
        self._seq = 0
        self.closed = False

    def set_redactor(self, redact: Callable[[Any], Any]) -> None:
        self._redact = redact

    def subscribe(self, maxsize: int = 10_000, kinds: set[EventKind] | None = None) -> Subscription:
        sub = Subscription(self, maxsize, frozenset(kinds) if kinds else None)
        self._subs.append(sub)
        self._update_audience()
        if self.closed:
            sub.offer(None)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.closed = True
        if sub in self._subs:
            self._subs.remove(sub)
            self._update_audience()

    def add_listener(
        self,
        listener: Callable[[Event], None],
        *,
        skip_kinds: Iterable[EventKind] = (),
        skip_statuses: Iterable[str] = (),
        keep_dropped: bool = False,
    ) -> None:
        """A synchronous callback for every event. It must be fast and must not raise.

        ``skip_kinds`` and ``skip_statuses`` (of ``workload_status`` events) are not
        delivered to it: progress output that never shows them. What nobody wants,
        the engine does not even build (:meth:`wants`, :meth:`wants_status`).
        ``keep_dropped``: a ``workload_status`` event that reports lost records
        (``records_dropped``) is delivered whatever its status (``gxo run -q`` shows
        only failures and lost records).
        """
        self._listeners.append(listener)
        skips = (frozenset(skip_kinds), frozenset(skip_statuses))
        self._skips.append(skips)
        self._entries.append((listener, *skips, keep_dropped))
        self._keeps_dropped = self._keeps_dropped or (
            keep_dropped and EventKind.WORKLOAD_STATUS not in skips[0]
        )
        if skips == _NO_SKIPS:  # it wants everything (a daemon's instance: once per run)
            self._wanted = _ALL_KINDS
            self._status_wanted = True
            self._unwanted = frozenset()
            return
        self._update_audience()

    def wants(self, kind: EventKind) -> bool:
        """Whether anyone receives events of ``kind``."""
        return kind in self._wanted

    def wants_status(self, status: str, dropped: int = 0) -> bool:
        """Whether anyone receives a ``workload_status`` event of ``status`` (reporting
        ``dropped`` lost records)."""
        return self._status_wanted and (
            status not in self._unwanted or bool(dropped and self._keeps_dropped)
        )

    def _update_audience(self) -> None:
        wanted: set[EventKind] = set()
        for sub in self._subs:
            wanted.update(EventKind if sub.kinds is None else sub.kinds)
        status_subs = EventKind.WORKLOAD_STATUS in wanted
        for kinds, _ in self._skips:
            wanted.update(k for k in EventKind if k not in kinds)
        self._wanted = frozenset(wanted)
        self._status_wanted = _WORKLOAD_STATUS in self._wanted
        skips = [
            statuses for kinds, statuses in self._skips if EventKind.WORKLOAD_STATUS not in kinds
        ]
        if status_subs or not skips:
            self._unwanted = frozenset()
        else:
            self._unwanted = frozenset.intersection(*skips)

    @property
    def has_audience(self) -> bool:
        return bool(self._subs or self._listeners)

    def emit(self, kind: EventKind, workload: str | None = None, **data: Any) -> None:
        if kind in self._wanted:
            self.publish(kind, workload, data)

    def publish(self, kind: EventKind, workload: str | None, data: dict[str, Any]) -> None:
        """:meth:`emit` with the payload as a dict the bus may keep (no keyword copy)."""
        if kind not in self._wanted:
            return
        if self._redact is not None and data:
            data = self._redact(data)
        self._seq += 1
        event = Event(kind, workload, data, time.time(), self._seq)
        status = data.get("status") if kind is _WORKLOAD_STATUS else None
        for listener, kinds, statuses, keep_dropped in self._entries:
            if (kinds and kind in kinds) or (
                statuses
                and status in statuses
                and not (keep_dropped and data.get("records_dropped"))
            ):
                continue
            try:
                listener(event)
            except Exception:  # a broken listener must never break the run
                log.exception("event listener failed")
        for sub in self._subs:
            sub.offer(event)

    def close(self) -> None:
        """End of run: every subscription's iterator finishes after the last event."""
        self.closed = True
        for sub in self._subs:
            sub.offer(None)

    def dropped(self) -> int:
        return sum(s.dropped for s in self._subs)
