"""Event bus: bounded subscribers, slow subscribers never stall the engine, redaction."""

from __future__ import annotations

import logging

from gxo.engine.events import EventBus, EventKind


async def test_subscription_receives_events_then_ends_on_close() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.emit(EventKind.LOG, "w", line="one")
    bus.emit(EventKind.LOG, "w", line="two")
    bus.close()
    lines = [e.data["line"] async for e in sub]
    assert lines == ["one", "two"]


async def test_slow_subscriber_drops_are_counted_and_warned_once(caplog) -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=3)
    with caplog.at_level(logging.WARNING, logger="gxo.events"):
        for i in range(10):
            bus.emit(EventKind.LOG, "w", line=str(i))
    assert sub.dropped == 7
    assert bus.dropped() == 7
    assert len([r for r in caplog.records if "too slow" in r.message]) == 1
    bus.close()  # the end marker still arrives even though the queue is full
    events = [e async for e in sub]
    assert [e.data["line"] for e in events] == ["1", "2"]  # the oldest made room for the end marker
    assert sub.dropped == 8


async def test_kind_filter_listener_and_redaction() -> None:
    bus = EventBus(
        redact=lambda d: {
            k: (v.replace("hunter2", "[REDACTED]") if isinstance(v, str) else v)
            for k, v in d.items()
        }
    )
    seen = []
    bus.add_listener(seen.append)
    sub = bus.subscribe(kinds={EventKind.WORKLOAD_STATUS})
    bus.emit(EventKind.LOG, "w", line="password hunter2")
    bus.emit(EventKind.WORKLOAD_STATUS, "w", status="Running")
    bus.close()
    assert [e.kind for e in [x async for x in sub]] == [EventKind.WORKLOAD_STATUS]
    assert seen[0].data["line"] == "password [REDACTED]"
    assert seen[0].seq < seen[1].seq


def test_broken_listener_does_not_break_emit(caplog) -> None:
    bus = EventBus()

    def broken(event):
        raise RuntimeError("listener bug")

    bus.add_listener(broken)
    with caplog.at_level(logging.ERROR, logger="gxo.events"):
        bus.emit(EventKind.WARNING, message="x")
    assert "event listener failed" in caplog.text


def test_emit_without_audience_is_free() -> None:
    bus = EventBus()
    assert not bus.has_audience
    bus.emit(EventKind.LOG, "w", line="nobody listens")


async def test_unsubscribe_and_subscribe_after_close() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    sub.close()
    bus.emit(EventKind.LOG, "w", line="x")
    assert sub.queue.empty()
    bus.close()
    late = bus.subscribe()
    assert [e async for e in late] == []
