"""JetStream sources against the real server on 127.0.0.1:4222."""

from __future__ import annotations

import asyncio
from typing import Any

import nats_support
import pytest
from nats import errors as nats_errors
from nats_support import JS_URL, consumer, get, make_stream, started, uid

from gxo.daemon.sources.base import SourceError, open_source
from gxo.daemon.sources.nats import JetStreamSource

# The shared fixtures, visible to pytest in this module.
nc, sources = nats_support.nc, nats_support.sources


# --- JetStream --------------------------------------------------------------------------


async def test_jetstream_get_then_ack_removes_the_message(nc: Any, sources: list[Any]) -> None:
    subject = f"gxot.{uid()}.orders"
    stream = await make_stream(nc, subject)
    await nc.jetstream().publish(subject, b'{"order": 7}', headers={"X-Tenant": "t1"})
    source = await started(sources, f"{JS_URL}/{stream}/{subject}?durable=d1")
    assert isinstance(source, JetStreamSource)
    delivery = await get(source)
    event = delivery.event
    assert (event.id, event.subject, event.data) == (f"{stream}:1", subject, {"order": 7})
    assert event.headers["X-Tenant"] == "t1"
    assert (await consumer(nc, stream, "d1")).num_ack_pending == 1
    await delivery.ack()
    await source._nc.flush()
    info = await consumer(nc, stream, "d1")
    assert (info.num_ack_pending, info.num_pending) == (0, 0)


async def test_jetstream_members_sharing_a_durable_split_the_events(
    nc: Any, sources: list[Any]
) -> None:
    subject = f"gxot.{uid()}.fleet"
    stream = await make_stream(nc, subject)
    url = f"{JS_URL}/{stream}/{subject}"
    members = [await started(sources, url, name="w", group="fleet") for _ in range(2)]
    for i in range(200):
        await nc.publish(subject, str(i).encode())
    await nc.flush()
    seen: list[list[int]] = [[], []]

    async def work(index: int) -> None:
        while True:
            try:
                delivery = await get(members[index], timeout=1)
            except TimeoutError:
                return
            seen[index].append(delivery.event.data)
            await asyncio.sleep(0.001)  # an instance's work: lets the other member pull
            await delivery.ack()

    await asyncio.gather(work(0), work(1))
    assert sorted(seen[0] + seen[1]) == list(range(200))  # each exactly once
    assert seen[0] and seen[1]
    info = await consumer(nc, stream, "fleet")  # group names the durable
    assert (info.num_ack_pending, info.num_pending, info.num_redelivered) == (0, 0, 0)


async def test_jetstream_nak_redelivers_with_the_same_id(nc: Any, sources: list[Any]) -> None:
    subject = f"gxot.{uid()}.x"
    stream = await make_stream(nc, subject)
    await nc.jetstream().publish(subject, b"hello")
    source = await started(sources, f"{JS_URL}/{stream}/{subject}?durable=d&max_deliver=5")
    first = await get(source)
    await first.nak(0)
    again = await get(source)
    assert (again.event.id, again.event.data) == (first.event.id, "hello")
    await again.nak(0.5)  # a delayed nak: nothing before the delay
    with pytest.raises(TimeoutError):
        await get(source, timeout=0.2)
    assert (await get(source)).event.id == first.event.id


async def test_jetstream_max_deliver_sends_to_the_dead_letter_subject(
    nc: Any, sources: list[Any]
) -> None:
    subject = f"gxot.{uid()}.pay"
    stream = await make_stream(nc, subject)
    dlq_subject = f"gxot.{uid()}.dead"
    dlq = await make_stream(nc, dlq_subject)
    await nc.jetstream().publish(subject, b'{"bad": true}', headers={"X-Trace": "abc"})
    url = f"{JS_URL}/{stream}/{subject}?durable=d&max_deliver=2&dead_letter={dlq_subject}"
    source = await started(sources, url)
    for _ in range(2):
        delivery = await get(source)
        await delivery.nak(0.01)  # a failure, redelivered 10 ms later
    await source._nc.flush()
    dead = await nc.jetstream().get_msg(dlq, 1)
    assert dead.data == b'{"bad": true}'
    assert dead.headers["Gxo-Dlq-Subject"] == subject
    assert dead.headers["Gxo-Dlq-Stream"] == stream
    assert dead.headers["Gxo-Dlq-Stream-Seq"] == "1"
    assert dead.headers["Gxo-Dlq-Deliveries"] == "2"
    assert dead.headers["X-Trace"] == "abc"
    with pytest.raises(TimeoutError):  # terminated: never redelivered
        await get(source, timeout=1)
    info = await consumer(nc, stream, "d")
    assert (info.num_ack_pending, info.num_redelivered) == (0, 0)


