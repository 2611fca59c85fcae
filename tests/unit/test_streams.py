"""Channels: back-pressure, overflow strategies, fan-out copies, fan-in, drain, abandon."""

from __future__ import annotations

import asyncio

import pytest

from gxo.engine.streams import Channel, MergedReader, StreamWriter
from gxo.errors import StreamError, UpstreamFailedError
from gxo.state.store import copy_record


async def test_block_strategy_applies_back_pressure() -> None:
    ch = Channel("p", "c", capacity=2)
    await ch.put({"n": 1})
    await ch.put({"n": 2})
    blocked = asyncio.create_task(ch.put({"n": 3}))
    await asyncio.sleep(0.01)
    assert not blocked.done()  # full: the producer waits
    assert await ch.get_batch() == [{"n": 1}, {"n": 2}]
    await asyncio.wait_for(blocked, 1)
    ch.close()
    assert await ch.get_batch() == [{"n": 3}]
    assert await ch.get_batch() is None
    assert (ch.sent, ch.delivered, ch.dropped) == (3, 3, 0)


async def test_drop_new_and_drop_oldest_count_drops() -> None:
    new = Channel("p", "c", capacity=2, strategy="drop_new")
    old = Channel("p", "c", capacity=2, strategy="drop_oldest")
    for n in range(5):
        await new.put({"n": n})
        await old.put({"n": n})
    new.close()
    old.close()
    assert await new.get_batch() == [{"n": 0}, {"n": 1}]
    assert await old.get_batch() == [{"n": 3}, {"n": 4}]
    assert new.dropped == 3 and old.dropped == 3


async def test_batches_respect_max_records() -> None:
    ch = Channel("p", "c", capacity=10)
    for n in range(5):
        await ch.put({"n": n})
    assert len(await ch.get_batch(2)) == 2
    assert len(await ch.get_batch()) == 3


async def test_failed_producer_raises_in_consumer() -> None:
    ch = Channel("p", "c")
    await ch.put({"n": 1})
    ch.close(failed=True)
    assert await ch.get_batch() == [{"n": 1}]  # what was sent is still delivered
    with pytest.raises(UpstreamFailedError, match="stream producer 'p' failed"):
        await ch.get_batch()


async def test_put_after_close_is_an_error_and_abandon_unblocks_producer() -> None:
    ch = Channel("p", "c", capacity=1)
    await ch.put({})
    waiting = asyncio.create_task(ch.put({}))
    await asyncio.sleep(0.01)
    ch.abandon()
    await asyncio.wait_for(waiting, 1)
    await ch.put({})  # discarded silently: nobody reads any more
    assert ch.discarded == 3
    await asyncio.wait_for(ch.wait_drained(), 1)
    ch.close()
    with pytest.raises(StreamError):
        await ch.put({})


async def test_fan_out_gives_each_consumer_its_own_copy() -> None:
    a, b = Channel("p", "a"), Channel("p", "b")
    writer = StreamWriter("p", [a, b])
    record = {"nested": {"v": 1}}
    await writer.send(record)
    writer.close()
    got_a, got_b = (await a.get_batch())[0], (await b.get_batch())[0]
    got_a["nested"]["v"] = 99
    assert got_b == {"nested": {"v": 1}}
    assert writer.records_out == 1


async def test_writer_rejects_non_dict_records() -> None:
    writer = StreamWriter("p", [Channel("p", "c")])
    with pytest.raises(StreamError, match="records must be dicts"):
        await writer.send([1, 2])  # type: ignore[arg-type]


async def test_fan_in_merges_until_every_input_ends() -> None:
    a, b = Channel("a", "c"), Channel("b", "c")
    reader = MergedReader("c", [a, b])

    async def produce(ch: Channel, n: int) -> None:
        for i in range(n):
            await ch.put({"from": ch.producer, "i": i})
            await asyncio.sleep(0)
        ch.close()

    producers = [asyncio.create_task(produce(a, 50)), asyncio.create_task(produce(b, 30))]
    records = await reader.collect()
    await asyncio.gather(*producers)
    assert len(records) == 80
    assert reader.records_in == 80
    assert [r["i"] for r in records if r["from"] == "a"] == list(range(50))  # per-link order kept


async def test_reader_by_producer_and_unknown_name() -> None:
    a, b = Channel("a", "c"), Channel("b", "c")
    reader = MergedReader("c", [a, b])
    await a.put({"x": 1})
    a.close()
    assert await reader.by_producer("a").collect() == [{"x": 1}]
    assert reader.records_in == 1
    with pytest.raises(StreamError, match="no stream input named 'zzz'"):
        reader.by_producer("zzz")


async def test_drained_waits_for_end_of_stream_seen_by_consumer() -> None:
    ch = Channel("p", "c")
    await ch.put({})
    ch.close()
    drained = asyncio.create_task(ch.wait_drained())
    await asyncio.sleep(0.01)
    assert not drained.done()
    await ch.get_batch()
    assert await ch.get_batch() is None
    await asyncio.wait_for(drained, 1)


def test_copy_record_is_deep_for_json_and_falls_back_for_others() -> None:
    original = {"a": [1, {"b": 2}], "s": {1, 2}}
    copied = copy_record(original)
    copied["a"][1]["b"] = 3
    copied["s"].add(3)
    assert original == {"a": [1, {"b": 2}], "s": {1, 2}}


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Channel("p", "c", capacity=0)


async def test_send_many_fast_path_keeps_order_back_pressure_and_counts() -> None:
    ch = Channel("p", "c", capacity=3)
    writer = StreamWriter("p", [ch])
    sender = asyncio.create_task(writer.send_many({"n": i} for i in range(10)))
    received = []
    while (batch := await ch.get_batch()) is not None:
        received.extend(batch)
        assert len(batch) <= 3  # never more than the buffer holds
        if len(received) == 10:
            await sender
            writer.close()
    assert [r["n"] for r in received] == list(range(10))
    assert writer.records_out == 10 and ch.sent == 10


async def test_send_many_validates_records_and_respects_drop_strategy() -> None:
    ch = Channel("p", "c", capacity=2, strategy="drop_new")
    writer = StreamWriter("p", [ch])
    await writer.send_many([{"a": 1}, {"a": 2}, {"a": 3}])
    assert ch.dropped == 1 and writer.records_out == 3
    with pytest.raises(StreamError):
        await writer.send_many([{"ok": 1}, "bad"])  # type: ignore[list-item]
    fan = StreamWriter("p", [Channel("p", "x"), Channel("p", "y")])
    await fan.send_many([{"a": 1}])
    assert fan.records_out == 1
