"""messaging:publish / messaging:consume against the real brokers on loopback:
NATS (core and JetStream) 4222, Mosquitto 1883, Redis 6379, RabbitMQ 5672.
Kafka runs only where a broker listens on 127.0.0.1:9092 (none here: skipped)."""

from __future__ import annotations

import asyncio
import textwrap
import uuid
from typing import Any

import pytest

from gxo.modules.testkit import run_module, run_playbook_text

pytestmark = pytest.mark.services

NATS = "127.0.0.1:4222"


def uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def brokers(require_service: Any) -> None:
    require_service("127.0.0.1", 4222, "NATS")
    require_service("127.0.0.1", 6379, "Redis")
    require_service("127.0.0.1", 5672, "RabbitMQ")
    require_service("127.0.0.1", 1883, "Mosquitto")


async def publish(url: str, records: list[dict[str, Any]], **params: Any) -> Any:
    r = await run_module("messaging:publish", {"url": url, **params}, inputs=records)
    assert r.ok, r.error
    assert r.summary["published"] == len(records)
    return r


async def consume(url: str, **params: Any) -> Any:
    r = await run_module("messaging:consume", {"url": url, **params})
    assert r.ok, r.error
    return r


async def roundtrip(pub_url: str, sub_url: str, *, prime: bool = False) -> None:
    """Publish three records, consume them (acked), consume again: nothing left."""
    if prime:  # a persistent session (MQTT) exists only after a first subscribe
        r = await consume(sub_url, max_messages=5, max_wait="0.2s")
        assert r.summary["received"] == 0
    records = [{"n": i, "name": f"r{i}"} for i in range(3)]
    await publish(pub_url, records)
    r = await consume(sub_url, max_messages=3, max_wait="5s")
    assert r.records == records
    assert r.summary["received"] == 3 and r.summary["acked"] == 3
    assert "messages" not in r.summary  # a consumer of the stream got them
    again = await consume(sub_url, max_messages=3, max_wait="0.3s")
    assert again.summary["received"] == 0 and again.records == []


async def test_jetstream_roundtrip(brokers: None) -> None:
    stream, subject = f"T{uid()}", f"t.{uid()}"
    await roundtrip(
        f"nats+jetstream://{NATS}/{stream}/{subject}?create=true",
        f"nats+jetstream://{NATS}/{stream}/{subject}?durable=d{uid()}",
    )


async def test_redis_roundtrip(brokers: None) -> None:
    stream = f"t-{uid()}"
    await roundtrip(
        f"redis://127.0.0.1:6379/0?stream={stream}",
        f"redis://127.0.0.1:6379/0?stream={stream}&start=all&group=g{uid()}",
    )


async def test_amqp_roundtrip(brokers: None) -> None:
    queue = f"t-{uid()}"
    url = f"amqp://guest:guest@127.0.0.1:5672/?queue={queue}"
    await roundtrip(url, url)


async def test_mqtt_roundtrip(brokers: None) -> None:
    topic = f"t/{uid()}"
    await roundtrip(
        f"mqtt://127.0.0.1:1883/{topic}?qos=1",
        f"mqtt://127.0.0.1:1883/{topic}?group=g{uid()}",
        prime=True,
    )


async def test_core_nats_message_envelope_and_headers(brokers: None) -> None:
    subject = f"t.{uid()}"
    url = f"nats://{NATS}/{subject}"
    task = asyncio.ensure_future(
        run_module(
            "messaging:consume", {"url": url, "max_messages": 2, "max_wait": "5s", "envelope": True}
        )
    )
    await asyncio.sleep(0.3)  # core NATS: only what is published while it listens
    r = await run_module(
        "messaging:publish", {"url": url, "message": "plain text", "headers": {"X-Id": "1"}}
    )
    assert r.ok, r.error
    assert r.summary == {"url": url, "published": 1, "changed": True}
    r = await run_module("messaging:publish", {"url": url, "message": [1, 2]})
    got = await task
    assert got.ok, got.error
    first, second = got.records
    assert first["data"] == "plain text" and first["subject"] == subject
    assert first["headers"]["X-Id"] == "1" and first["source"] == url
    assert second["data"] == [1, 2]


