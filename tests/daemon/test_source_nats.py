"""NATS event sources against the real server (JetStream) on 127.0.0.1:4222."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from nats import errors as nats_errors

from gxo.daemon.sources.base import SourceError, open_source
from gxo.daemon.sources.nats import JetStreamSource, NatsSource

HOST, PORT = "127.0.0.1", 4222
URL = f"nats://{HOST}:{PORT}"
JS_URL = f"nats+jetstream://{HOST}:{PORT}"


@pytest.fixture
async def nc(require_service: Callable[[str, int, str], None]) -> AsyncIterator[Any]:
    """A plain nats-py client for publishing; streams registered in ``nc.gxo_streams``
    are deleted afterwards."""
    require_service(HOST, PORT, "NATS (JetStream)")
    import nats

    client = await nats.connect(URL)
    client.gxo_streams = []
    yield client
    js = client.jetstream()
    for name in client.gxo_streams:
        try:
            await js.delete_stream(name)
        except Exception:  # already gone (a test deleted it)
            pass
    await client.close()


def uid() -> str:
    return uuid.uuid4().hex[:10]


async def make_stream(nc: Any, *subjects: str) -> str:
    name = f"GXOT_{uid()}"
    await nc.jetstream().add_stream(name=name, subjects=list(subjects))
    nc.gxo_streams.append(name)
    return name


async def consumer(nc: Any, stream: str, durable: str) -> Any:
    await nc.flush()
    return await nc.jetstream().consumer_info(stream, durable)


@pytest.fixture
async def sources() -> AsyncIterator[list[Any]]:
    """Sources a test opens are closed even when it fails."""
    opened: list[Any] = []
    yield opened
    for source in opened:
        await source.close()


async def started(opened: list[Any], url: str, **kw: Any) -> Any:
    kw.setdefault("name", "w")
    source = open_source(url, **kw)
    opened.append(source)
    await source.start()
    return source


async def get(source: Any, timeout: float = 5) -> Any:
    return await asyncio.wait_for(source.get(), timeout)


# --- core NATS --------------------------------------------------------------------------


async def test_core_get_decodes_json_text_and_bytes(nc: Any, sources: list[Any]) -> None:
    subject = f"gxot.{uid()}.in"
    source = await started(sources, f"{URL}/{subject}")
    assert isinstance(source, NatsSource)
    await nc.publish(subject, json.dumps({"n": 1}).encode(), headers={"X-Kind": "order"})
    await nc.publish(subject, b"plain")
    await nc.publish(subject, b"\xff\x00")
    first, second, third = [(await get(source)).event for _ in range(3)]
    assert (first.subject, first.data, first.headers["X-Kind"]) == (subject, {"n": 1}, "order")
    assert first.source == f"{URL}/{subject}" and first.id
    assert (second.data, second.data_b64) == ("plain", None)
    assert (third.data, third.data_b64) == (None, "/wA=")
    delivery = await asyncio.wait_for(_publish_and_get(nc, source, subject, b"x"), 5)
    await delivery.ack()  # no-ops: core NATS has nothing to acknowledge
    await delivery.nak(1.0)


async def _publish_and_get(nc: Any, source: Any, subject: str, payload: bytes) -> Any:
    await nc.publish(subject, payload)
    return await source.get()


async def test_core_wildcards(nc: Any, sources: list[Any]) -> None:
    base = f"gxot.{uid()}"
    star = await started(sources, f"{URL}/{base}.*.created")
    tail = await started(sources, f"{URL}/{base}.>")
    for subject in (f"{base}.a.created", f"{base}.a.deleted", f"{base}.b.c.created"):
        await nc.publish(subject, b"{}")
    assert (await get(star)).event.subject == f"{base}.a.created"
    with pytest.raises(TimeoutError):  # *.created matches one token only
        await get(star, timeout=0.5)
    got = [(await get(tail)).event.subject for _ in range(3)]
    assert got == [f"{base}.a.created", f"{base}.a.deleted", f"{base}.b.c.created"]


async def test_core_close_wakes_a_waiting_get_and_leaves_no_tasks(nc: Any) -> None:
    before = asyncio.all_tasks()
    source = open_source(f"{URL}/gxot.{uid()}.idle", name="w")
    await source.start()
    waiting = asyncio.create_task(source.get())
    await asyncio.sleep(0.1)
    await source.close()
    with pytest.raises(SourceError, match="closed"):
        await asyncio.wait_for(waiting, 5)
    await asyncio.sleep(0.05)
    assert [t for t in asyncio.all_tasks() - before if not t.done()] == []


async def test_core_queue_group_gives_each_message_to_one_member(
    nc: Any, sources: list[Any]
) -> None:
    subject = f"gxot.{uid()}.jobs"
    members = [await started(sources, f"{URL}/{subject}", group="fleet") for _ in range(2)]
    for i in range(60):
        await nc.publish(subject, str(i).encode())
    await nc.flush()
    seen: list[list[int]] = [[], []]

    async def drain(index: int) -> None:
        while True:
            try:
                seen[index].append((await get(members[index], timeout=1)).event.data)
            except TimeoutError:
                return

    await asyncio.gather(drain(0), drain(1))
    assert sorted(seen[0] + seen[1]) == list(range(60))  # none lost, none twice
    assert seen[0] and seen[1]  # both members got a share


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


# --- errors and credentials -------------------------------------------------------------


async def test_connection_refused_names_the_server_and_hides_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    for url in (
        "nats://bob:hunter2pw@127.0.0.1:1/x",
        "nats+jetstream://127.0.0.1:1/S/x?token=tok3n-secret",
        "nats://tok3n-secret@127.0.0.1:1/x",
    ):
        source = open_source(url, name="w")
        assert "hunter2pw" not in source.source and "tok3n-secret" not in source.source
        with pytest.raises(SourceError) as info:
            await source.start()
        text = str(info.value)
        assert "cannot connect to NATS at 127.0.0.1:1" in text, text
        assert "hunter2pw" not in text and "tok3n-secret" not in text
        assert "Traceback" not in text
        await source.close()
    # start()'s error says it all: no warning per nats-py connection attempt on top of it.
    assert [r.getMessage() for r in caplog.records if r.name.startswith("gxo.")] == []


def test_url_errors_are_source_errors() -> None:
    with pytest.raises(SourceError, match="unknown nats\\+jetstream URL parameter 'duarble'"):
        open_source(f"{JS_URL}/S/x?duarble=d", name="w")
    with pytest.raises(SourceError, match="STREAM/SUBJECT"):
        open_source(f"{JS_URL}/only-stream", name="w")
    with pytest.raises(SourceError, match="HOST:PORT/SUBJECT"):
        open_source(f"{URL}/", name="w")
    with pytest.raises(SourceError, match="max_deliver"):
        open_source(f"{JS_URL}/S/x?max_deliver=0", name="w")
    source = open_source(f"{JS_URL}/S/a.b?ack_wait=2s", name="my.workload", group=None)
    assert (source.durable, source.ack_wait, source.dead_letter) == (
        "my_workload",
        2.0,
        "gxo.dlq.S",
    )
    assert open_source(f"{JS_URL}/S/a?durable=x", name="w", group="fleet").durable == "x"
    assert open_source(f"{URL}/a.>", name="w", group="fleet").queue == "fleet"


# --- lost connections (through a loopback TCP proxy we can cut) ----------------------


class Proxy:
    """127.0.0.1:<port> → the NATS server; ``cut()`` drops every connection and stops
    listening, ``restore()`` listens again on the same port."""

    def __init__(self) -> None:
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def restore(self) -> None:
        self.server = await asyncio.start_server(self._serve, HOST, self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(HOST, PORT)
        self.writers += [writer, up_writer]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


@pytest.fixture
async def proxy(nc: Any) -> AsyncIterator[Proxy]:
    proxy = Proxy()
    await proxy.restore()
    yield proxy
    if proxy.server is not None and proxy.server.is_serving():
        await proxy.cut()


async def test_lost_connection_is_a_source_error_after_bounded_reconnects(
    nc: Any, proxy: Proxy, sources: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gxo.daemon.sources import nats as nats_source

    monkeypatch.setattr(nats_source, "RECONNECT_ATTEMPTS", 2)
    monkeypatch.setattr(nats_source, "RECONNECT_WAIT", 0.1)
    source = await started(sources, f"nats://bob:hunter2pw@{HOST}:{proxy.port}/gxot.{uid()}")
    waiting = asyncio.create_task(source.get())
    await asyncio.sleep(0.1)
    await proxy.cut()  # and it never comes back
    with pytest.raises(SourceError) as info:
        await asyncio.wait_for(waiting, 10)
    text = str(info.value)
    assert f"connection to NATS at {HOST}:{proxy.port} lost" in text, text
    assert "hunter2pw" not in text


async def test_jetstream_source_survives_a_short_outage(
    nc: Any, proxy: Proxy, sources: list[Any]
) -> None:
    subject = f"gxot.{uid()}.outage"
    stream = await make_stream(nc, subject)
    source = await started(
        sources, f"{JS_URL.replace(str(PORT), str(proxy.port))}/{stream}/{subject}?durable=o"
    )
    await nc.jetstream().publish(subject, b"before")
    await (await get(source)).ack()
    await proxy.cut()
    await nc.jetstream().publish(subject, b"during")
    await asyncio.sleep(1.0)  # longer than the few quick retries of the first connect
    await proxy.restore()  # nats-py reconnects (within RECONNECT_ATTEMPTS)
    delivery = await get(source, timeout=15)
    assert (delivery.event.data, delivery.event.id) == ("during", f"{stream}:2")
    await delivery.ack()


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
