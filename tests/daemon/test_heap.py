"""gxo/daemon/heap.py: a daemon freezes its long-lived objects after start-up and applies."""

from __future__ import annotations

import asyncio
import gc

from gxo.daemon import heap


def test_settle_freezes_what_is_alive_and_collects_cycles() -> None:
    try:

        class Node:
            pass

        a, b = Node(), Node()
        a.other, b.other = b, a  # type: ignore[attr-defined]
        del a, b  # cyclic garbage: only the collector frees it
        took = heap.settle()
        assert took >= 0
        assert gc.get_freeze_count() > 0
        assert not any(type(o).__name__ == "Node" for o in gc.get_objects())
    finally:
        gc.unfreeze()


async def test_request_settle_is_off_outside_a_daemon_and_debounced_inside() -> None:
    heap.request_settle(0.01)
    await asyncio.sleep(0.05)
    assert gc.get_freeze_count() == 0  # not enabled: a test process is never frozen
    heap.enable()
    try:
        heap.request_settle(0.02)
        heap.request_settle(0.02)  # a burst settles once
        assert len(heap._pending) == 1
        await asyncio.sleep(0.1)
        assert gc.get_freeze_count() > 0 and not heap._pending
        heap.request_settle(10)
        heap.cancel()
        assert not heap._pending
    finally:
        heap._ENABLED[0] = False
        gc.unfreeze()