async def test_consume_without_consumer_keeps_records_in_summary(brokers: None) -> None:
    stream = f"t-{uid()}"
    url = f"redis://127.0.0.1:6379/0?stream={stream}"
    for message in ({"a": 1}, "text", 7):
        r = await run_module("messaging:publish", {"url": url, "message": message})
        assert r.ok, r.error
    text = f"""
    schemaVersion: "1.0.0"
    name: m
    workloads:
      - name: take
        process:
          module: messaging:consume
          params: {{ url: "{url}&start=all", max_messages: 10, max_wait: 3s, idle: 0.3s }}
    """
    result = await run_playbook_text(textwrap.dedent(text).lstrip())
    state = result.states["take"]
    assert state.status.value == "Completed", state.error
    assert state.summary["messages"] == [{"a": 1}, {"data": "text"}, {"data": 7}]
    assert state.summary["acked"] == 3


async def test_failed_pipeline_leaves_messages_for_redelivery(brokers: None) -> None:
    stream, subject, durable = f"T{uid()}", f"t.{uid()}", f"d{uid()}"
    await publish(f"nats+jetstream://{NATS}/{stream}/{subject}?create=true", [{"n": 1}, {"n": 2}])
    url = f"nats+jetstream://{NATS}/{stream}/{subject}?durable={durable}"
    text = f"""
    schemaVersion: "1.0.0"
    name: m
    workloads:
      - name: take
        process:
          module: messaging:consume
          params: {{ url: "{url}", max_messages: 2, max_wait: 5s }}
      - name: check
        stream_inputs: [take]
        process:
          module: data:map
          params: {{ fields: {{ x: "{{{{ record.n / 0 }}}}" }} }}
    """
    result = await run_playbook_text(textwrap.dedent(text).lstrip())
    take = result.states["take"]
    assert result.states["check"].status.value == "Failed"
    assert take.summary["acked"] == 0 and take.summary["redeliver"] == 2
    # handed back at once (nak without delay): the next run gets them again, then acks
    again = await consume(url, max_messages=2, max_wait="5s")
    assert again.records == [{"n": 1}, {"n": 2}] and again.summary["acked"] == 2


async def test_pipeline_consume_map_publish(brokers: None) -> None:
    src, dst = f"t-{uid()}", f"t-{uid()}"
    await publish(f"redis://127.0.0.1:6379/0?stream={src}", [{"n": i} for i in range(50)])
    text = f"""
    schemaVersion: "1.0.0"
    name: m
    workloads:
      - name: take
        process:
          module: messaging:consume
          params: {{ url: "redis://127.0.0.1:6379/0?stream={src}&start=all", max_messages: 50 }}
      - name: double
        stream_inputs: [take]
        process:
          module: data:map
          params: {{ fields: {{ n2: "{{{{ record.n * 2 }}}}" }} }}
      - name: out
        stream_inputs: [double]
        process:
          module: messaging:publish
          params: {{ url: "redis://127.0.0.1:6379/0?stream={dst}" }}
    """
    result = await run_playbook_text(textwrap.dedent(text).lstrip())
    assert result.status == "Completed", {n: s.error for n, s in result.states.items()}
    assert result.states["out"].summary["published"] == 50
    r = await consume(f"redis://127.0.0.1:6379/0?stream={dst}&start=all", max_messages=50)
    assert [rec["n2"] for rec in r.records] == [i * 2 for i in range(50)]


