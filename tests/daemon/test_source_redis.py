"""The Redis Streams event source against the real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Iterator

import pytest
import redis

from gxo.daemon.sources.base import SourceError, open_source

HOST, PORT = "127.0.0.1", 6379


@pytest.fixture
def admin(require_service: Callable[[str, int, str], None]) -> Iterator[redis.Redis]:
    require_service(HOST, PORT, "Redis")
    client = redis.Redis(host=HOST, port=PORT, db=0)
    yield client
    client.close()


@pytest.fixture
def stream(admin: redis.Redis) -> Iterator[str]:
    name = f"gxo-test-{secrets.token_hex(4)}"
    yield name
    admin.delete(name)


def url(stream: str, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"stream": stream, **params}.items())
    return f"redis://{HOST}:{PORT}/0?{query}"


async def get(source, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(source.get(), timeout)


async def test_round_trip_json_text_bytes_and_fields_then_ack(
    admin: redis.Redis, stream: str
) -> None:
    source = open_source(url(stream, group="g"), name="w", max_concurrency=4)
    await source.start()
    try:
        ids = [
            admin.xadd(stream, {"data": json.dumps({"n": 1})}).decode(),
            admin.xadd(stream, {"payload": "plain text"}).decode(),
            admin.xadd(stream, {"data": b"\xff\x00"}).decode(),
            admin.xadd(stream, {"a": "1", "b": "two"}).decode(),
        ]
        got = [await get(source) for _ in ids]
        assert [d.event.id for d in got] == ids
        assert got[0].event.data == {"n": 1}
        assert got[1].event.data == "plain text"
        assert got[2].event.data is None and got[2].event.data_b64 == "/wA="
        assert got[3].event.data == {"a": "1", "b": "two"}
        assert got[0].event.subject == stream
        assert got[0].event.source == url(stream, group="g")
        assert admin.xpending(stream, "g")["pending"] == 4
        for delivery in got:
            await delivery.ack()
        assert admin.xpending(stream, "g")["pending"] == 0
    finally:
        await source.close()


async def test_nak_leaves_the_entry_pending_and_it_is_reclaimed_with_the_same_id(
    admin: redis.Redis, stream: str
) -> None:
    source = open_source(url(stream, group="g", claim_after="200ms"), name="w")
    await source.start()
    try:
        entry = admin.xadd(stream, {"data": "x"}).decode()
        first = await get(source)
        await first.nak()
        assert admin.xpending(stream, "g")["pending"] == 1
        again = await get(source)
        assert again.event.id == entry and again.event.data == "x"
        await again.ack()
        assert admin.xpending(stream, "g")["pending"] == 0
    finally:
        await source.close()


async def test_unacked_entries_survive_close_and_reopen(admin: redis.Redis, stream: str) -> None:
    """At-least-once: what a closed (or killed) member held is processed by the next one."""
    first = open_source(url(stream, group="g", claim_after="300ms"), name="w")
    await first.start()
    ids = {admin.xadd(stream, {"data": str(i)}).decode() for i in range(3)}
    held = [await get(first) for _ in range(3)]
    assert {d.event.id for d in held} == ids
    await first.close()
    await first.close()  # idempotent

    second = open_source(url(stream, group="g", claim_after="300ms"), name="w")
    await second.start()
    try:
        again = [await get(second) for _ in range(3)]
        assert {d.event.id for d in again} == ids
        for delivery in again:
            await delivery.ack()
        assert admin.xpending(stream, "g")["pending"] == 0
    finally:
        await second.close()


async def test_an_entry_held_longer_than_claim_after_is_not_redelivered(
    admin: redis.Redis, stream: str
) -> None:
    """The heartbeat keeps a long instance's entry from being claimed by another member
    (or handed out again by its own source) while it runs."""
    link = url(stream, group="g", claim_after="300ms")
    a, b = open_source(link, name="w"), open_source(link, name="w")
    await a.start()
    await b.start()
    try:
        entry = admin.xadd(stream, {"data": "slow"}).decode()
        held = await get(a)
        assert held.event.id == entry
        for source in (a, b):  # 4 x claim_after: both poll and claim, nothing comes
            with pytest.raises(TimeoutError):
                await get(source, 1.2)
        await held.ack()
        assert admin.xpending(stream, "g")["pending"] == 0
    finally:
        await a.close()
        await b.close()


async def test_two_members_of_one_group_share_the_entries(admin: redis.Redis, stream: str) -> None:
    a = open_source(url(stream, group="fleet"), name="w", max_concurrency=2)
    b = open_source(url(stream, group="fleet"), name="w", max_concurrency=2)
    await a.start()
    await b.start()
    try:
        ids = {admin.xadd(stream, {"data": str(i)}).decode() for i in range(10)}
        seen: dict[str, list[str]] = {"a": [], "b": []}

        async def consume(source, key: str) -> None:  # type: ignore[no-untyped-def]
            while len(seen["a"]) + len(seen["b"]) < len(ids):
                delivery = await source.get()
                seen[key].append(delivery.event.id)
                await delivery.ack()
                await asyncio.sleep(0.01)  # let the other member take its turn

        tasks = [asyncio.create_task(consume(a, "a")), asyncio.create_task(consume(b, "b"))]
        _done, pending = await asyncio.wait(tasks, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        seen_a, seen_b = seen["a"], seen["b"]
        assert seen_a and seen_b
        assert not set(seen_a) & set(seen_b)
        assert set(seen_a) | set(seen_b) == ids
        consumers = {c["name"] for c in admin.xinfo_consumers(stream, "fleet")}
        assert len(consumers) == 2
    finally:
        await a.close()
        await b.close()


async def test_back_pressure_reads_no_more_than_max_concurrency(
    admin: redis.Redis, stream: str
) -> None:
    source = open_source(url(stream, group="g"), name="w", max_concurrency=3)
    await source.start()
    try:
        for i in range(50):
            admin.xadd(stream, {"data": str(i)})
        await get(source)
        await asyncio.sleep(0.2)  # nothing reads in the background while get() is not called
        assert admin.xpending(stream, "g")["pending"] == 3
    finally:
        await source.close()


async def test_close_leaves_no_task_and_a_blocked_get_ends(admin: redis.Redis, stream: str) -> None:
    before = asyncio.all_tasks()
    source = open_source(url(stream, group="g", block="5s"), name="w")
    await source.start()
    waiting = asyncio.create_task(source.get())
    await asyncio.sleep(0.2)
    await source.close()
    with pytest.raises(SourceError, match="closed"):
        await asyncio.wait_for(waiting, 3)
    await source.close()
    assert asyncio.all_tasks() == before


async def test_a_killed_connection_is_survived(admin: redis.Redis, stream: str) -> None:
    """CLIENT KILL (a server restart, an idle timeout): the next read reconnects."""
    source = open_source(url(stream, group="g", block="100ms"), name="w")
    await source.start()
    try:
        name = source.consumer  # the connection is named after the group member
        ours = [c["id"] for c in admin.client_list() if c["name"] == name]
        assert ours  # only our connections: other tests may share this Redis
        for client_id in ours:
            assert admin.client_kill_filter(_id=client_id) == 1
        entry = admin.xadd(stream, {"data": "after"}).decode()
        delivery = await get(source)
        assert delivery.event.id == entry
        await delivery.ack()
    finally:
        await source.close()


async def test_start_all_reads_what_was_there_before_the_group(
    admin: redis.Redis, stream: str
) -> None:
    old = admin.xadd(stream, {"data": "old"}).decode()
    new_only = open_source(url(stream, group="new"), name="w")
    everything = open_source(url(stream, group="all", start="all"), name="w")
    await new_only.start()
    await everything.start()
    try:
        assert (await get(everything)).event.id == old
        with pytest.raises(TimeoutError):
            await get(new_only, 0.5)
    finally:
        await new_only.close()
        await everything.close()


async def test_departed_members_without_pending_entries_are_pruned(
    admin: redis.Redis, stream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gxo.daemon.sources import redis_streams

    first = open_source(url(stream, group="g"), name="w")
    await first.start()
    admin.xadd(stream, {"data": "x"})
    await (await get(first)).ack()
    await first.close()
    busy = open_source(url(stream, group="g"), name="w")  # leaves an entry pending
    await busy.start()
    admin.xadd(stream, {"data": "y"})
    await get(busy)
    await busy.close()
    await asyncio.sleep(0.3)
    monkeypatch.setattr(redis_streams, "_FORGET_IDLE", 0.2)
    third = open_source(url(stream, group="g"), name="w")
    await third.start()
    try:
        members = {c["name"].decode(): c["pending"] for c in admin.xinfo_consumers(stream, "g")}
        assert first.consumer not in members  # nothing pending: forgotten
        assert members[busy.consumer] == 1  # its entry waits to be claimed
    finally:
        await third.close()


async def test_bad_credentials_are_a_source_error_without_the_password(
    require_service: Callable[[str, int, str], None],
) -> None:
    require_service(HOST, PORT, "Redis")
    source = open_source(f"redis://nobody:S3cretPw@{HOST}:{PORT}/0?stream=x", name="w")
    with pytest.raises(SourceError) as info:
        await source.start()
    text = str(info.value)
    assert "S3cretPw" not in text
    assert "redis source redis://nobody:[REDACTED]@" in text
    assert info.value.__cause__ is None and info.value.__suppress_context__


async def test_unreachable_port_is_a_source_error() -> None:
    source = open_source("redis://u:S3cretPw@127.0.0.1:1/0?stream=x", name="w")
    with pytest.raises(SourceError, match="cannot connect") as info:
        await source.start()
    assert "S3cretPw" not in str(info.value)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("redis://127.0.0.1/0", "needs \\?stream=NAME"),
        ("redis://127.0.0.1/0?stream=s&gruop=g", "unknown redis URL parameter 'gruop'"),
        ("redis://127.0.0.1/0?stream=s&claim_after=soon", "invalid duration"),
        ("redis://127.0.0.1/x?stream=s", "database must be a number"),
    ],
)
def test_bad_urls_are_clear_errors(bad: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        open_source(bad, name="w")
