"""How loop iterations count against the run's concurrency limit (``--concurrency``).

The scheduler gives each running pipeline one slot of the run's limit. A loop's
iterations count like workloads: its first running iteration uses the workload's
own slot, and every further iteration running at the same time borrows one more
slot from the run's limit (besides ``loop_control.parallel``). So ``parallel: 50``
under ``--concurrency 2`` runs at most 2 iterations at once, and fewer while other
workloads hold slots.

The own slot is never given up while the loop runs, so a loop always makes progress:
an iteration that waits for a slot holds none, and one holding a borrowed slot never
waits for another. Without a run-wide limit (one workload run by the test kit), only
``parallel`` applies.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Literal

__all__ = ["LoopSlots"]

Slot = Literal["own", "shared"]


class LoopSlots:
    """The slots one loop's iterations run in: its own, or one borrowed from ``shared``."""

    def __init__(self, shared: asyncio.Semaphore | None) -> None:
        self._shared = shared
        self._own_free = True
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()

    async def acquire(self) -> Slot:
        if self._own_free:
            self._own_free = False
            return "own"
        if self._shared is None:  # no run-wide limit: only loop_control.parallel applies
            return "shared"
        own: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(own)
        borrow: asyncio.Future[Any] = asyncio.ensure_future(self._shared.acquire())
        try:
            await asyncio.wait([own, borrow], return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            self._settle(own, borrow, keep=None)
            raise
        # Prefer the own slot when both came at once: the borrowed one goes back.
        keep: Slot = "own" if own.done() and not own.cancelled() else "shared"
        self._settle(own, borrow, keep=keep)
        return keep

    def _settle(
        self, own: asyncio.Future[Any], borrow: asyncio.Future[Any] | None, keep: Slot | None
    ) -> None:
        """Give back whatever of ``own``/``borrow`` was granted but is not kept."""
        if own.done() and not own.cancelled():
            if keep != "own":
                self._release_own()
        else:
            own.cancel()
            if own in self._waiters:
                self._waiters.remove(own)
        if borrow is not None:
            if borrow.done() and not borrow.cancelled():
                if keep != "shared" and self._shared is not None:
                    self._shared.release()
            else:
                # A semaphore acquire cancelled after being granted hands the slot on.
                borrow.cancel()

    def _release_own(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._own_free = True

    def release(self, slot: Slot) -> None:
        if slot == "own":
            self._release_own()
        elif self._shared is not None:
            self._shared.release()
