"""Broker plumbing of ``messaging:publish`` and ``messaging:consume``.

The URLs are the daemon's event-source URLs (docs/event-sources.md): consuming reuses
the daemon's sources (:func:`gxo.daemon.sources.base.open_source`: same parsing, same
acknowledgement semantics, same credential redaction); publishing is here, one small
publisher per scheme. ``kafka://`` is only here (aiokafka): the daemon has no Kafka source.

Every client library is imported lazily, when a workload uses its scheme.
The leading underscore keeps the registry from importing this file as a module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "CONSUME_SCHEMES",
    "PUBLISH_SCHEMES",
    "MessagingError",
    "encode",
    "open_consumer",
    "open_publisher",
    "url_secrets",
]

PUBLISH_SCHEMES = ("nats", "nats+jetstream", "redis", "mqtt", "amqp", "kafka")
CONSUME_SCHEMES = PUBLISH_SCHEMES
CONNECT_TIMEOUT = 5.0
# Publishes in flight at once where the broker confirms each one (JetStream, Kafka).
WINDOW = 256


class MessagingError(Exception):
    """A broker error as one line, credentials already removed."""


def url_secrets(url: str) -> list[str]:
    """The credentials written in a URL (password, ``token@``, ``?token=``)."""
    parts = urlsplit(url)
    out = []
    if parts.password:
        out.append(unquote(parts.password))
    elif parts.username and parts.scheme.startswith("nats"):
        out.append(unquote(parts.username))  # nats://TOKEN@host
    from urllib.parse import parse_qs

    for key, values in parse_qs(parts.query).items():
        if key.lower() in ("token", "password", "secret"):
            out.extend(v for v in values if v)
    return out


def shown(url: str) -> str:
    """``url`` fit for a message (credentials replaced)."""
    from gxo.daemon.logsetup import redact_url
    from gxo.daemon.sources._util import scrub

    return scrub(redact_url(url), *url_secrets(url))


def scheme_of(url: str) -> str:
    return urlsplit(url).scheme.lower()


def encode(message: Any) -> bytes:
    """A message as bytes: text as UTF-8, bytes as they are, anything else as JSON."""
    if isinstance(message, bytes):
        return message
    if isinstance(message, str):
        return message.encode("utf-8")
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=str).encode(
        "utf-8"
    )


def _error(url: str, what: str, exc: BaseException) -> MessagingError:
    from gxo.daemon.sources._util import error_text, scrub

    description = getattr(exc, "description", None)
    text = description if isinstance(description, str) and description else error_text(exc)
    return MessagingError(f"{shown(url)}: {what}: {scrub(text, *url_secrets(url))}")


def _query(url: str, allowed: set[str], what: str) -> dict[str, str]:
    from gxo.daemon.sources._util import query_params

    return query_params(urlsplit(url).query, allowed, what=what)


def _flag(params: dict[str, str], key: str, default: bool) -> bool:
    value = params.get(key)
    if value is None:
        return default
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ValueError(f"{key} must be true or false, got {value!r}")


# -- publishers ---------------------------------------------------------------------------


class Publisher:
    """``await start()``, ``await send(payloads, headers)`` (any number of times), ``await close()``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = shown(url)

    async def start(self) -> None:
        raise NotImplementedError

    async def send(self, payloads: Sequence[bytes], headers: dict[str, str]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class _NatsPublisher(Publisher):
    """``nats://HOST:PORT/SUBJECT`` (core) or ``nats+jetstream://HOST:PORT/STREAM/SUBJECT``."""

    def __init__(self, url: str, *, jetstream: bool) -> None:
        super().__init__(url)
        from gxo.daemon.sources._nats_conn import NatsTarget

        allowed = {"token", "create"} if jetstream else {"token"}
        what = "nats+jetstream" if jetstream else "nats"
        self.target = NatsTarget(url, allowed=allowed, what=what)
        self.jetstream = jetstream
        if jetstream:
            stream, _, subject = self.target.path.partition("/")
            if not stream or not subject or "/" in subject:
                raise ValueError("expected nats+jetstream://HOST:PORT/STREAM/SUBJECT")
            self.stream, self.subject = stream, subject
            self.create = _flag(self.target.params, "create", False)
        else:
            self.stream, self.subject = "", self.target.path
            if not self.subject or "/" in self.subject:
                raise ValueError("expected nats://HOST:PORT/SUBJECT")
        if any(c in self.subject for c in "*>"):
            raise ValueError(f"cannot publish to the wildcard subject {self.subject!r}")
        self._nc: Any = None
        self._js: Any = None

    async def start(self) -> None:
        import nats

        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc) or type(exc).__name__)

        options: dict[str, Any] = {
            "servers": [self.target.server],
            "connect_timeout": CONNECT_TIMEOUT,
            # nats-py's initial connect honours only the reconnect settings: a few quick
            # attempts (the daemon's sources do the same), then a clear error.
            "allow_reconnect": True,
            "max_reconnect_attempts": 2,
            "reconnect_time_wait": 0.2,
            "error_cb": on_error,
        }
        if self.target.user:
            options["user"] = self.target.user
            options["password"] = self.target.password or ""
        if self.target.token:
            options["token"] = self.target.token
        try:
            self._nc = await nats.connect(**options)
        except Exception as exc:
            why = errors[-1] if errors else ""
            raise _error(self.url, "cannot connect", RuntimeError(why) if why else exc) from None
        if not self.jetstream:
            return
        import nats.js.errors

        self._js = self._nc.jetstream()
        try:
            await self._js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            if not self.create:
                raise MessagingError(
                    f"{self.where}: stream {self.stream!r} does not exist "
                    "(create it, or add ?create=true)"
                ) from None
            try:
                await self._js.add_stream(name=self.stream, subjects=[self.subject])
            except Exception as exc:
                raise _error(self.url, f"cannot create stream {self.stream!r}", exc) from None
        except Exception as exc:
            raise _error(self.url, "JetStream unavailable", exc) from None

    async def send(self, payloads: Sequence[bytes], headers: dict[str, str]) -> None:
        hdrs = headers or None
        try:
            if self._js is None:
                for payload in payloads:
                    await self._nc.publish(self.subject, payload, headers=hdrs)
                await self._nc.flush(timeout=CONNECT_TIMEOUT)
                return
            for start in range(0, len(payloads), WINDOW):
                chunk = payloads[start : start + WINDOW]
                await asyncio.gather(
                    *(
                        self._js.publish(self.subject, p, timeout=CONNECT_TIMEOUT, headers=hdrs)
                        for p in chunk
                    )
                )
        except Exception as exc:
            raise _error(self.url, f"cannot publish to {self.subject!r}", exc) from None

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await nc.drain()
            with contextlib.suppress(Exception):
                await nc.close()