async def test_errors_are_clear_and_redacted(brokers: None) -> None:
    r = await run_module("messaging:publish", {"url": "ftp://x/y", "message": 1})
    assert r.status == "Failed" and "unknown broker URL scheme 'ftp'" in str(r.error)
    r = await run_module("messaging:publish", {"url": "redis://127.0.0.1:6379/0"})
    assert r.status == "Failed" and "nothing to publish" in str(r.error)
    r = await run_module("messaging:publish", {"url": "redis://127.0.0.1:6379/0", "message": 1})
    assert r.status == "Failed" and "?stream=NAME" in str(r.error)
    r = await run_module(
        "messaging:publish",
        {"url": "redis://127.0.0.1:6379/0?stream=s", "message": 1},
        inputs=[{"a": 1}],
    )
    assert r.status == "Failed" and "not both" in str(r.error)
    r = await run_module(
        "messaging:publish", {"url": "nats://u:hunter2pw@127.0.0.1:1/s", "message": "m"}
    )
    assert r.status == "Failed" and "cannot connect" in str(r.error)
    assert "hunter2pw" not in str(r.error) and "hunter2pw" not in str(r.summary)
    r = await run_module(
        "messaging:consume", {"url": "amqp://u:hunter2pw@127.0.0.1:1/?queue=q", "max_wait": "1s"}
    )
    assert r.status == "Failed" and "cannot connect" in str(r.error)
    assert "hunter2pw" not in str(r.error)
    r = await run_module("messaging:consume", {"url": "redis://127.0.0.1:6379/0?strem=x"})
    assert r.status == "Failed" and "unknown redis URL parameter 'strem'" in str(r.error)
    r = await run_module(
        "messaging:publish",
        {"url": f"nats+jetstream://{NATS}/NOPE{uid()}/a.b", "message": "m"},
    )
    assert r.status == "Failed" and "does not exist" in str(r.error)
    r = await run_module("messaging:publish", {"url": "mqtt://127.0.0.1:1883/a/+", "message": 1})
    assert r.status == "Failed" and "wildcard" in str(r.error)
    # Kafka: the client is there even without a broker; an unreachable one is a clear error
    r = await run_module("messaging:publish", {"url": "kafka://127.0.0.1:1/t", "message": 1})
    assert r.status == "Failed" and "cannot connect" in str(r.error)
    r = await run_module("messaging:consume", {"url": "kafka://127.0.0.1:1/t", "max_wait": "1s"})
    assert r.status == "Failed" and "cannot connect" in str(r.error)
    r = await run_module("messaging:consume", {"url": "kafka://127.0.0.1:1/t?start=x"})
    assert r.status == "Failed" and "start must be" in str(r.error)


async def test_publish_check_mode_sends_nothing(brokers: None) -> None:
    stream = f"t-{uid()}"
    url = f"redis://127.0.0.1:6379/0?stream={stream}"
    text = f"""
    schemaVersion: "1.0.0"
    name: m
    workloads:
      - name: items
        process: {{ module: data:generate_from_list, params: {{ items: [1, 2, 3] }} }}
      - name: send
        stream_inputs: [items]
        process: {{ module: messaging:publish, params: {{ url: "{url}" }} }}
      - name: take
        process: {{ module: messaging:consume, params: {{ url: "{url}&start=all" }} }}
    """
    result = await run_playbook_text(textwrap.dedent(text).lstrip(), check=True)
    assert result.states["send"].summary == {"url": url, "published": 3, "changed": True}
    assert result.states["take"].status.value == "Skipped"
    r = await consume(f"{url}&start=all", max_messages=3, max_wait="0.3s")
    assert r.summary["received"] == 0


async def test_kafka_roundtrip(require_service: Any) -> None:
    from tests.conftest import service_available

    if not service_available("127.0.0.1", 9092):
        pytest.skip("no Kafka broker on 127.0.0.1:9092 (Kafka tests run only where one exists)")
    topic = f"t-{uid()}"
    await roundtrip(
        f"kafka://127.0.0.1:9092/{topic}",
        f"kafka://127.0.0.1:9092/{topic}?start=all&group=g{uid()}",
    )


async def test_jetstream_more_than_server_default_pending(brokers: None) -> None:
    """Acks wait for the drained pipeline: the durable must hand out > 1000 un-acked."""
    stream, subject = f"T{uid()}", f"t.{uid()}"
    n = 1200
    await publish(
        f"nats+jetstream://{NATS}/{stream}/{subject}?create=true", [{"n": i} for i in range(n)]
    )
    url = f"nats+jetstream://{NATS}/{stream}/{subject}?durable=d{uid()}"
    r = await consume(url, max_messages=n, max_wait="10s")
    assert r.summary["received"] == n and r.summary["acked"] == n
    assert [rec["n"] for rec in r.records] == list(range(n))


