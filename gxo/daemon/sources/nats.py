"""NATS event sources: core NATS subjects and JetStream durable pull consumers.

``nats://[user:pass@]HOST:PORT/SUBJECT[?token=T&queue=Q]``
    A core NATS subscription (``*``/``>`` wildcards allowed). With a ``group`` (or
    ``?queue=``) it joins a queue group, so a fleet shares the events: each message goes
    to one member. Core NATS has no acknowledgements: ``ack``/``nak`` are no-ops and a
    message published while no member listens is gone (at-most-once).

``nats+jetstream://[user:pass@]HOST:PORT/STREAM/SUBJECT?durable=NAME&max_deliver=5&dead_letter=SUBJ&ack_wait=30s``
    A durable pull consumer bound to STREAM and filtered on SUBJECT (wildcards allowed).
    Messages are fetched only inside ``get()`` and at most ``max_concurrency`` at a time,
    so a caller that stops calling ``get()`` stops the reading (back-pressure). A message
    is acked after its instance ended; ``nak`` redelivers it later with a back-off
    (``?backoff=1s``, doubled per delivery, at most 60 s). When its ``max_deliver``-th
    (or a later) delivery fails, it is published to the dead-letter subject (default ``gxo.dlq.<STREAM>``)
    with ``Gxo-Dlq-*`` headers naming where it came from, then terminated. ``Event.id``
    is ``STREAM:SEQUENCE``, the same on every redelivery, so instances can be idempotent.
    ``nak(0)`` hands an event back without counting a failure (a stop releasing what it
    has not run); ``nak()`` or ``nak(delay > 0)`` is a failure. Every delivery counts
    toward ``max_deliver`` (JetStream's own count), including ones handed back.
    Streams are owned by operations and are not created unless ``?create=true``.

Credentials (``user:pass@``, ``token@``, ``?token=``) never appear in ``Event.source``,
logs or errors. nats-py reconnects on its own, but only ``RECONNECT_ATTEMPTS`` times;
after that ``get()`` raises :class:`SourceError` and the reconciler restarts the source.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections import deque
from typing import Any

import nats.errors
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext

from gxo.config.durations import parse_duration
from gxo.daemon.sources._nats_conn import CONNECT_TIMEOUT, NatsClient, NatsTarget, log, reason
from gxo.daemon.sources.base import (
    AtMostOnce,
    Event,
    SourceError,
    decode_payload,
    register_source,
)

__all__ = ["JetStreamSource", "NatsSource"]

# Core NATS cannot push back on a publisher: this bounds what waits in memory for get();
# beyond it nats-py drops messages (slow consumer), which we count and log.
CORE_PENDING_LIMIT = 65536
FETCH_TIMEOUT = 5.0
MAX_BACKOFF = 60.0
_DURABLE_BAD = re.compile(r"[^A-Za-z0-9_-]")


class NatsSource(NatsClient):
    """``nats://HOST:PORT/SUBJECT``: a core NATS (optionally queue-group) subscription."""

    def __init__(self, url: str, *, name: str, max_concurrency: int = 4, group: str | None = None):
        target = NatsTarget(url, allowed={"token", "queue"}, what="nats")
        super().__init__(target, name=name, max_concurrency=max_concurrency)
        self.subject = target.path
        if not self.subject or "/" in self.subject:
            raise ValueError(f"{self.source!r}: expected nats://HOST:PORT/SUBJECT")
        self.queue = target.params.get("queue") or group or ""
        self._sub: Any = None

    async def start(self) -> None:
        await self._connect()
        try:
            self._sub = await self._nc.subscribe(
                self.subject, queue=self.queue, pending_msgs_limit=CORE_PENDING_LIMIT
            )
            await self._nc.flush(timeout=CONNECT_TIMEOUT)  # the server has the subscription
        except Exception as exc:
            await self._close_connection()
            raise self._error(f"cannot subscribe to {self.subject!r}: {reason(exc)}") from None

    async def get(self) -> AtMostOnce:
        if self._sub is None:
            raise self._error(
                "get() before start()" if not self._closed else "the source is closed"
            )
        while True:
            try:
                msg = await self._sub.next_msg(timeout=FETCH_TIMEOUT)
            except nats.errors.TimeoutError:
                if self._nc is None or self._nc.is_closed:
                    raise self._lost(nats.errors.ConnectionClosedError()) from None
                continue
            except nats.errors.Error as exc:  # ConnectionClosedError among others
                raise self._lost(exc) from None
            headers = dict(msg.headers or {})
            data, data_b64 = decode_payload(msg.data)
            # Core NATS has no message id; a publisher's Nats-Msg-Id is the closest thing.
            event_id = headers.get("Nats-Msg-Id") or uuid.uuid4().hex
            event = Event(event_id, self.source, msg.subject, data, headers, data_b64=data_b64)
            return AtMostOnce(event)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._sub = None
        await self._close_connection()