class _RedisPublisher(Publisher):
    """``redis://HOST:PORT/DB?stream=NAME[&maxlen=N]``: XADD ``data=<payload>``."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        params = _query(url, {"stream", "maxlen"}, "redis")
        self.stream = params.get("stream", "")
        if not self.stream:
            raise ValueError("redis needs ?stream=NAME")
        self.maxlen = int(params["maxlen"]) if params.get("maxlen") else None
        parts = urlsplit(url)
        db_text = parts.path.strip("/") or "0"
        if not db_text.isdigit():
            raise ValueError(f"redis database must be a number, not {db_text!r}")
        self.options: dict[str, Any] = {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 6379,
            "db": int(db_text),
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "socket_connect_timeout": CONNECT_TIMEOUT,
        }
        self._client: Any = None

    async def start(self) -> None:
        import redis.asyncio as aioredis

        client = aioredis.Redis(**self.options)
        try:
            await client.ping()
        except Exception as exc:
            await client.aclose()
            raise _error(self.url, "cannot connect", exc) from None
        self._client = client

    async def send(self, payloads: Sequence[bytes], headers: dict[str, str]) -> None:
        try:
            for start in range(0, len(payloads), WINDOW * 4):
                async with self._client.pipeline(transaction=False) as pipe:
                    for payload in payloads[start : start + WINDOW * 4]:
                        fields: dict[str, Any] = {"data": payload}
                        fields.update(headers)
                        pipe.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
                    await pipe.execute()
        except Exception as exc:
            raise _error(self.url, f"cannot add to stream {self.stream!r}", exc) from None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()


class _MqttPublisher(Publisher):
    """``mqtt://[USER:PASS@]HOST:PORT/TOPIC?qos=1&retain=false``."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        params = _query(url, {"qos", "retain", "client_id"}, "mqtt")
        parts = urlsplit(url)
        self.topic = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
        if not self.topic:
            raise ValueError("mqtt needs a topic: mqtt://HOST:PORT/TOPIC")
        if any(c in self.topic for c in "+#"):
            raise ValueError(f"cannot publish to the wildcard topic {self.topic!r}")
        qos = params.get("qos", "1")
        if qos not in ("0", "1", "2"):
            raise ValueError(f"mqtt qos must be 0, 1 or 2, not {qos!r}")
        self.qos = int(qos)
        self.retain = _flag(params, "retain", False)
        self.client_id = params.get("client_id") or ""
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 1883
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self._client: Any = None

    async def start(self) -> None:
        import aiomqtt

        client = aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=self.client_id or None,
            protocol=aiomqtt.ProtocolVersion.V5,
            timeout=CONNECT_TIMEOUT,
        )
        try:
            await asyncio.wait_for(client.__aenter__(), CONNECT_TIMEOUT + 1)
        except Exception as exc:
            raise _error(self.url, "cannot connect", exc) from None
        self._client = client

    async def send(self, payloads: Sequence[bytes], headers: dict[str, str]) -> None:
        props = None
        if headers:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = list(headers.items())
        try:
            for start in range(0, len(payloads), WINDOW):
                await asyncio.gather(
                    *(
                        self._client.publish(
                            self.topic,
                            p,
                            qos=self.qos,
                            retain=self.retain,
                            properties=props,
                            timeout=CONNECT_TIMEOUT,
                        )
                        for p in payloads[start : start + WINDOW]
                    )
                )
        except Exception as exc:
            raise _error(self.url, f"cannot publish to {self.topic!r}", exc) from None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.__aexit__(None, None, None), CONNECT_TIMEOUT)