async def test_publish_options_headers_and_url_errors(brokers: None) -> None:
    # headers: MQTT v5 user properties, AMQP headers, extra Redis fields
    topic = f"t/{uid()}"
    sub = f"mqtt://127.0.0.1:1883/{topic}?group=g{uid()}"
    await consume(sub, max_messages=1, max_wait="0.2s")  # the session exists from now on
    r = await run_module(
        "messaging:publish",
        {"url": f"mqtt://127.0.0.1:1883/{topic}?qos=2", "message": {"a": 1}, "headers": {"k": "v"}},
    )
    assert r.ok, r.error
    got = await consume(sub, max_messages=1, max_wait="5s", envelope=True)
    assert got.records[0]["data"] == {"a": 1}
    queue = f"t-{uid()}"
    amqp = f"amqp://guest:guest@127.0.0.1:5672/?queue={queue}"
    r = await run_module("messaging:publish", {"url": amqp, "message": "x", "headers": {"k": "v"}})
    assert r.ok, r.error
    got = await consume(amqp, max_messages=1, max_wait="5s", envelope=True)
    assert got.records[0]["headers"]["k"] == "v" and got.records[0]["data"] == "x"
    r = await run_module(
        "messaging:publish",
        {"url": "amqp://127.0.0.1:5672/?exchange=amq.topic&routing_key=gxo.test", "message": 1},
    )
    assert r.ok and r.summary["published"] == 1, r.error
    stream = f"t-{uid()}"
    redis = f"redis://127.0.0.1:6379/0?stream={stream}"
    r = await publish(f"{redis}&maxlen=2", [{"n": i} for i in range(5)], headers={"origin": "gxo"})
    got = await consume(f"{redis}&start=all", max_messages=5, max_wait="2s", idle="0.2s")
    # several fields: the entry as a mapping of text (maxlen trims approximately: XADD ~)
    assert got.records[-1] == {"data": '{"n":4}', "origin": "gxo"}
    # URL mistakes are named
    for url, message in (
        ("mqtt://127.0.0.1:1883/t?qos=5", "qos must be 0, 1 or 2"),
        ("mqtt://127.0.0.1:1883/t?retain=maybe", "retain must be true or false"),
        ("mqtt://127.0.0.1:1883", "needs a topic"),
        ("redis://127.0.0.1:6379/x?stream=s", "database must be a number"),
        ("amqp://127.0.0.1:5672/", "?queue=NAME or ?exchange=NAME"),
        ("kafka://127.0.0.1:9092/", "kafka://HOST:PORT/TOPIC"),
        ("nats://127.0.0.1:4222/a/b", "nats://HOST:PORT/SUBJECT"),
        ("nats://127.0.0.1:4222/a.*", "wildcard"),
        ("nats+jetstream://127.0.0.1:4222/S", "STREAM/SUBJECT"),
        ("nats+jetstream://127.0.0.1:4222/S/a?create=perhaps", "create must be true or false"),
    ):
        r = await run_module("messaging:publish", {"url": url, "message": 1})
        assert r.status == "Failed" and message in str(r.error), (url, r.error)
    # a token in the URL (token@ or ?token=) is a secret too
    r = await run_module(
        "messaging:publish", {"url": "nats://s3cr3ttok@127.0.0.1:1/x", "message": 1}
    )
    assert r.status == "Failed" and "s3cr3ttok" not in str(r.error)
    r = await run_module(
        "messaging:consume", {"url": "redis://127.0.0.1:1/0?stream=s&token=tok9999"}
    )
    assert r.status == "Failed" and "tok9999" not in str(r.error)


async def test_jetstream_durable_with_other_filter_is_refused(brokers: None) -> None:
    import nats

    stream, durable, p = f"T{uid()}", f"d{uid()}", f"p{uid()}"
    nc = await nats.connect(f"nats://{NATS}")
    try:
        await nc.jetstream().add_stream(name=stream, subjects=[f"{p}.*"])
    finally:
        await nc.close()
    await publish(f"nats+jetstream://{NATS}/{stream}/{p}.x", [{"n": 1}])
    # the durable is bound to p.x; asking it for another subject is an error, not a silent read
    ok = await consume(f"nats+jetstream://{NATS}/{stream}/{p}.x?durable={durable}", max_wait="1s")
    assert ok.summary["received"] == 1
    r = await run_module(
        "messaging:consume",
        {"url": f"nats+jetstream://{NATS}/{stream}/{p}.y?durable={durable}", "max_wait": "1s"},
    )
    assert r.status == "Failed" and "already exists with filter" in str(r.error)
