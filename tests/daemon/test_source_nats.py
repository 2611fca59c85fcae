"""Core NATS sources, URL errors and lost connections, against 127.0.0.1:4222."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats_support
import pytest
from nats_support import HOST, JS_URL, PORT, URL, Proxy, get, make_stream, started, uid

from gxo.daemon.sources.base import SourceError, open_source
from gxo.daemon.sources.nats import NatsSource

# The shared fixtures, visible to pytest in this module.
nc, sources, proxy = nats_support.nc, nats_support.sources, nats_support.proxy


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


async def test_lost_connection_is_a_source_error_after_bounded_reconnects(
    nc: Any, proxy: Proxy, sources: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gxo.daemon.sources import _nats_conn as nats_source

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
