"""Bounded in-memory feeds of the daemon: recent events and per-workload log lines.

Both keep the last N entries (for ``ctl events`` / ``ctl logs --tail``) and fan new
entries out to followers. A follower's queue is bounded too: a client that does
not read cannot grow the daemon's memory; its overflow is dropped and counted.
Entries are plain dicts, already redacted by the engine's event bus.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

__all__ = ["Feed"]

Entry = dict[str, Any]
_END = None


class Follower:
    def __init__(self, match: Callable[[Entry], bool], maxsize: int) -> None:
        self.match = match
        self.queue: asyncio.Queue[Entry | None] = asyncio.Queue(maxsize)
        self.dropped = 0

    def offer(self, entry: Entry | None) -> None:
        if entry is not None and not self.match(entry):
            return
        try:
            self.queue.put_nowait(entry)
        except asyncio.QueueFull:
            if entry is None:  # the end marker must arrive
                self.queue.get_nowait()
                self.queue.put_nowait(None)
            self.dropped += 1


class Feed:
    """A ring of recent entries, kept per key (``None``: one ring for all), plus followers."""

    def __init__(self, size: int = 1000, follower_queue: int = 10_000) -> None:
        self.size = size
        self.follower_queue = follower_queue
        self._rings: dict[Any, deque[Entry]] = {}
        self._followers: set[Follower] = set()
        self.closed = False

    def push(self, entry: Entry, key: Any = None) -> None:
        ring = self._rings.get(key)
        if ring is None:
            ring = self._rings[key] = deque(maxlen=self.size)
        ring.append(entry)
        if self._followers:  # most entries have no follower: no list built for them
            for follower in list(self._followers):
                follower.offer(entry)

    def recent(self, match: Callable[[Entry], bool], tail: int, key: Any = None) -> list[Entry]:
        if tail <= 0:
            return []
        entries = [e for e in self._rings.get(key, ()) if match(e)]
        return entries[-tail:]

    def forget(self, key: Any) -> None:
        self._rings.pop(key, None)

    async def read(
        self, match: Callable[[Entry], bool], tail: int, follow: bool, key: Any = None
    ) -> AsyncIterator[Entry]:
        """The last ``tail`` matching entries, then (``follow``) new ones until the feed closes."""
        follower = Follower(match, self.follower_queue) if follow and not self.closed else None
        if follower is not None:  # registered before the snapshot: nothing falls in between
            self._followers.add(follower)
        try:
            backlog = self.recent(match, tail, key)
            last_seq = backlog[-1].get("seq") if backlog else None
            for entry in backlog:
                yield entry
            if follower is None:
                return
            while True:
                item = await follower.queue.get()
                if item is None:  # _END: the feed closed
                    return
                if last_seq is not None and item.get("seq", 0) <= last_seq:
                    continue  # already sent from the backlog
                yield item
        finally:
            if follower is not None:
                self._followers.discard(follower)

    def close(self) -> None:
        """Daemon shutdown: every follower's stream ends."""
        self.closed = True
        for follower in list(self._followers):
            follower.offer(_END)
