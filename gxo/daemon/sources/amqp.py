"""``amqp://USER:PASS@HOST:PORT/VHOST?queue=Q`` — an AMQP 0-9-1 queue (aio-pika, RabbitMQ).

- The queue is used as it is when it exists, else declared durable. Members of a fleet
  consume the same queue, and the broker deals the messages out between them.
- Manual ack with ``prefetch = max_concurrency``: the broker never has more than that many
  un-acked messages out to this source, whether handed out by ``get()`` or waiting for
  it — that is the back-pressure, and the rest stays on the broker.
- ``ack()`` acks. ``nak(delay)`` holds the message for the delay (at most 10 s: it keeps
  a prefetch slot) and then nacks it with requeue, so the broker delivers it again, to
  this or another member. A message not acked when the source closes or the process
  dies is requeued by the broker (the channel closes): at-least-once.
- ``Event.id``: the ``message_id`` property when the publisher sets one (the reliable
  way), else a digest of exchange, routing key, correlation id, timestamp and body —
  independent of the delivery tag, so a redelivery keeps its id (and two identical
  messages without a message_id share one).
- Credentials are redacted in ``Event.source`` and in every error.
- RabbitMQ closes a channel whose delivery stays un-acked past its ``consumer_timeout``
  (30 min by default): for longer instances raise it on the queue or the broker. The
  source then fails, is reopened by the reconciler, and the message is redelivered.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
from aio_pika import exceptions as pexc
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue
from aiormq import exceptions as aexc

from gxo.daemon.logsetup import add_secret, redact_url
from gxo.daemon.sources._util import SettleOnce, error_text, query_params, scrub
from gxo.daemon.sources.base import Event, SourceError, decode_payload, register_source

__all__ = ["AmqpSource"]

_PARAMS = {"queue"}
_CONNECT_TIMEOUT = 5.0
_MAX_NAK_DELAY = 10.0
_DEFAULT_NAK_DELAY = 1.0
_ERRORS = (aexc.AMQPError, pexc.AMQPException, OSError, TimeoutError, ConnectionError)


class _AmqpDelivery(SettleOnce):
    __slots__ = ("_message", "_source")

    def __init__(self, source: AmqpSource, message: AbstractIncomingMessage, event: Event) -> None:
        super().__init__(event)
        self._source = source
        self._message = message

    async def _ack(self) -> None:
        try:
            await self._message.ack()
        except _ERRORS as exc:
            # The channel is gone: the broker has requeued the message already.
            raise self._source._error(f"cannot ack {self.event.id!r}", exc) from None

    async def _nak(self, delay: float | None) -> None:
        self._source._nack_later(self._message, delay)


class AmqpSource:
    def __init__(
        self, url: str, *, name: str, max_concurrency: int = 4, group: str | None = None
    ) -> None:
        parts = urlsplit(url)
        self.url = redact_url(url)
        self.name = name
        params = query_params(parts.query, _PARAMS, what="amqp")
        # The queue is what members share, so a fleet needs no separate group name.
        self.queue_name = params.get("queue", "")
        if not self.queue_name:
            raise ValueError("amqp source needs ?queue=NAME")
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        self.vhost = unquote(path) or "/"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 5672
        self.login = unquote(parts.username) if parts.username else "guest"
        self.password = unquote(parts.password) if parts.password else "guest"
        if parts.password:
            add_secret(self.password)
        self.max_concurrency = max(1, int(max_concurrency))
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._lost: asyncio.Future[BaseException] | None = None
        self._timers: set[asyncio.Task[None]] = set()
        self._closed = False

    def _error(self, what: str, exc: BaseException) -> SourceError:
        reason = scrub(error_text(exc), self.password if self.password != "guest" else None)
        return SourceError(f"amqp source {self.url}: {what}: {reason}", workload=self.name)

    def _closed_error(self) -> SourceError:
        state = "closed" if self._closed else "not started"
        return SourceError(f"amqp source {self.url}: {state}", workload=self.name)

    # -- EventSource ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._closed:
            raise self._closed_error()
        try:
            connection = await asyncio.wait_for(
                aio_pika.connect(
                    host=self.host,
                    port=self.port,
                    login=self.login,
                    password=self.password,
                    virtualhost=self.vhost,
                    timeout=_CONNECT_TIMEOUT,
                ),
                _CONNECT_TIMEOUT + 1,
            )
        except aexc.InvalidFrameError as exc:
            if "Connection.Close" not in str(exc):
                raise self._error("cannot connect", exc) from None
            # aiormq drops the reply text of a Close answering Connection.Open; it is
            # the vhost (missing, or not permitted to this user) nearly always.
            raise SourceError(
                f"amqp source {self.url}: cannot connect: the broker refused virtual host "
                f"{self.vhost!r} (it does not exist or user {self.login!r} may not use it)",
                workload=self.name,
            ) from None
        except _ERRORS as exc:
            raise self._error("cannot connect", exc) from None
        self._connection = connection
        try:
            channel, queue = await self._declare(connection)
            self._channel = channel
            self._lost = asyncio.get_running_loop().create_future()
            connection.close_callbacks.add(self._on_close)
            channel.close_callbacks.add(self._on_close)
            self._tag = await queue.consume(self._on_message, no_ack=False)
            self._queue = queue
        except _ERRORS as exc:
            await self.close()
            raise self._error(f"cannot consume queue {self.queue_name!r}", exc) from None

    async def get(self) -> _AmqpDelivery:
        if self._closed or self._lost is None:
            raise self._closed_error()
        if self._inbox.empty():
            read = asyncio.ensure_future(self._inbox.get())
            try:
                await asyncio.wait((read, self._lost), return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not read.done():
                    read.cancel()
                    await asyncio.gather(read, return_exceptions=True)
            if not read.done() or read.cancelled():
                if self._closed:
                    raise self._closed_error()
                raise self._error("connection lost", self._lost.result())
            message = read.result()
        else:
            message = self._inbox.get_nowait()
        return self._delivery(message)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for timer in list(self._timers):
            timer.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        self._timers.clear()
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(ConnectionError("closed"))
        connection, self._connection = self._connection, None
        self._channel = self._queue = None
        # Un-acked messages (waiting here or in instances) are requeued by the broker
        # when the channel closes.
        while not self._inbox.empty():
            self._inbox.get_nowait()
        if connection is not None:
            try:
                await asyncio.wait_for(connection.close(), _CONNECT_TIMEOUT)
            except (*_ERRORS, asyncio.CancelledError):
                pass

    # -- internals ------------------------------------------------------------------------

    async def _declare(
        self, connection: AbstractConnection
    ) -> tuple[AbstractChannel, AbstractQueue]:
        """The queue as it is when it exists (its arguments are the operator's), else a new
        durable one; with the channel to consume it on."""
        channel = await connection.channel()
        try:
            await channel.set_qos(prefetch_count=self.max_concurrency)
            return channel, await channel.declare_queue(self.queue_name, passive=True)
        except pexc.ChannelNotFoundEntity:
            pass
        # A failed passive declare closes the channel: declare on a fresh one.
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=self.max_concurrency)
        return channel, await channel.declare_queue(self.queue_name, durable=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if not self._closed:
            self._inbox.put_nowait(message)  # bounded by the prefetch count

    def _on_close(self, _sender: Any, exc: BaseException | None = None) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(exc or ConnectionError("closed by the broker"))

    def _delivery(self, message: AbstractIncomingMessage) -> _AmqpDelivery:
        data, data_b64 = decode_payload(message.body)
        headers = {str(k): _header_text(v) for k, v in (message.headers or {}).items()}
        if message.redelivered:
            headers["amqp-redelivered"] = "true"
        if message.content_type:
            headers["content-type"] = message.content_type
        event_id = message.message_id or _digest(message)
        event = Event(
            id=event_id,
            source=self.url,
            subject=message.routing_key or self.queue_name,
            data=data,
            headers=headers,
            data_b64=data_b64,
        )
        return _AmqpDelivery(self, message, event)

    def _nack_later(self, message: AbstractIncomingMessage, delay: float | None) -> None:
        if self._closed:
            return  # the closed channel requeued it
        wait = _DEFAULT_NAK_DELAY if delay is None else min(max(delay, 0.0), _MAX_NAK_DELAY)

        async def later() -> None:
            # A requeued message goes straight back out: the sleep is the back-off.
            await asyncio.sleep(wait)
            try:
                await message.nack(requeue=True)
            except _ERRORS:
                pass  # channel gone: the broker requeued it already

        task = asyncio.get_running_loop().create_task(later())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)


def _header_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def _digest(message: AbstractIncomingMessage) -> str:
    h = hashlib.sha256()
    for part in (
        message.exchange or "",
        message.routing_key or "",
        message.correlation_id or "",
        str(message.timestamp or ""),
    ):
        h.update(part.encode() + b"\0")
    h.update(message.body)
    return f"sha256:{h.hexdigest()[:32]}"


register_source("amqp", AmqpSource)
