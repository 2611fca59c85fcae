"""The MQTT event source against the real Mosquitto on 127.0.0.1:1883."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gxo.daemon.sources.base import SourceError, open_source
from tests.conftest import service_available

HOST, PORT = "127.0.0.1", 1883


@pytest.fixture
def topic(require_service: Callable[[str, int, str], None]) -> str:
    require_service(HOST, PORT, "Mosquitto")
    return f"gxo-test/{secrets.token_hex(4)}"


@pytest.fixture
async def publisher(topic: str) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(HOST, PORT, protocol=aiomqtt.ProtocolVersion.V5) as client:
        yield client


def url(topic: str, client_id: str | None = None, **params: str) -> str:
    # A short session expiry: the broker forgets the test's sessions soon after.
    params = {"session_expiry": "3s", "client_id": client_id or secrets.token_hex(4), **params}
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"mqtt://{HOST}:{PORT}/{topic}?{query}"


async def get(source, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(source.get(), timeout)


async def nothing_more(source, timeout: float = 0.5) -> bool:  # type: ignore[no-untyped-def]
    try:
        await asyncio.wait_for(source.get(), timeout)
    except TimeoutError:
        return True
    return False


async def test_round_trip_json_text_bytes_with_a_wildcard(
    topic: str, publisher: aiomqtt.Client
) -> None:
    source = open_source(url(f"{topic}/%23"), name="w", max_concurrency=4)
    await source.start()
    try:
        await publisher.publish(f"{topic}/a", b'{"n": 1}', qos=1)
        await publisher.publish(f"{topic}/b/c", b"plain text", qos=1)
        await publisher.publish(f"{topic}/d", b"\xff\x00", qos=1)
        got = [await get(source) for _ in range(3)]
        assert [d.event.subject for d in got] == [f"{topic}/a", f"{topic}/b/c", f"{topic}/d"]
        assert got[0].event.data == {"n": 1}
        assert got[1].event.data == "plain text"
        assert got[2].event.data is None and got[2].event.data_b64 == "/wA="
        assert got[0].event.headers["mqtt-qos"] == "1"
        assert got[0].event.id.startswith(f"{topic}/a:")
        assert len({d.event.id for d in got}) == 3
        for delivery in got:
            await delivery.ack()
    finally:
        await source.close()


async def test_publisher_message_id_property_is_the_event_id(
    topic: str, publisher: aiomqtt.Client
) -> None:
    source = open_source(url(topic), name="w")
    await source.start()
    try:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("message-id", "order-42")]
        await publisher.publish(topic, b"x", qos=1, properties=props)
        delivery = await get(source)
        assert delivery.event.id == "order-42"
        assert delivery.event.headers["message-id"] == "order-42"
        await delivery.ack()
    finally:
        await source.close()


async def test_unacked_messages_come_back_after_reopen_and_acked_ones_do_not(
    topic: str, publisher: aiomqtt.Client
) -> None:
    """At-least-once through the persistent session; the ids are the same."""
    link = url(topic)
    first = open_source(link, name="w", max_concurrency=4)
    await first.start()
    for i in range(3):
        await publisher.publish(topic, str(i).encode(), qos=1)
    held = [await get(first) for _ in range(3)]
    await held[0].ack()
    await asyncio.sleep(0.1)  # the PUBACK leaves before the disconnect
    await first.close()
    await first.close()  # idempotent
    # Published while no one is connected: queued by the broker for the session.
    await publisher.publish(topic, b"3", qos=1)

    second = open_source(link, name="w", max_concurrency=4)
    await second.start()
    try:
        again = [await get(second) for _ in range(3)]
        assert [d.event.data for d in again] == [1, 2, 3]
        assert [d.event.id for d in again[:2]] == [d.event.id for d in held[1:]]
        for delivery in again:
            await delivery.ack()
        assert await nothing_more(second)
    finally:
        await second.close()


async def test_nak_hands_the_message_out_again_after_the_delay(
    topic: str, publisher: aiomqtt.Client
) -> None:
    source = open_source(url(topic), name="w")
    await source.start()
    try:
        await publisher.publish(topic, b"again", qos=1)
        first = await get(source)
        started = time.monotonic()
        await first.nak(0.3)
        second = await get(source)
        assert time.monotonic() - started >= 0.25
        assert second.event.id == first.event.id and second.event.data == "again"
        await second.ack()
        assert await nothing_more(source)
    finally:
        await source.close()


async def test_two_members_of_one_group_share_the_messages(
    topic: str, publisher: aiomqtt.Client
) -> None:
    a = open_source(url(topic, group="fleet"), name="w", max_concurrency=2)
    b = open_source(url(topic, group="fleet"), name="w", max_concurrency=2)
    await a.start()
    await b.start()
    try:
        for i in range(10):
            await publisher.publish(topic, str(i).encode(), qos=1)
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


async def test_back_pressure_holds_messages_on_the_broker(
    topic: str, publisher: aiomqtt.Client
) -> None:
    """Mosquitto 2.0.11 sends two messages per PUBACK past Receive Maximum; the source
    stops reading its socket instead of queueing them while get() is not called."""
    source = open_source(url(topic), name="w", max_concurrency=3)
    await source.start()
    try:
        for i in range(60):
            await publisher.publish(topic, str(i).encode(), qos=1)
        for _ in range(4):
            held = [await get(source) for _ in range(3)]
            for delivery in held:
                await delivery.ack()
        await asyncio.sleep(0.5)
        waiting = len(source._client.messages)  # read from the broker, not yet handed out
        assert waiting <= 3
    finally:
        await source.close()


async def test_close_ends_a_waiting_get_and_leaves_no_task(topic: str) -> None:
    before = asyncio.all_tasks()
    source = open_source(url(topic), name="w")
    await source.start()
    waiting = asyncio.create_task(source.get())
    await asyncio.sleep(0.1)
    await source.close()
    with pytest.raises(SourceError, match="closed"):
        await asyncio.wait_for(waiting, 3)
    await source.close()
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == before


async def test_a_lost_connection_is_a_source_error(topic: str) -> None:
    """The broker drops the source (a session takeover by the same client id): get()
    says so, and the reconciler reopens the source."""
    client_id = f"c-{secrets.token_hex(4)}"
    source = open_source(url(topic, client_id), name="w")
    await source.start()
    try:
        async with aiomqtt.Client(HOST, PORT, identifier=client_id):
            with pytest.raises(SourceError, match="connection lost"):
                await get(source)
    finally:
        await source.close()


async def test_socket_closed_while_reads_are_paused_is_a_source_error(
    topic: str, publisher: aiomqtt.Client
) -> None:
    source = open_source(url(topic), name="w", max_concurrency=2)
    await source.start()
    try:
        for i in range(5):
            await publisher.publish(topic, str(i).encode(), qos=1)
        await asyncio.sleep(0.3)  # two received, then reads pause
        assert len(source._client.messages) == 2 and not source._reading
        source._client._client._sock_close()  # as paho does when a write fails
        assert [(await get(source)).event.data for _ in range(2)] == [0, 1]
        with pytest.raises(SourceError, match="connection lost"):
            await get(source)
    finally:
        await source.close()


async def test_concurrent_gets_never_return_one_message_twice(
    topic: str, publisher: aiomqtt.Client
) -> None:
    source = open_source(url(topic), name="w", max_concurrency=4)
    await source.start()
    try:
        waiting = [asyncio.create_task(source.get()) for _ in range(2)]
        await asyncio.sleep(0.1)
        await publisher.publish(topic, b"0", qos=1)
        await publisher.publish(topic, b"1", qos=1)
        got = await asyncio.wait_for(asyncio.gather(*waiting), 5)
        assert sorted(d.event.data for d in got) == [0, 1]
    finally:
        await source.close()


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[int]:
    """A private Mosquitto on loopback that requires a password (the shared one is open)."""
    mosquitto, passwd = shutil.which("mosquitto"), shutil.which("mosquitto_passwd")
    if not mosquitto or not passwd:
        pytest.skip("mosquitto binaries not installed")
    import socket

    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    subprocess.run([passwd, "-b", "-c", str(tmp_path / "pw"), "gxo", "right-pw"], check=True)
    (tmp_path / "pw").chmod(0o644)
    conf = tmp_path / "m.conf"
    conf.write_text(
        f"listener {port} {HOST}\nallow_anonymous false\npassword_file {tmp_path / 'pw'}\n"
        "user root\npersistence false\n"
    )
    proc = subprocess.Popen(
        [mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 5
        while not service_available(HOST, port):
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("the private mosquitto did not start")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


async def test_bad_credentials_are_a_source_error_without_the_password(auth_broker: int) -> None:
    bad = open_source(f"mqtt://gxo:S3cretPw@{HOST}:{auth_broker}/t", name="w")
    with pytest.raises(SourceError, match="Not authorized") as info:
        await bad.start()
    text = str(info.value)
    assert "S3cretPw" not in text and "mqtt://gxo:[REDACTED]@" in text
    assert info.value.__cause__ is None and info.value.__suppress_context__
    good = open_source(f"mqtt://gxo:right-pw@{HOST}:{auth_broker}/t", name="w")
    await good.start()
    await good.close()


async def test_unreachable_port_is_a_source_error() -> None:
    source = open_source("mqtt://u:S3cretPw@127.0.0.1:1/t", name="w")
    with pytest.raises(SourceError, match="cannot connect") as info:
        await source.start()
    assert "S3cretPw" not in str(info.value)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("mqtt://127.0.0.1:1883", "needs a topic"),
        ("mqtt://127.0.0.1:1883/t?qos=0", "qos must be 1 or 2"),
        ("mqtt://127.0.0.1:1883/t?gruop=g", "unknown mqtt URL parameter 'gruop'"),
        ("mqtt://127.0.0.1:1883/t?group=a/b", "must not contain"),
    ],
)
def test_bad_urls_are_clear_errors(bad: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        open_source(bad, name="w")