class _AmqpPublisher(Publisher):
    """``amqp://USER:PASS@HOST:PORT/VHOST?queue=Q`` (the default exchange, the queue declared
    durable) or ``?exchange=E&routing_key=K``; persistent messages, publisher confirms."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        params = _query(url, {"queue", "exchange", "routing_key"}, "amqp")
        self.queue = params.get("queue", "")
        self.exchange = params.get("exchange", "")
        self.routing_key = params.get("routing_key", self.queue)
        if not self.queue and not self.exchange:
            raise ValueError("amqp needs ?queue=NAME or ?exchange=NAME&routing_key=KEY")
        parts = urlsplit(url)
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        self.options: dict[str, Any] = {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 5672,
            "login": unquote(parts.username) if parts.username else "guest",
            "password": unquote(parts.password) if parts.password else "guest",
            "virtualhost": unquote(path) or "/",
            "timeout": CONNECT_TIMEOUT,
        }
        self._connection: Any = None
        self._exchange: Any = None

    async def start(self) -> None:
        import aio_pika

        try:
            self._connection = await asyncio.wait_for(
                aio_pika.connect(**self.options), CONNECT_TIMEOUT + 1
            )
            channel = await self._connection.channel(publisher_confirms=True)
            if self.queue:
                # The consumer's declaration: durable, so messages wait for it.
                await channel.declare_queue(self.queue, durable=True)
            if self.exchange:
                self._exchange = await channel.get_exchange(self.exchange, ensure=True)
            else:
                self._exchange = channel.default_exchange
        except Exception as exc:
            await self.close()
            raise _error(self.url, "cannot connect", exc) from None

    async def send(self, payloads: Sequence[bytes], headers: dict[str, str]) -> None:
        import aio_pika

        try:
            for start in range(0, len(payloads), WINDOW):
                await asyncio.gather(
                    *(
                        self._exchange.publish(
                            aio_pika.Message(
                                p,
                                headers=dict(headers) or None,
                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            ),
                            routing_key=self.routing_key,
                        )
                        for p in payloads[start : start + WINDOW]
                    )
                )
        except Exception as exc:
            raise _error(self.url, "cannot publish", exc) from None

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()


def _kafka_target(url: str, allowed: set[str]) -> tuple[str, str, dict[str, str]]:
    params = _query(url, allowed, "kafka")
    parts = urlsplit(url)
    topic = unquote(parts.path.strip("/"))
    if not topic or "/" in topic:
        raise ValueError("expected kafka://HOST:PORT/TOPIC")
    host = parts.hostname or "127.0.0.1"
    return f"{host}:{parts.port or 9092}", topic, params


class _KafkaPublisher(Publisher):
    """``kafka://HOST:PORT/TOPIC[?key=K]`` (aiokafka; acks=all)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.bootstrap, self.topic, params = _kafka_target(url, {"key"})
        self.key = params["key"].encode() if params.get("key") else None
        self._producer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", request_timeout_ms=10000
        )
        try:
            await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT * 2)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await producer.stop()
            if isinstance(exc, Exception):
                raise _error(self.url, "cannot connect", exc) from None
            raise
        self._producer = producer

    async def send(self, payloads: Sequence[bytes], headers: dict[str, str]) -> None:
        hdrs = [(k, v.encode()) for k, v in headers.items()] or None
        try:
            for start in range(0, len(payloads), WINDOW):
                futures = [
                    await self._producer.send(self.topic, p, key=self.key, headers=hdrs)
                    for p in payloads[start : start + WINDOW]
                ]
                await asyncio.gather(*futures)
        except Exception as exc:
            raise _error(self.url, f"cannot publish to {self.topic!r}", exc) from None

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()


