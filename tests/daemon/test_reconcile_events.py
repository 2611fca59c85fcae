"""event_driven reconciler on a real event loop, with an in-memory source.

The source records every ``get()``, ack and nak; ``run_instance`` is a fake that waits
for the test to release it, so concurrency, queueing and overflow are observed exactly
rather than by timing. Every test ends with no task left behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from gxo.config.models import Workload
from gxo.daemon.reconcile import RECONCILERS, InstanceOutcome
from gxo.daemon.reconcile_events import EventDrivenReconciler
from gxo.daemon.sources.base import Event, SourceError


class MemoryDelivery:
    def __init__(self, source: MemorySource, event: Event) -> None:
        self.source = source
        self.event = event

    async def ack(self) -> None:
        self.source.acks.append(self.event.id)

    async def nak(self, delay: float | None = None) -> None:
        self.source.naks.append((self.event.id, delay))


class MemorySource:
    """An EventSource over an asyncio.Queue: ``feed()`` publishes, ``get()`` consumes."""

    def __init__(self, fail_start: int = 0) -> None:
        self.pending: asyncio.Queue[Any] = asyncio.Queue()
        self.gets = 0  # deliveries handed out
        self.fed = 0
        self.acks: list[str] = []
        self.naks: list[tuple[str, float | None]] = []
        self.started = 0
        self.closed = 0
        self.fail_start = fail_start

    def feed(self, *datas: Any) -> None:
        for data in datas:
            self.pending.put_nowait(
                Event(id=str(self.fed), source="mem://", subject="s", data=data, headers={})
            )
            self.fed += 1

    async def start(self) -> None:
        self.started += 1
        if self.started <= self.fail_start:
            raise SourceError("mem://: connection refused")

    async def get(self) -> MemoryDelivery:
        event = await self.pending.get()
        if isinstance(event, Exception):
            raise event
        self.gets += 1
        return MemoryDelivery(self, event)

    async def close(self) -> None:
        self.closed += 1


class Gate:
    """A run_instance that blocks until released; records events and concurrency."""

    def __init__(self, outcome: Callable[[dict], str] = lambda event: "Completed") -> None:
        self.outcome = outcome
        self.events: list[dict] = []
        self.running = 0
        self.max_running = 0
        self.release = asyncio.Semaphore(0)
        self.auto = False
        self.cancelled = 0

    async def __call__(self, root: str, *, run_id: str, reason: str, event: dict) -> Any:
        assert root == "w" and event["id"] in reason
        self.events.append(event)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if not self.auto:
                await self.release.acquire()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1
        status = self.outcome(event)
        return InstanceOutcome(status, run_id, None if status != "Failed" else "boom")

    def open(self) -> None:
        self.auto = True
        for _ in range(1000):
            self.release.release()


def workload(**lifecycle: Any) -> Workload:
    return Workload.model_validate(
        {
            "name": "w",
            "lifecycle": {"policy": "event_driven", "source": "mem://q", **lifecycle},
            "process": {"module": "exec", "params": {"command": "true"}},
        }
    )


async def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def build(
    source: MemorySource, gate: Gate, seen: list | None = None, **lifecycle: Any
) -> EventDrivenReconciler:
    return EventDrivenReconciler(
        "pb",
        workload(**lifecycle),
        open_source=lambda url, **kw: source,
        run_instance=gate,
        on_status=(seen.append if seen is not None else None),
    )


async def finish(rec: EventDrivenReconciler, baseline: set[asyncio.Task[Any]]) -> None:
    await rec.stop()
    await asyncio.sleep(0)
    left = {t for t in asyncio.all_tasks() - baseline if not t.done()}
    assert not left, f"tasks left behind: {left}"


def test_registered_for_event_driven() -> None:
    assert RECONCILERS["event_driven"] is EventDrivenReconciler


async def test_concurrency_is_bounded_and_every_event_is_acked() -> None:
    baseline = asyncio.all_tasks()
    source, gate = MemorySource(), Gate()
    rec = build(source, gate, max_concurrency=3, queue=100)
    await rec.start()
    source.feed(*range(10))
    await wait_for(lambda: gate.running == 3 and rec.status()["queued"] == 7)
    await settle()
    assert gate.running == 3  # the other 7 wait in the queue
    status = rec.status()
    assert (status["status"], status["received"], status["in_flight"]) == ("Running", 10, 3)
    gate.open()
    await wait_for(lambda: len(source.acks) == 10)
    assert gate.max_running == 3
    assert sorted(source.acks, key=int) == [str(i) for i in range(10)]
    assert [e["data"] for e in gate.events] == list(range(10))  # FIFO
    assert rec.status()["completed"] == 10 and not source.naks
    await finish(rec, baseline)
    assert source.closed == 1


async def test_block_stops_reading_when_slots_and_queue_are_full() -> None:
    baseline = asyncio.all_tasks()
    source, gate = MemorySource(), Gate()
    rec = build(source, gate, max_concurrency=2, queue=3)
    await rec.start()
    source.feed(*range(50))
    await wait_for(lambda: gate.running == 2)
    await asyncio.sleep(0.05)
    # 2 running + 3 queued; the reader waits for room before taking a 6th from the source.
    assert source.gets == 5 and source.pending.qsize() == 45
    assert rec.status()["dropped"] == 0
    gate.release.release()
    await wait_for(lambda: source.gets == 6)
    await asyncio.sleep(0.05)
    assert source.gets == 6
    gate.open()
    await wait_for(lambda: len(source.acks) == 50)
    assert rec.status()["completed"] == 50
    await finish(rec, baseline)


@pytest.mark.parametrize(
    ("policy", "ran", "dropped"),
    [
        ("drop_new", [0, 1, 2, 3], [4, 5, 6, 7, 8, 9]),
        ("drop_oldest", [0, 7, 8, 9], [1, 2, 3, 4, 5, 6]),
    ],
)
async def test_drop_policies_ack_and_count_dropped_events(
    policy: str, ran: list[int], dropped: list[int]
) -> None:
    baseline = asyncio.all_tasks()
    source, gate = MemorySource(), Gate()
    rec = build(source, gate, max_concurrency=1, queue=3, overflow=policy)
    await rec.start()
    source.feed(0)
    await wait_for(lambda: gate.running == 1)
    source.feed(*range(1, 10))
    await wait_for(lambda: source.gets == 10)
    await settle()
    status = rec.status()
    assert (status["dropped"], status["queued"], status["received"]) == (6, 3, 10)
    assert sorted(source.acks, key=int) == [str(i) for i in dropped]  # dropped = acked
    gate.open()
    await wait_for(lambda: rec.status()["completed"] == 4)
    assert [e["data"] for e in gate.events] == ran
    assert len(source.acks) == 10 and not source.naks
    await finish(rec, baseline)


async def test_filter_acks_and_counts_rejected_events() -> None:
    baseline = asyncio.all_tasks()
    source, gate = MemorySource(), Gate()
    gate.auto = True
    rec = build(source, gate, filter="event.data.size > 10 and event.subject == 's'")
    await rec.start()
    source.feed({"size": 5}, {"size": 50}, {"size": 11}, {"size": 10})
    await wait_for(lambda: len(source.acks) == 4)
    status = rec.status()
    assert (status["received"], status["filtered"], status["completed"]) == (4, 2, 2)
    assert [e["data"]["size"] for e in gate.events] == [50, 11]
    await finish(rec, baseline)


async def test_filter_failing_on_an_event_drops_only_that_event() -> None:
    baseline = asyncio.all_tasks()
    source, gate = MemorySource(), Gate()
    gate.auto = True
    rec = build(source, gate, filter="{{ event.data.size > 1 }}")
    await rec.start()
    source.feed("not a dict", {"size": 3})
    await wait_for(lambda: len(source.acks) == 2)
    status = rec.status()
    assert (status["filtered"], status["completed"]) == (1, 1)
    assert "filter failed on event 0" in status["reason"]
    await finish(rec, baseline)


async def test_failed_instance_is_nakd_with_a_growing_delay() -> None:
    baseline = asyncio.all_tasks()
    source = MemorySource()
    gate = Gate(lambda event: "Failed" if event["data"] < 3 else "Completed")
    gate.auto = True
    rec = build(source, gate, max_concurrency=1)
    await rec.start()
    source.feed(0, 1, 2, 3)
    await wait_for(lambda: len(source.naks) == 3 and len(source.acks) == 1)
    assert [n for n, _ in source.naks] == ["0", "1", "2"] and source.acks == ["3"]
    delays = [d for _, d in source.naks]
    assert all(d is not None and d > 0 for d in delays)
    assert delays[2] > delays[0]  # 1s, 2s, 4s ± 20%
    status = rec.status()
    assert (status["failed"], status["completed"]) == (3, 1)
    assert "failed: boom" in status["reason"] and "nak" in status["reason"]
    await finish(rec, baseline)


async def test_stop_cancels_instances_naks_queued_and_leaves_no_task() -> None:
    baseline = asyncio.all_tasks()
    source, gate = MemorySource(), Gate()
    seen: list[dict] = []
    rec = build(source, gate, seen, max_concurrency=2, queue=10)
    await rec.start()
    source.feed(*range(5))
    await wait_for(lambda: gate.running == 2 and rec.status()["queued"] == 3)
    await finish(rec, baseline)
    assert gate.cancelled == 2 and not source.acks
    # Running and queued events go back to the broker at once (nak without delay).
    assert sorted(n for n, _ in source.naks) == ["0", "1", "2", "3", "4"]
    assert all(d == 0.0 for _, d in source.naks)
    assert source.closed == 1
    assert seen[-1]["status"] == "Stopped" and seen[-1]["reason"] == "stopped by request"
    assert rec.status()["in_flight"] == 0 and rec.status()["queued"] == 0


async def test_source_failure_is_retried_and_shown_in_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gxo.daemon import reconcile_events
    from gxo.daemon.policy import BackoffPolicy

    monkeypatch.setattr(reconcile_events, "REOPEN", BackoffPolicy(initial=0.05, max=0.1))
    baseline = asyncio.all_tasks()
    source, gate = MemorySource(fail_start=2), Gate()
    gate.auto = True
    seen: list[dict] = []
    rec = build(source, gate, seen)
    await rec.start()
    source.feed("a")
    await wait_for(lambda: source.acks == ["0"])
    assert source.started == 3 and source.closed == 2
    reasons = [s["reason"] or "" for s in seen]
    assert any("event source unavailable: mem://: connection refused" in r for r in reasons)
    assert rec.status()["reason"] is None  # recovered
    # A get() failing later (connection lost) reopens the source too.
    source.pending.put_nowait(ConnectionError("lost"))
    source.feed("b")
    await wait_for(lambda: source.acks == ["0", "1"])
    assert source.started == 4
    await finish(rec, baseline)


async def test_counters_are_published_throttled(monkeypatch: pytest.MonkeyPatch) -> None:
    from gxo.daemon import reconcile_events

    monkeypatch.setattr(reconcile_events, "PUBLISH_EVERY", 0.05)
    baseline = asyncio.all_tasks()
    source, gate = MemorySource(), Gate()
    gate.auto = True
    seen: list[dict] = []
    rec = build(source, gate, seen)
    await rec.start()
    source.feed(*range(200))
    await wait_for(lambda: any(s["completed"] == 200 for s in seen))
    assert len(seen) < 50  # not one write per event
    last = seen[-1]
    assert (last["received"], last["in_flight"], last["queued"]) == (200, 0, 0)
    assert last["last_event_at"].endswith("Z")
    await finish(rec, baseline)


async def test_source_url_templates_are_rendered_and_secrets_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gxo.daemon.logsetup import redact

    monkeypatch.setenv("GXO_TEST_EVENT_PW", "s3cr3t-pw-42")
    baseline = asyncio.all_tasks()
    source, gate = MemorySource(), Gate()
    gate.auto = True
    urls: list[str] = []

    def opener(url: str, **kwargs: Any) -> MemorySource:
        urls.append(url)
        return source

    rec = EventDrivenReconciler(
        "pb",
        workload(source="mem://u:{{ secret('GXO_TEST_EVENT_PW') }}@{{ host }}/q"),
        open_source=opener,
        variables={"host": "broker"},
        run_instance=gate,
    )
    await rec.start()
    source.feed("x")
    await wait_for(lambda: source.acks == ["0"])
    assert urls == ["mem://u:s3cr3t-pw-42@broker/q"]
    assert redact("error: s3cr3t-pw-42 refused") == "error: [REDACTED] refused"
    await finish(rec, baseline)
