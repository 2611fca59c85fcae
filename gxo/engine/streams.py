"""Back-pressured record streams between workloads.

Each ``stream_inputs`` link is one :class:`Channel`: a bounded buffer with one
producer side and one consumer side. A producer appends records one by one; the
consumer takes everything buffered in one batch. Batching is adaptive — the
consumer receives as much as accumulated while it was busy — so the per-record
cost is an append and a length check, not a queue round-trip and a task switch.

When the buffer holds ``capacity`` records the overflow strategy applies:
``block`` suspends the producer until the consumer takes a batch (back-pressure),
``drop_new`` discards the incoming record, ``drop_oldest`` evicts the oldest;
both drop strategies count what they discard.

Fan-out: a producer with several consumers writes each record to every link, the
first link receiving the original and the others their own deep copies. Fan-in:
a consumer with several inputs reads them merged, in arrival order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any

from gxo.config.models import OverflowStrategy
from gxo.errors import StreamError, UpstreamFailedError
from gxo.state.store import copy_record

__all__ = ["Batch", "Channel", "MergedReader", "StreamWriter", "copy_record"]


class Batch(list):  # type: ignore[type-arg]
    """A batch of records as a consumer receives it: a list.

    Its records passed the dict check when they were sent, so sending the batch on
    unchanged (a passthrough hop) skips the check: per record it is half the cost
    of a hop. The methods that put a record into it clear ``checked``; removing
    records (pop, del, clear, slicing into a new list) keeps it.
    """

    checked = True

    def __setitem__(self, index: Any, value: Any) -> None:
        self.checked = False
        list.__setitem__(self, index, value)

    def append(self, value: Any) -> None:
        self.checked = False
        list.append(self, value)

    def extend(self, values: Iterable[Any]) -> None:
        self.checked = False
        list.extend(self, values)

    def insert(self, index: Any, value: Any) -> None:
        self.checked = False
        list.insert(self, index, value)

    def __iadd__(self, values: Iterable[Any]) -> Batch:  # type: ignore[override,misc]
        self.checked = False
        return list.__iadd__(self, values)  # type: ignore[return-value]


class Channel:
    """One producer → consumer link."""

    __slots__ = (
        "_buf",
        "_drained",
        "_get_waiter",
        "_put_waiters",
        "abandoned",
        "capacity",
        "closed",
        "consumer",
        "delivered",
        "discarded",
        "dropped",
        "failed",
        "producer",
        "sent",
        "strategy",
    )

    def __init__(
        self,
        producer: str,
        consumer: str,
        capacity: int = 100,
        strategy: OverflowStrategy | str = OverflowStrategy.block,
    ) -> None:
        if capacity < 1:
            raise ValueError("channel capacity must be at least 1")
        self.producer = producer
        self.consumer = consumer
        self.capacity = capacity
        self.strategy = OverflowStrategy(strategy)
        self._buf: deque[dict[str, Any]] = deque()
        self._get_waiter: asyncio.Future[None] | None = None
        self._put_waiters: list[asyncio.Future[None]] = []
        self._drained: asyncio.Event | None = None
        self.closed = False
        self.failed = False
        self.abandoned = False
        self.sent = 0  # records accepted into the buffer
        self.delivered = 0  # records handed to the consumer
        self.dropped = 0  # records discarded by the overflow strategy
        self.discarded = 0  # records written after the consumer stopped reading

    # -- introspection -----------------------------------------------------------

    @property
    def depth(self) -> int:
        return len(self._buf)

    def stats(self) -> dict[str, Any]:
        return {
            "producer": self.producer,
            "consumer": self.consumer,
            "sent": self.sent,
            "delivered": self.delivered,
            "depth": len(self._buf),
            "capacity": self.capacity,
            "dropped": self.dropped,
            "closed": self.closed,
        }

    # -- producer side -----------------------------------------------------------

    async def wait_room(self) -> None:
        """Until the buffer has room or the consumer stopped reading (``block``)."""
        buf = self._buf
        while len(buf) >= self.capacity and not self.abandoned:
            fut = asyncio.get_running_loop().create_future()
            self._put_waiters.append(fut)
            try:
                await fut
            finally:
                if fut in self._put_waiters:
                    self._put_waiters.remove(fut)

    async def put(self, record: dict[str, Any]) -> None:
        if self.closed:
            raise StreamError(f"stream {self.producer} -> {self.consumer} is closed")
        if self.abandoned:
            self.discarded += 1
            return
        buf = self._buf
        if len(buf) >= self.capacity:
            strategy = self.strategy
            if strategy is OverflowStrategy.block:
                while len(buf) >= self.capacity and not self.abandoned:
                    fut = asyncio.get_running_loop().create_future()
                    self._put_waiters.append(fut)
                    try:
                        await fut
                    finally:
                        if fut in self._put_waiters:
                            self._put_waiters.remove(fut)
                if self.abandoned:
                    self.discarded += 1
                    return
            elif strategy is OverflowStrategy.drop_new:
                self.dropped += 1
                return
            else:
                buf.popleft()
                self.dropped += 1
        buf.append(record)
        self.sent += 1
        self._wake_getter()

    def close(self, *, failed: bool = False) -> None:
        """End of stream. ``failed`` tells the consumer that its producer failed."""
        if self.closed:
            return
        self.closed = True
        self.failed = failed
        self._wake_getter()

    # -- consumer side -----------------------------------------------------------

    def ready(self) -> bool:
        return bool(self._buf) or self.closed

    def take(self, max_records: int | None = None) -> list[dict[str, Any]] | None:
        """Everything buffered (at most ``max_records``); None at end of stream.

        Only call when :meth:`ready` is true.
        """
        buf = self._buf
        if not buf:
            if self.failed:
                self._set_drained()
                raise UpstreamFailedError(self.producer)
            self._set_drained()
            return None
        if max_records is None or len(buf) <= max_records:
            batch = Batch(buf)
            buf.clear()
        else:
            batch = Batch([buf.popleft() for _ in range(max_records)])
        self.delivered += len(batch)
        if self._put_waiters:
            for fut in self._put_waiters:
                if not fut.done():
                    fut.set_result(None)
            self._put_waiters.clear()
        return batch

    async def get_batch(self, max_records: int | None = None) -> list[dict[str, Any]] | None:
        while not self.ready():
            fut = asyncio.get_running_loop().create_future()
            self._get_waiter = fut
            await fut
        return self.take(max_records)

    def set_waiter(self, fut: asyncio.Future[None]) -> None:
        self._get_waiter = fut

    def abandon(self) -> None:
        """The consumer stopped reading: unblock the producer and discard what is left."""
        if self.abandoned:
            return
        self.abandoned = True
        self.discarded += len(self._buf)
        self._buf.clear()
        for fut in self._put_waiters:
            if not fut.done():
                fut.set_result(None)
        self._put_waiters.clear()
        self._set_drained()

    async def wait_drained(self) -> None:
        if self.abandoned:
            return
        if self._drained is None:
            self._drained = asyncio.Event()
        await self._drained.wait()

    def _set_drained(self) -> None:
        if self._drained is None:
            self._drained = asyncio.Event()
        self._drained.set()

    def _wake_getter(self) -> None:
        waiter = self._get_waiter
        if waiter is not None:
            self._get_waiter = None
            if not waiter.done():
                waiter.set_result(None)


_DICT_ONLY = frozenset({dict})
_BLOCK = OverflowStrategy.block


def _check_dict(record: Any) -> None:
    if type(record) is not dict:
        raise StreamError(f"records must be dicts (JSON objects), got {type(record).__name__}")


def _offer(ch: Channel, record: dict[str, Any]) -> bool:
    """Append without suspending when the link has room; False when ``put`` must decide.

    The hot path of every stream: ``Channel.put`` handles the rest (full buffer,
    closed, abandoned) with the same semantics.
    """
    buf = ch._buf
    if len(buf) >= ch.capacity or ch.closed or ch.abandoned:
        return False
    buf.append(record)
    ch.sent += 1
    ch._wake_getter()
    return True


class StreamWriter:
    """The output side of a workload: fans each record out to every consumer link."""

    __slots__ = ("_channels", "_single", "producer", "records_out")

    def __init__(self, producer: str, channels: Iterable[Channel] = ()) -> None:
        self.producer = producer
        self._channels = list(channels)
        self._single = self._channels[0] if len(self._channels) == 1 else None
        self.records_out = 0

    @property
    def connected(self) -> bool:
        """True when at least one consumer reads this workload's stream."""
        return bool(self._channels)

    @property
    def channels(self) -> list[Channel]:
        return list(self._channels)

    async def send(self, record: dict[str, Any]) -> None:
        _check_dict(record)
        self.records_out += 1
        single = self._single
        if single is not None:
            if not _offer(single, record):
                await single.put(record)
            return
        first = True
        for ch in self._channels:
            await ch.put(record if first else copy_record(record))
            first = False

    async def send_many(self, records: Iterable[dict[str, Any]]) -> None:
        """Send records in order; costs one coroutine per call, not per record.

        With one consumer and a list, records move into its buffer in chunks as
        large as the free room (C-speed ``extend``), and the consumer is woken once
        per chunk: it cannot run before this coroutine yields anyway.
        """
        single = self._single
        if single is None:
            for record in records:
                await self.send(record)
            return
        # A consumer's batch sent on unchanged: its records were checked when sent to it.
        checked = records.__class__ is Batch and records.checked
        if not isinstance(records, list):
            records = list(records)
        buf = single._buf
        capacity = single.capacity
        start, total = 0, len(records)
        while start < total:
            room = capacity - len(buf)
            if room <= 0 and single.strategy is _BLOCK and not (single.closed or single.abandoned):
                await single.wait_room()  # full: wait for the consumer, then send a chunk
                continue
            if room <= 0 or single.closed or single.abandoned:
                record = records[start]
                _check_dict(record)
                self.records_out += 1
                start += 1
                await single.put(record)  # full, closed or abandoned: put decides
                continue
            chunk = records if start == 0 and room >= total else records[start : start + room]
            if not checked and not set(map(type, chunk)) <= _DICT_ONLY:
                for record in chunk:
                    _check_dict(record)
            buf.extend(chunk)
            single.sent += len(chunk)
            self.records_out += len(chunk)
            start += len(chunk)
            single._wake_getter()

    def close(self, *, failed: bool = False) -> None:
        for ch in self._channels:
            ch.close(failed=failed)

    async def wait_drained(self) -> None:
        for ch in self._channels:
            await ch.wait_drained()

    @property
    def dropped(self) -> int:
        channels = self._channels
        if not channels:  # most workloads: read once per workload by the runner
            return 0
        return sum(ch.dropped for ch in channels)