def open_publisher(url: str) -> Publisher:
    """The (not started) publisher of ``url``; ValueError for a bad URL."""
    scheme = scheme_of(url)
    if scheme == "nats":
        return _NatsPublisher(url, jetstream=False)
    if scheme == "nats+jetstream":
        return _NatsPublisher(url, jetstream=True)
    if scheme == "redis":
        return _RedisPublisher(url)
    if scheme == "mqtt":
        return _MqttPublisher(url)
    if scheme == "amqp":
        return _AmqpPublisher(url)
    if scheme == "kafka":
        return _KafkaPublisher(url)
    raise ValueError(f"unknown scheme {scheme!r} (known: {', '.join(PUBLISH_SCHEMES)})")


# -- consumers ----------------------------------------------------------------------------


class _KafkaDelivery:
    __slots__ = ("_source", "event", "offset", "partition")

    def __init__(self, source: _KafkaSource, event: Any, partition: Any, offset: int) -> None:
        self._source = source
        self.event = event
        self.partition = partition
        self.offset = offset

    async def ack(self) -> None:
        await self._source.commit(self)

    async def nak(self, delay: float | None = None) -> None:
        return None  # not committed: the group reads it again from the committed offset


class _KafkaSource:
    """``kafka://HOST:PORT/TOPIC?group=G&start=new|all``: a consumer group member whose
    offsets are committed only by ``ack`` (after the pipeline drained)."""

    def __init__(self, url: str, *, name: str, max_concurrency: int) -> None:
        self.url = url
        self.bootstrap, self.topic, params = _kafka_target(url, {"group", "start"})
        self.group = params.get("group") or name
        start = params.get("start", "new")
        if start not in ("new", "all"):
            raise ValueError(f"kafka start must be 'new' or 'all', not {start!r}")
        self.reset = "latest" if start == "new" else "earliest"
        self.max_concurrency = max_concurrency
        self._consumer: Any = None
        self._buffer: list[Any] = []

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset=self.reset,
            max_poll_records=min(self.max_concurrency, 10000),
        )
        try:
            await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT * 2)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await consumer.stop()
            if isinstance(exc, Exception):
                raise _error(self.url, "cannot connect", exc) from None
            raise
        self._consumer = consumer

    async def get(self) -> _KafkaDelivery:
        from gxo.daemon.sources.base import Event, decode_payload

        while not self._buffer:
            batches = await self._consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                self._buffer.extend(records)
        msg = self._buffer.pop(0)
        data, data_b64 = decode_payload(msg.value or b"")
        headers = {k: v.decode("utf-8", "replace") for k, v in (msg.headers or ())}
        event = Event(
            f"{msg.topic}:{msg.partition}:{msg.offset}",
            shown(self.url),
            msg.topic,
            data,
            headers,
            data_b64=data_b64,
        )
        from aiokafka import TopicPartition

        return _KafkaDelivery(self, event, TopicPartition(msg.topic, msg.partition), msg.offset)

    async def commit(self, delivery: _KafkaDelivery) -> None:
        await self._consumer.commit({delivery.partition: delivery.offset + 1})

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()