async def test_jetstream_default_dead_letter_subject_without_a_stream(
    nc: Any, sources: list[Any]
) -> None:
    subject = f"gxot.{uid()}.y"
    stream = await make_stream(nc, subject)
    watcher = await nc.subscribe(f"gxo.dlq.{stream}")
    await nc.flush()
    await nc.jetstream().publish(subject, b"poison")
    source = await started(sources, f"{JS_URL}/{stream}/{subject}?durable=d&max_deliver=1")
    await (await get(source)).nak()
    dead = await watcher.next_msg(timeout=1)
    assert (dead.data, dead.headers["Gxo-Dlq-Stream"]) == (b"poison", stream)
    await source._nc.flush()
    assert (await consumer(nc, stream, "d")).num_ack_pending == 0  # terminated


async def test_jetstream_unacked_messages_come_back_to_the_next_source(
    nc: Any, sources: list[Any]
) -> None:
    subject = f"gxot.{uid()}.z"
    stream = await make_stream(nc, subject)
    for i in range(3):
        await nc.jetstream().publish(subject, str(i).encode())
    url = f"{JS_URL}/{stream}/{subject}?durable=shared&ack_wait=1s"
    first = await started(sources, url, max_concurrency=2)
    taken = [(await get(first)).event.id for _ in range(2)]
    await first.close()  # graceful: what it held is nak'ed, back at once
    second = await started(sources, url, max_concurrency=2)
    redelivered = [await get(second, timeout=2) for _ in range(3)]
    ids = [d.event.id for d in redelivered]
    assert set(taken) <= set(ids) and len(set(ids)) == 3
    for delivery in redelivered:
        await delivery.ack()

    # A member that dies without closing: the server redelivers after ack_wait.
    await nc.jetstream().publish(subject, b"late")
    held = await get(second)
    await second._nc.close()  # no nak: as after kill -9
    third = await started(sources, url)
    again = await get(third, timeout=5)
    assert again.event.id == held.event.id == f"{stream}:4"
    await again.ack()


async def test_jetstream_close_after_a_cancelled_get_hands_everything_back(
    nc: Any, sources: list[Any]
) -> None:
    subject = f"gxot.{uid()}.orphan"
    stream = await make_stream(nc, subject)
    url = f"{JS_URL}/{stream}/{subject}?durable=d"  # ack_wait 30 s: the test must not wait it
    await nc.jetstream().publish(subject, b"held")
    first = await started(sources, url)
    await get(first)
    reader = asyncio.create_task(first.get())  # blocks in a fetch...
    await asyncio.sleep(0.2)
    reader.cancel()  # ...cancelled, as the reconciler's stop does; the request stays open
    with pytest.raises(asyncio.CancelledError):
        await reader
    for data in (b"a", b"b"):
        await nc.jetstream().publish(subject, data)  # delivered into the orphaned request
    await asyncio.sleep(0.2)
    await first.close()
    second = await started(sources, url)
    got = sorted([(await get(second, timeout=2)).event.data for _ in range(3)])
    assert got == ["a", "b", "held"]


async def test_jetstream_long_instance_is_not_redelivered_while_running(
    nc: Any, sources: list[Any]
) -> None:
    subject = f"gxot.{uid()}.long"
    stream = await make_stream(nc, subject)
    await nc.jetstream().publish(subject, b"slow")
    url = f"{JS_URL}/{stream}/{subject}?durable=d&ack_wait=1s"
    busy = await started(sources, url)
    other = await started(sources, url)
    delivery = await get(busy)
    # Three ack_waits pass while the instance runs: the source's in-progress heartbeat
    # keeps the server from handing the event to another member meanwhile.
    with pytest.raises(TimeoutError):
        await get(other, timeout=3)
    await delivery.ack()
    await busy._nc.flush()
    assert (await consumer(nc, stream, "d")).num_redelivered == 0


async def test_jetstream_nak_zero_hands_back_without_dead_lettering(
    nc: Any, sources: list[Any]
) -> None:
    subject = f"gxot.{uid()}.release"
    stream = await make_stream(nc, subject)
    watcher = await nc.subscribe(f"gxo.dlq.{stream}")
    await nc.flush()
    await nc.jetstream().publish(subject, b"queued at stop")
    source = await started(sources, f"{JS_URL}/{stream}/{subject}?durable=d&max_deliver=1")
    # The reconciler's stop releases queued events with nak(0): they never ran, so even
    # at max_deliver they come back instead of going to the dead-letter subject.
    await (await get(source)).nak(0)
    again = await get(source)
    assert (again.event.id, again.event.data) == (f"{stream}:1", "queued at stop")
    with pytest.raises(nats_errors.TimeoutError):
        await watcher.next_msg(timeout=0.3)
    await again.nak(0.01)  # a failure (delay > 0) at max_deliver: dead-lettered
    assert (await watcher.next_msg(timeout=2)).data == b"queued at stop"