class MergedReader:
    """The input side of a workload: its input links merged (fan-in)."""

    __slots__ = ("_active", "channels", "consumer", "records_in")

    def __init__(self, consumer: str, channels: Iterable[Channel] = ()) -> None:
        self.consumer = consumer
        self.channels = list(channels)
        self._active = list(self.channels)
        self.records_in = 0

    @property
    def connected(self) -> bool:
        return bool(self.channels)

    def by_producer(self, producer: str) -> MergedReader:
        """A reader over one named input only (for joins and other multi-input modules)."""
        chans = [ch for ch in self.channels if ch.producer == producer]
        if not chans:
            raise StreamError(f"'{self.consumer}' has no stream input named '{producer}'")
        return _SubReader(self, chans)

    async def next_batch(self, max_records: int | None = None) -> list[dict[str, Any]] | None:
        """The next batch from any input; None once every input has ended."""
        active = self._active
        while active:
            for ch in active:
                if ch._buf or ch.closed:  # ch.ready(), inlined: once or twice per batch
                    batch = ch.take(max_records)
                    if batch is None:
                        active.remove(ch)
                        break
                    self._count(len(batch))
                    return batch
            else:
                fut = asyncio.get_running_loop().create_future()
                for ch in active:
                    ch._get_waiter = fut
                await fut
        return None

    def _count(self, n: int) -> None:
        self.records_in += n

    async def batches(self, max_records: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        while (batch := await self.next_batch(max_records)) is not None:
            yield batch

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        while (batch := await self.next_batch()) is not None:
            for record in batch:
                yield record

    async def collect(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while (batch := await self.next_batch()) is not None:
            out.extend(batch)
        return out

    async def drain(self) -> None:
        """Read and discard everything (a barrier)."""
        while await self.next_batch() is not None:
            pass

    def abandon(self) -> None:
        for ch in self.channels:
            ch.abandon()


class _SubReader(MergedReader):
    __slots__ = ("_parent",)

    def __init__(self, parent: MergedReader, channels: list[Channel]) -> None:
        super().__init__(parent.consumer, channels)
        self._parent = parent
        for ch in channels:
            if ch not in parent._active:
                self._active.remove(ch)

    def _count(self, n: int) -> None:
        self.records_in += n
        self._parent.records_in += n