async def prepare_jetstream(source: Any, max_ack_pending: int) -> None:
    """Let the durable consumer of a ``nats+jetstream://`` source hold ``max_ack_pending``
    un-acked messages (the server's default is 1000): ``messaging:consume`` acks only after
    the pipeline drained, so the server must hand out ``max_messages`` before any ack.

    Creates the durable as the daemon's source would, or updates that one setting of an
    existing one; a missing stream is left for the source to report (or create)."""
    import nats
    import nats.js.errors
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    target = source.target
    options: dict[str, Any] = {
        "servers": [target.server],
        "connect_timeout": CONNECT_TIMEOUT,
        "allow_reconnect": True,
        "max_reconnect_attempts": 2,
        "reconnect_time_wait": 0.2,
    }
    if target.user:
        options["user"] = target.user
        options["password"] = target.password or ""
    if target.token:
        options["token"] = target.token

    async def quiet(exc: Exception) -> None:
        return None

    try:
        nc = await nats.connect(**options, error_cb=quiet)
    except Exception:
        return  # the source's own connection reports it, in its words
    try:
        js = nc.jetstream()
        try:
            info = await js.consumer_info(source.stream, source.durable)
        except nats.js.errors.NotFoundError:
            info = None
        except Exception:
            return  # no such stream, no JetStream: the source says so
        if info is not None:
            config = info.config
            if (config.max_ack_pending or 0) >= max_ack_pending or (
                config.filter_subject != source.subject
            ):
                return  # enough; or not ours to change (the source reports the mismatch)
            config.max_ack_pending = max_ack_pending
        else:
            config = ConsumerConfig(
                durable_name=source.durable,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=source.ack_wait,
                max_deliver=-1,
                filter_subject=source.subject,
                max_ack_pending=max(max_ack_pending, 1000),
            )
        with contextlib.suppress(Exception):
            await js.add_consumer(source.stream, config)
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


def open_consumer(url: str, *, name: str, max_concurrency: int) -> Any:
    """The (not started) source of ``url``: the daemon's event source, or Kafka's here.

    Raises ValueError for a bad URL, ``SourceError`` from the daemon's sources."""
    scheme = scheme_of(url)
    if scheme not in CONSUME_SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r} (known: {', '.join(CONSUME_SCHEMES)})")
    if scheme == "kafka":
        return _KafkaSource(url, name=name, max_concurrency=max_concurrency)
    from gxo.daemon.sources.base import open_source

    return open_source(url, name=name, max_concurrency=max_concurrency)