async def test_jetstream_back_pressure_reads_no_more_than_max_concurrency(
    nc: Any, sources: list[Any]
) -> None:
    subject = f"gxot.{uid()}.bp"
    stream = await make_stream(nc, subject)
    for i in range(5000):
        await nc.publish(subject, str(i).encode())  # stored by the stream
    await nc.flush()
    source = await started(sources, f"{JS_URL}/{stream}/{subject}?durable=bp", max_concurrency=4)
    assert (await get(source)).event.data == 0
    await get(source)
    await asyncio.sleep(1.5)  # nobody calls get(): nothing more may be read
    info = await consumer(nc, stream, "bp")
    assert info.num_ack_pending <= 4
    assert info.num_pending >= 5000 - 4


async def test_jetstream_close_leaves_no_tasks(nc: Any) -> None:
    subject = f"gxot.{uid()}.t"
    stream = await make_stream(nc, subject)
    before = asyncio.all_tasks()
    source = open_source(f"{JS_URL}/{stream}/{subject}?durable=t", name="w")
    await source.start()
    await nc.jetstream().publish(subject, b"1")
    await get(source)  # leave it un-acked
    waiting = asyncio.create_task(source.get())  # blocked in a fetch while close() runs
    await asyncio.sleep(0.2)
    await source.close()
    with pytest.raises(SourceError, match="closed"):
        await asyncio.wait_for(waiting, 5)
    await source.close()  # idempotent
    await asyncio.sleep(0.05)
    left = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert left == []
    with pytest.raises(SourceError, match="closed"):
        await source.get()


async def test_jetstream_missing_stream_is_a_clear_error_unless_create(
    nc: Any, sources: list[Any]
) -> None:
    name, subject = f"GXOT_{uid()}", f"gxot.{uid()}.c"
    source = open_source(f"{JS_URL}/{name}/{subject}?durable=c", name="w")
    with pytest.raises(SourceError, match=f"stream '{name}' does not exist.*create=true"):
        await source.start()
    nc.gxo_streams.append(name)
    created = await started(sources, f"{JS_URL}/{name}/{subject}?durable=c&create=true")
    await nc.jetstream().publish(subject, b"ok")
    assert (await get(created)).event.id == f"{name}:1"


async def test_jetstream_durable_with_another_filter_is_refused(
    nc: Any, sources: list[Any]
) -> None:
    base = f"gxot.{uid()}"
    stream = await make_stream(nc, f"{base}.>")
    await started(sources, f"{JS_URL}/{stream}/{base}.a?durable=same")
    with pytest.raises(SourceError, match="already exists with filter"):
        await started(sources, f"{JS_URL}/{stream}/{base}.b?durable=same")
    with pytest.raises(
        SourceError, match=f"cannot bind durable consumer 'other' on stream '{stream}'"
    ) as info:
        await started(sources, f"{JS_URL}/{stream}/elsewhere.x?durable=other")  # not in the stream
    assert "code=400" not in str(info.value)  # the server's description, not the raw reply


# --- with the event_driven reconciler ----------------------------------------------------


async def test_reconciler_processes_each_jetstream_event_and_hands_back_on_stop(
    nc: Any, sources: list[Any]
) -> None:
    from gxo.config.models import Workload
    from gxo.daemon.reconcile import InstanceOutcome
    from gxo.daemon.reconcile_events import EventDrivenReconciler

    subject = f"gxot.{uid()}.rec"
    stream = await make_stream(nc, subject)
    url = f"{JS_URL}/{stream}/{subject}?durable=rec"
    done: list[str] = []
    hold = asyncio.Event()
    hold.set()

    async def run_instance(root: str, *, run_id: str, reason: str, event: dict) -> Any:
        await hold.wait()
        done.append(event["id"])
        return InstanceOutcome("Completed", run_id, None)

    spec = {"policy": "event_driven", "source": url, "max_concurrency": 4, "queue": 8}
    workload = Workload.model_validate(
        {
            "name": "w",
            "lifecycle": spec,
            "process": {"module": "exec", "params": {"command": "true"}},
        }
    )
    before = asyncio.all_tasks()
    rec = EventDrivenReconciler("pb", workload, run_instance=run_instance)
    await rec.start()
    for i in range(200):
        await nc.publish(subject, str(i).encode())
    await nc.flush()
    for _ in range(500):
        if len(done) == 200:
            break
        await asyncio.sleep(0.02)
    assert sorted(done) == sorted(f"{stream}:{n}" for n in range(1, 201))
    hold.clear()  # now instances hang: 4 running, up to 8 queued
    for i in range(20):
        await nc.publish(subject, str(i).encode())
    await asyncio.sleep(0.5)
    await rec.stop()
    await asyncio.sleep(0.05)
    assert [t for t in asyncio.all_tasks() - before if not t.done()] == []
    # What it held (4 running, 8 queued) was nak'ed at stop: back at once, not after
    # ack_wait (30 s); the other 8 were never read.
    again = await started(sources, url, max_concurrency=20)
    ids = {(await get(again, timeout=2)).event.id for _ in range(20)}
    assert ids == {f"{stream}:{n}" for n in range(201, 221)}