class _JsDelivery:
    __slots__ = ("_msg", "_settled", "_source", "event")

    def __init__(self, source: JetStreamSource, msg: Any, event: Event) -> None:
        self._source = source
        self._msg = msg
        self._settled = False
        self.event = event

    async def ack(self) -> None:
        await self._source._settle(self, "ack")

    async def nak(self, delay: float | None = None) -> None:
        await self._source._settle(self, "nak", delay)


class JetStreamSource(NatsClient):
    """``nats+jetstream://HOST:PORT/STREAM/SUBJECT?durable=NAME``: a durable pull consumer."""

    PARAMS = {"token", "durable", "max_deliver", "dead_letter", "ack_wait", "backoff", "create"}

    def __init__(self, url: str, *, name: str, max_concurrency: int = 4, group: str | None = None):
        target = NatsTarget(url, allowed=self.PARAMS, what="nats+jetstream")
        super().__init__(target, name=name, max_concurrency=max_concurrency)
        stream, _, subject = target.path.partition("/")
        if not stream or not subject or "/" in subject:
            raise ValueError(f"{self.source!r}: expected nats+jetstream://HOST:PORT/STREAM/SUBJECT")
        self.stream, self.subject = stream, subject
        params = target.params
        durable = params.get("durable") or group or name
        # Durable names may not hold '.', '*', '>' or spaces; workload names may.
        self.durable = _DURABLE_BAD.sub("_", durable)
        self.max_deliver = int(params.get("max_deliver", "5"))
        if self.max_deliver < 1:
            raise ValueError(f"max_deliver must be at least 1, got {self.max_deliver}")
        self.dead_letter = params.get("dead_letter") or f"gxo.dlq.{stream}"
        self.ack_wait = parse_duration(params.get("ack_wait", "30s"))
        if self.ack_wait < 1:
            raise ValueError(f"ack_wait must be at least 1s, got {params['ack_wait']!r}")
        self.backoff = parse_duration(params.get("backoff", "1s"))
        create = params.get("create", "false").lower()
        if create not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"create must be true or false, got {params['create']!r}")
        self.create = create in ("true", "1", "yes")
        self._js: Any = None
        self._psub: Any = None
        self._buffer: deque[Any] = deque()  # fetched, not yet handed out (<= max_concurrency)
        self._outstanding: dict[int, _JsDelivery] = {}  # handed out, not yet settled
        self._heartbeat: asyncio.Task[None] | None = None
        self._get_lock = asyncio.Lock()
        self.dead_lettered = 0

    async def start(self) -> None:
        await self._connect()
        try:
            await self._bind()
        except BaseException:
            await self._close_connection()
            raise
        self._heartbeat = asyncio.create_task(self._keep_alive(), name=f"nats-wpi:{self.name}")

    async def _bind(self) -> None:
        self._js = self._nc.jetstream()
        try:
            await self._js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            if not self.create:
                raise self._error(
                    f"stream {self.stream!r} does not exist on {self._where()} "
                    "(create it, or add ?create=true to let GXO create it)"
                ) from None
            try:
                await self._js.add_stream(name=self.stream, subjects=[self.subject])
            except Exception as exc:
                raise self._error(f"cannot create stream {self.stream!r}: {reason(exc)}") from None
        except Exception as exc:
            raise self._error(f"{self._where()}: JetStream unavailable: {reason(exc)}") from None
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            # Unlimited on the server: the dead-letter step is ours (the server would
            # only stop delivering and keep the message stuck and un-acked).
            max_deliver=-1,
            filter_subject=self.subject,
        )
        try:
            self._psub = await self._js.pull_subscribe(
                self.subject, durable=self.durable, stream=self.stream, config=config
            )
            info = await self._js.consumer_info(self.stream, self.durable)
        except Exception as exc:
            raise self._error(
                f"cannot bind durable consumer {self.durable!r} on stream {self.stream!r} "
                f"for {self.subject!r}: {reason(exc)}"
            ) from None
        existing = info.config.filter_subject
        if existing != self.subject or info.config.ack_policy != AckPolicy.EXPLICIT:
            # pull_subscribe binds to an existing durable as it is; reading another
            # filter than the URL says would process the wrong events silently.
            raise self._error(
                f"durable consumer {self.durable!r} on stream {self.stream!r} already exists "
                f"with filter {existing!r} (want {self.subject!r}, explicit ack): "
                "delete it or choose another ?durable="
            )

    async def get(self) -> _JsDelivery:
        # One fetch at a time even if several tasks call get(): the read-ahead bound holds.
        async with self._get_lock:
            return await self._next()

    async def _next(self) -> _JsDelivery:
        while True:
            if self._closed or self._psub is None:
                raise self._error(
                    "the source is closed" if self._closed else "get() before start()"
                )
            if not self._buffer:
                await self._fetch()
                continue
            msg = self._buffer.popleft()
            md = msg.metadata
            headers = dict(msg.headers or {})
            data, data_b64 = decode_payload(msg.data)
            event = Event(
                f"{self.stream}:{md.sequence.stream}",
                self.source,
                msg.subject,
                data,
                headers,
                data_b64=data_b64,
            )
            delivery = _JsDelivery(self, msg, event)
            self._outstanding[id(delivery)] = delivery
            return delivery

    async def _fetch(self) -> None:
        try:
            msgs = await self._psub.fetch(batch=self.max_concurrency, timeout=FETCH_TIMEOUT)
        except nats.errors.TimeoutError:
            if self._nc is None or self._nc.is_closed:
                raise self._lost(nats.errors.ConnectionClosedError()) from None
            return
        except Exception as exc:
            raise self._lost(exc) from None
        if self._closed:
            # close() ran while this fetch was in flight: hand the messages straight back.
            for msg in msgs:
                with contextlib.suppress(Exception):
                    await msg.nak()
            return
        self._buffer.extend(msgs)

    async def _settle(self, delivery: _JsDelivery, how: str, delay: float | None = None) -> None:
        if delivery._settled:
            return
        delivery._settled = True
        self._outstanding.pop(id(delivery), None)
        if self._closed:
            return  # close() already nak'ed it: it will be redelivered
        msg = delivery._msg
        try:
            if how == "ack":
                await msg.ack()
                return
            if delay == 0:
                # nak(0) hands back an event that never ran (the reconciler's stop): not a
                # failure, so it is never dead-lettered for it.
                await msg.nak()
                return
            delivered = msg.metadata.num_delivered
            if delivered >= self.max_deliver:
                await self._dead_letter(msg, f"failed {delivered} time(s)")
                return
            if delay is None:
                delay = min(self.backoff * 2 ** (delivered - 1), MAX_BACKOFF)
            await msg.nak(delay=delay)
        except SourceError:
            raise
        except Exception as exc:
            # The broker redelivers after ack_wait anyway: the event is not lost.
            raise self._error(f"cannot {how} {delivery.event.id}: {reason(exc)}") from None

    async def _dead_letter(self, msg: Any, reason: str) -> None:
        md = msg.metadata
        headers = {k: v for k, v in (msg.headers or {}).items() if not k.startswith("Nats-")}
        headers.update(
            {
                "Gxo-Dlq-Reason": reason,
                "Gxo-Dlq-Subject": msg.subject,
                "Gxo-Dlq-Stream": self.stream,
                "Gxo-Dlq-Stream-Seq": str(md.sequence.stream),
                "Gxo-Dlq-Consumer": self.durable,
                "Gxo-Dlq-Deliveries": str(md.num_delivered),
            }
        )
        event_id = f"{self.stream}:{md.sequence.stream}"
        try:
            try:
                # Ask first: a JetStream publish to a subject no stream stores would wait
                # for an answer that a plain subscriber of that subject never sends.
                await self._js.find_stream_name_by_subject(self.dead_letter)
                stored = True
            except nats.js.errors.NotFoundError:
                stored = False
            if stored:
                await self._js.publish(self.dead_letter, msg.data, headers=headers, timeout=5)
            else:
                # No stream stores the dead-letter subject: live subscribers still see it.
                await self._nc.publish(self.dead_letter, msg.data, headers=headers)
                await self._nc.flush(timeout=5)
                log.warning(
                    "%s: no JetStream stream stores %r: dead letter %s was only published",
                    self.source,
                    self.dead_letter,
                    event_id,
                )
        except Exception as exc:
            # Terminating a message that was not dead-lettered would lose it: retry later.
            log.warning("%s: cannot dead-letter %s: %s", self.source, event_id, reason(exc))
            with contextlib.suppress(Exception):
                await msg.nak(delay=MAX_BACKOFF)
            return
        await msg.term()
        self.dead_lettered += 1
        log.warning("%s: %s %s, sent to %r", self.source, event_id, reason, self.dead_letter)

    async def _keep_alive(self) -> None:
        """Tell the server that fetched messages are still being worked on.

        Without it an instance running longer than ack_wait (or a message waiting in the
        caller's queue) would be redelivered to another member while still in progress.
        """
        interval = max(self.ack_wait / 3, 0.3)
        while True:
            await asyncio.sleep(interval)
            msgs = list(self._buffer) + [d._msg for d in list(self._outstanding.values())]
            for msg in msgs:
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    def _client_queue(self) -> list[Any]:
        """Messages nats-py received for a fetch that was cancelled (its internals: no
        public API hands them out without a new fetch)."""
        queue = getattr(getattr(self._psub, "_sub", None), "_pending_queue", None)
        msgs: list[Any] = []
        while queue is not None and not queue.empty():
            msg = queue.get_nowait()
            if msg.reply and JetStreamContext.is_status_msg(msg) is None:
                msgs.append(msg)
        return msgs

    async def close(self) -> None:
        """Stop; messages fetched but not settled are nak'ed so they come back at once.

        An ack after close() is a no-op: the connection is gone, so such a message is
        redelivered (at-least-once; instances see the same event id).
        """
        if self._closed:
            return
        self._closed = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        pending = list(self._buffer) + [d._msg for d in self._outstanding.values()]
        self._buffer.clear()
        for delivery in self._outstanding.values():
            delivery._settled = True
        self._outstanding.clear()
        if self._nc is not None and not self._nc.is_closed and self._psub is not None:
            # A get() cancelled mid-fetch leaves its pull request open on the server, and
            # what the server sent for it in nats-py's queue (held until ack_wait if left
            # there): take those back too, after dropping the interest, so that nothing
            # more is delivered into that orphaned request.
            pending += self._client_queue()
            with contextlib.suppress(Exception):
                await self._psub.unsubscribe()
            for msg in pending:
                with contextlib.suppress(Exception):
                    await msg.nak()
        self._psub = None
        await self._close_connection()


register_source("nats", NatsSource)
register_source("nats+jetstream", JetStreamSource)
