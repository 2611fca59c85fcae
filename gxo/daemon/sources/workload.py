"""``workload:NAME`` — one event per record of another workload's output stream.

NAME is a workload of the same playbook (an apply error otherwise), typically a
``supervise``\\ d listener or any producer of records. Each engine run of NAME in the
daemon (each of its instances) gets one extra stream link, a *tap*
(:class:`~gxo.engine.streams.Channel`), for every ``workload:NAME`` consumer, through the
engine's ``stream_taps`` hook; the consumer's source reads the taps of every run of NAME,
one record per event: ``_gxo.event`` = ``{id, source: "workload:NAME", subject: NAME,
data: <the record>, headers: {}, received_at}``.

Back-pressure is the stream's: a tap holds at most ``max_concurrency`` records; under
``overflow: block`` a full queue stops the source from taking records, the tap fills and
the producer's ``emit`` waits — no record is lost. Under ``drop_new``/``drop_oldest``
the source keeps taking and the reconciler drops (counted in ``dropped``).

While the consumer is not running (stopped, or not started yet) its taps are *parked*
in a mailbox kept by :class:`StreamTaps`: under ``block`` a producer fills one and then
waits for the consumer to come back; under ``drop_*`` a parked tap keeps the ``queue``
newest/oldest records and drops the rest (counted as ``dropped`` when read).

Records are not acked anywhere (at most once): a record taken by an instance that then
fails is not produced again, and a daemon restart loses the records in the taps. The
taps are local to one daemon: in a fleet, a consumer sees the records of the producer's
runs on its own member only.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from gxo.config.models import OverflowStrategy
from gxo.daemon.sources.base import (
    AtMostOnce,
    Event,
    SourceContext,
    SourceError,
    register_source,
)
from gxo.engine.streams import Channel
from gxo.errors import UpstreamFailedError

__all__ = ["StreamTaps", "WorkloadSource", "producer_name"]


def producer_name(url: str) -> str:
    """NAME of ``workload:NAME`` (a ValueError names what is wrong)."""
    split = urlsplit(url)
    if split.scheme.lower() != "workload":
        raise ValueError(f"not a workload: URL: {url!r}")
    name = (split.netloc or split.path).strip("/")
    if not name or "/" in name:
        raise ValueError(
            f"{url!r}: expected workload:NAME, the name of a workload of this playbook"
        )
    if split.query or split.fragment:
        raise ValueError(f"{url!r}: a workload: source takes no parameters")
    return name


@dataclass(eq=False)
class _Tap:
    channel: Channel
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    seq: int = 0
    dropped_seen: int = 0


@dataclass(eq=False)
class _Mailbox:
    """The taps of one consumer: read by its source, parked while it does not run."""

    consumer: str
    producer: str
    capacity: int  # records a tap holds while the consumer reads (its max_concurrency)
    parked_capacity: int  # ... while it does not (its queue)
    overflow: OverflowStrategy
    taps: list[_Tap] = field(default_factory=list)
    source: WorkloadSource | None = None
    waiter: asyncio.Future[None] | None = None

    def open_tap(self) -> Channel:
        if self.source is not None:
            channel = Channel(self.producer, f"workload:{self.consumer}", self.capacity)
        else:
            channel = Channel(
                self.producer, f"workload:{self.consumer}", self.parked_capacity, self.overflow
            )
        self.taps.append(_Tap(channel))
        self.wake()
        return channel

    def wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        """Nobody will read these taps again: their producers go on, records discarded."""
        for tap in self.taps:
            tap.channel.abandon()
        self.taps.clear()
        self.wake()


class StreamTaps:
    """The daemon's ``workload:`` consumers by playbook, and the engine hook that taps
    their producers' runs."""

    def __init__(self) -> None:
        self._boxes: dict[str, dict[str, _Mailbox]] = {}  # playbook -> consumer -> mailbox

    def declare(self, playbook: str, consumers: dict[str, tuple[str, int, int, str]]) -> None:
        """At apply: ``{consumer: (producer, max_concurrency, queue, overflow)}`` of the
        playbook. A mailbox whose producer and overflow are unchanged keeps its parked
        records; the others are closed."""
        old = self._boxes.get(playbook, {})
        new: dict[str, _Mailbox] = {}
        for consumer, (producer, capacity, queue, overflow) in consumers.items():
            box = old.pop(consumer, None)
            strategy = OverflowStrategy(overflow)
            if box is None or box.producer != producer or box.overflow != strategy:
                if box is not None:
                    box.close()
                box = _Mailbox(consumer, producer, max(1, capacity), max(1, queue), strategy)
            else:
                box.capacity, box.parked_capacity = max(1, capacity), max(1, queue)
            new[consumer] = box
        for box in old.values():
            box.close()
        if new:
            self._boxes[playbook] = new
        else:
            self._boxes.pop(playbook, None)

    def forget(self, playbook: str) -> None:
        for box in self._boxes.pop(playbook, {}).values():
            box.close()

    def hook(self, playbook: str) -> Callable[[str], list[Channel]] | None:
        """The engine's ``stream_taps`` for one run of ``playbook`` (None: nothing to tap)."""
        if playbook not in self._boxes:
            return None

        def taps(producer: str) -> list[Channel]:
            boxes = self._boxes.get(playbook, {})
            return [box.open_tap() for box in boxes.values() if box.producer == producer]

        return taps

    def attach(
        self, playbook: str, consumer: str, producer: str, context: SourceContext, source: Any
    ) -> _Mailbox:
        boxes = self._boxes.setdefault(playbook, {})
        box = boxes.get(consumer)
        strategy = OverflowStrategy(context.overflow)
        if box is None or box.producer != producer:
            if box is not None:
                box.close()
            box = _Mailbox(consumer, producer, 1, max(1, context.capacity), strategy)
            boxes[consumer] = box
        if box.source is not None and box.source is not source:
            raise SourceError(
                f"workload:{producer} is already read by another source of '{consumer}'",
                workload=consumer,
            )
        box.source = source
        for tap in box.taps:  # parked taps now flow with back-pressure
            tap.channel.strategy = OverflowStrategy.block
        return box

    def detach(self, box: _Mailbox, source: Any) -> None:
        if box.source is not source:
            return
        box.source = None
        if box.overflow is OverflowStrategy.block:
            box.wake()  # parked: the producers wait for the consumer to come back
        else:
            box.close()  # nobody reads them: the producers must not wait


