"""The AMQP event source against the real RabbitMQ on 127.0.0.1:5672 (guest/guest)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from gxo.daemon.sources.base import SourceError, open_source

HOST, PORT = "127.0.0.1", 5672


@pytest.fixture
async def admin(
    require_service: Callable[[str, int, str], None],
) -> AsyncIterator[AbstractChannel]:
    require_service(HOST, PORT, "RabbitMQ")
    connection = await aio_pika.connect(host=HOST, port=PORT, login="guest", password="guest")
    channel = await connection.channel()
    yield channel
    await connection.close()


@pytest.fixture
async def queue(admin: AbstractChannel) -> AsyncIterator[str]:
    name = f"gxo-test-{secrets.token_hex(4)}"
    yield name
    await admin.queue_delete(name)


def url(queue: str) -> str:
    return f"amqp://guest:guest@{HOST}:{PORT}/?queue={queue}"


async def publish(channel: AbstractChannel, queue: str, body: bytes, **props: object) -> None:
    await channel.default_exchange.publish(aio_pika.Message(body=body, **props), routing_key=queue)


async def get(source, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(source.get(), timeout)


async def depth(channel: AbstractChannel, queue: str) -> tuple[int, int]:
    """(ready, consumers) as the broker counts them."""
    declared = await channel.declare_queue(queue, passive=True)
    result = declared.declaration_result
    return result.message_count or 0, result.consumer_count or 0


async def test_round_trip_json_text_bytes_then_ack(admin: AbstractChannel, queue: str) -> None:
    source = open_source(url(queue), name="w", max_concurrency=4)
    await source.start()
    try:
        await publish(admin, queue, b'{"n": 1}', message_id="m-1", headers={"k": "v"})
        await publish(admin, queue, b"plain text")
        await publish(admin, queue, b"\xff\x00")
        got = [await get(source) for _ in range(3)]
        assert got[0].event.data == {"n": 1} and got[0].event.id == "m-1"
        assert got[0].event.headers["k"] == "v"
        assert got[1].event.data == "plain text"
        assert got[2].event.data is None and got[2].event.data_b64 == "/wA="
        assert got[0].event.subject == queue
        assert got[0].event.source == f"amqp://guest:[REDACTED]@{HOST}:{PORT}/?queue={queue}"
        for delivery in got:
            await delivery.ack()
    finally:
        await source.close()
    await asyncio.sleep(0.1)
    assert await depth(admin, queue) == (0, 0)  # acked: gone from the queue


async def test_nak_requeues_after_the_delay_with_the_same_id(
    admin: AbstractChannel, queue: str
) -> None:
    source = open_source(url(queue), name="w")
    await source.start()
    try:
        await publish(admin, queue, b"again")
        first = await get(source)
        started = time.monotonic()
        await first.nak(0.3)
        second = await get(source)
        assert time.monotonic() - started >= 0.25
        assert second.event.id == first.event.id
        assert second.event.headers.get("amqp-redelivered") == "true"
        await second.ack()
    finally:
        await source.close()


async def test_unacked_messages_come_back_after_close_and_reopen(
    admin: AbstractChannel, queue: str
) -> None:
    first = open_source(url(queue), name="w", max_concurrency=4)
    await first.start()
    for i in range(3):
        await publish(admin, queue, str(i).encode())
    held = [await get(first) for _ in range(3)]
    await held[0].ack()
    await first.close()
    await first.close()  # idempotent

    second = open_source(url(queue), name="w", max_concurrency=4)
    await second.start()
    try:
        again = [await get(second) for _ in range(2)]
        assert sorted(d.event.data for d in again) == [1, 2]
        assert {d.event.id for d in again} == {d.event.id for d in held[1:]}
        for delivery in again:
            await delivery.ack()
        with pytest.raises(TimeoutError):
            await get(second, 0.3)
    finally:
        await second.close()


async def test_two_members_share_the_queue(admin: AbstractChannel, queue: str) -> None:
    a = open_source(url(queue), name="w", max_concurrency=2)
    b = open_source(url(queue), name="w", max_concurrency=2)
    await a.start()
    await b.start()
    try:
        for i in range(10):
            await publish(admin, queue, str(i).encode())
        seen: dict[str, list[int]] = {"a": [], "b": []}
        all_seen = asyncio.Event()

        async def consume(source, key: str) -> None:  # type: ignore[no-untyped-def]
            while True:
                delivery = await source.get()
                seen[key].append(delivery.event.data)
                await delivery.ack()
                if len(seen["a"]) + len(seen["b"]) >= 10:
                    all_seen.set()

        tasks = [asyncio.create_task(consume(a, "a")), asyncio.create_task(consume(b, "b"))]
        try:
            await asyncio.wait_for(all_seen.wait(), 5)
        except TimeoutError:
            pass  # the assertions below say what is missing
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert seen["a"] and seen["b"]
        assert sorted(seen["a"] + seen["b"]) == list(range(10))
    finally:
        await a.close()
        await b.close()


async def test_back_pressure_prefetch_is_max_concurrency(
    admin: AbstractChannel, queue: str
) -> None:
    source = open_source(url(queue), name="w", max_concurrency=3)
    await source.start()
    try:
        for i in range(50):
            await publish(admin, queue, str(i).encode())
        held = [await get(source) for _ in range(2)]
        await asyncio.sleep(0.3)
        ready, consumers = await depth(admin, queue)
        assert consumers == 1
        assert ready == 47  # 2 handed out + 1 waiting for get(); the rest on the broker
        assert len(held) == 2
    finally:
        await source.close()


async def test_close_ends_a_waiting_get_and_leaves_no_task(
    admin: AbstractChannel, queue: str
) -> None:
    before = asyncio.all_tasks()
    source = open_source(url(queue), name="w")
    await source.start()
    waiting = asyncio.create_task(source.get())
    await asyncio.sleep(0.1)
    await source.close()
    with pytest.raises(SourceError, match="closed"):
        await asyncio.wait_for(waiting, 3)
    await source.close()
    await publish(admin, queue, b"after close")  # no consumer is left to take it
    await asyncio.sleep(0.2)
    assert asyncio.all_tasks() == before
    assert await depth(admin, queue) == (1, 0)


async def test_a_lost_connection_is_a_source_error(admin: AbstractChannel, queue: str) -> None:
    source = open_source(url(queue), name="w")
    await source.start()
    try:
        waiting = asyncio.create_task(source.get())
        await asyncio.sleep(0.1)
        await source._connection.close()  # as when the broker or the network drops it
        with pytest.raises(SourceError, match="connection lost") as info:
            await asyncio.wait_for(waiting, 3)
        assert "guest:guest" not in str(info.value)
    finally:
        await source.close()


async def test_bad_credentials_are_a_source_error_without_the_password(
    require_service: Callable[[str, int, str], None],
) -> None:
    require_service(HOST, PORT, "RabbitMQ")
    source = open_source(f"amqp://guest:S3cretPw@{HOST}:{PORT}/?queue=x", name="w")
    with pytest.raises(SourceError, match="ACCESS_REFUSED") as info:
        await source.start()
    text = str(info.value)
    assert "S3cretPw" not in text and "amqp://guest:[REDACTED]@" in text
    assert info.value.__cause__ is None and info.value.__suppress_context__


async def test_unknown_vhost_is_named_in_the_error(
    require_service: Callable[[str, int, str], None],
) -> None:
    require_service(HOST, PORT, "RabbitMQ")
    source = open_source(f"amqp://guest:guest@{HOST}:{PORT}/no-such-vhost?queue=x", name="w")
    with pytest.raises(SourceError, match="refused virtual host 'no-such-vhost'"):
        await source.start()


async def test_unreachable_port_is_a_source_error() -> None:
    source = open_source("amqp://u:S3cretPw@127.0.0.1:1/?queue=x", name="w")
    with pytest.raises(SourceError, match="cannot connect") as info:
        await source.start()
    assert "S3cretPw" not in str(info.value)


def test_id_without_message_id_is_a_digest_independent_of_the_delivery_tag() -> None:
    """aiormq always sets a message_id, other publishers may not: then a digest of the
    message, the same for its redelivery (another delivery tag)."""
    from types import SimpleNamespace

    from gxo.daemon.sources.amqp import _digest

    def message(tag: int, body: bytes = b"x") -> SimpleNamespace:
        return SimpleNamespace(
            delivery_tag=tag,
            exchange="",
            routing_key="q",
            correlation_id=None,
            timestamp=None,
            body=body,
        )

    first = _digest(message(1))  # type: ignore[arg-type]
    assert first.startswith("sha256:")
    assert _digest(message(7)) == first  # type: ignore[arg-type]
    assert _digest(message(1, b"y")) != first  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("amqp://127.0.0.1/", "needs \\?queue=NAME"),
        ("amqp://127.0.0.1/?queue=q&qeue=x", "unknown amqp URL parameter 'qeue'"),
    ],
)
def test_bad_urls_are_clear_errors(bad: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        open_source(bad, name="w")