class WorkloadSource:
    def __init__(
        self,
        url: str,
        *,
        name: str,
        max_concurrency: int = 4,
        group: str | None = None,
        context: SourceContext | None = None,
    ) -> None:
        self.producer = producer_name(url)
        self.name = name
        self.max_concurrency = max(1, max_concurrency)
        self.context = context
        self.source = f"workload:{self.producer}"
        self._box: _Mailbox | None = None
        self._taps: StreamTaps | None = None
        self._closed = False

    async def start(self) -> None:
        taps = getattr(self.context.hub, "taps", None) if self.context is not None else None
        if taps is None or self.context is None:
            raise SourceError(
                f"event source {self.source!r} reads another workload of the daemon: it "
                "runs only in `gxo daemon`",
                workload=self.name,
            )
        self._box = taps.attach(self.context.playbook, self.name, self.producer, self.context, self)
        self._box.capacity = self.max_concurrency
        self._taps = taps
        self._closed = False

    async def get(self) -> AtMostOnce:
        box = self._box
        if box is None:
            raise SourceError(f"event source {self.source!r} is not started", workload=self.name)
        while True:
            self._count_drops(box)
            for tap in list(box.taps):
                channel = tap.channel
                if not channel.ready():
                    continue
                try:
                    batch = channel.take(1)
                except UpstreamFailedError:  # the producer's run failed: its tap ends
                    batch = None
                if batch is None:
                    box.taps.remove(tap)
                    continue
                tap.seq += 1
                if channel.closed and not channel.depth:  # its last record: the run's
                    box.taps.remove(tap)  # producer need not wait for our next get()
                    with contextlib.suppress(UpstreamFailedError):
                        channel.take()
                return AtMostOnce(
                    Event(
                        id=f"{tap.tag}-{tap.seq}",
                        source=self.source,
                        subject=self.producer,
                        data=batch[0],
                    )
                )
            if self._closed or box.source is not self:
                raise SourceError(f"event source {self.source!r} is closed", workload=self.name)
            waiter = asyncio.get_running_loop().create_future()
            box.waiter = waiter
            for tap in box.taps:
                tap.channel.set_waiter(waiter)
            await waiter

    def _count_drops(self, box: _Mailbox) -> None:
        """Records a parked tap dropped (drop_* while the consumer was away): counted."""
        for tap in box.taps:
            new = tap.channel.dropped - tap.dropped_seen
            if new and self.context is not None:
                tap.dropped_seen = tap.channel.dropped
                for _ in range(new):
                    self.context.count("received")
                    self.context.count("dropped")

    async def close(self) -> None:
        self._closed = True
        box, self._box = self._box, None
        if box is not None and self._taps is not None:
            self._taps.detach(box, self)


register_source("workload", WorkloadSource, contextual=True)
