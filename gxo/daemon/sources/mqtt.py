"""``mqtt://[USER:PASS@]HOST:PORT/TOPIC?qos=1`` — an MQTT v5 subscription (aiomqtt / paho 2).

What holds, and why:

- Persistent session: MQTT v5 with ``clean_start`` false and a session expiry
  (``?session_expiry=``, default 168h), under a stable client id derived from the group,
  the workload name and the host name (``?client_id=`` overrides it). Messages published
  while the daemon is down are queued by the broker for the session (up to the broker's
  own limit: Mosquitto keeps ``max_queued_messages``, 1000 by default, per client).
- Manual ack: paho's ``manual_ack`` is on, so the PUBACK (QoS 1) / PUBCOMP (QoS 2) is
  sent only by ``ack()``, after the instance ended. A message whose instance had not
  ended when the daemon died or closed is redelivered by the broker when the session
  resumes: at-least-once, as long as the session has not expired.
- Back-pressure: the CONNECT packet sets MQTT v5 *Receive Maximum* = ``max_concurrency``,
  and, since a broker may overrun it (Mosquitto 2.0.11 does), the source also stops
  reading its socket while ``max_concurrency`` received messages wait for ``get()``: TCP
  flow control then keeps the rest on the broker. Hence no MQTT keepalive (a paused
  reader would miss PINGRESP); TCP keepalive detects a dead broker instead.
- ``nak(delay)``: MQTT has no negative ack and a broker resends only on reconnect, so a
  nak'd message keeps its PUBACK withheld and is handed out again by this source after
  the (bounded) delay; if the daemon dies meanwhile, the broker redelivers it.
- Fleet: the subscription is the shared subscription ``$share/GROUP/TOPIC``, so the
  members of a group (each with its own client id) split the messages.
- ``Event.id``: a ``message-id`` (or ``id``) MQTT v5 user property when the publisher sets
  one; else ``TOPIC:MID:HASH`` where MID is the packet id, which the broker keeps when
  it resends a message in a resumed session, and HASH a digest of the payload (packet
  ids are reused, so the digest keeps two different messages apart).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gxo.config.durations import parse_duration
from gxo.daemon.logsetup import add_secret, redact_url
from gxo.daemon.sources._util import SettleOnce, error_text, query_params, scrub
from gxo.daemon.sources.base import Event, SourceError, decode_payload, register_source

__all__ = ["MqttSource"]

_PARAMS = {"qos", "group", "client_id", "session_expiry", "shared"}
_CONNECT_TIMEOUT = 5.0
_MAX_NAK_DELAY = 30.0
_DEFAULT_NAK_DELAY = 1.0
_ID_PROPERTIES = ("message-id", "message_id", "id")
_TCP_KEEPALIVE: list[tuple[int, int, int]] = [
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    *(
        (socket.IPPROTO_TCP, getattr(socket, opt), value)
        for opt, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3))
        if hasattr(socket, opt)
    ),
]


class _MqttDelivery(SettleOnce):
    __slots__ = ("_message", "_source")

    def __init__(self, source: MqttSource, message: aiomqtt.Message, event: Event) -> None:
        super().__init__(event)
        self._source = source
        self._message = message

    async def _ack(self) -> None:
        self._source._ack(self._message)

    async def _nak(self, delay: float | None) -> None:
        self._source._redeliver_later(self, delay)

    def _again(self) -> _MqttDelivery:
        return _MqttDelivery(self._source, self._message, self.event)


class MqttSource:
    def __init__(
        self, url: str, *, name: str, max_concurrency: int = 4, group: str | None = None
    ) -> None:
        parts = urlsplit(url)
        self.url = redact_url(url)
        self.name = name
        params = query_params(parts.query, _PARAMS, what="mqtt")
        self.topic = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
        if not self.topic:
            raise ValueError("mqtt source needs a topic: mqtt://HOST:PORT/TOPIC")
        qos_text = params.get("qos", "1")
        if qos_text not in ("1", "2"):
            # QoS 0 is fire-and-forget: no ack, so neither at-least-once nor back-pressure.
            raise ValueError(f"mqtt qos must be 1 or 2, not {qos_text!r}")
        self.qos = int(qos_text)
        self.group = params.get("group") or group or name
        shared = params.get("shared", "true").lower()
        if shared not in ("true", "false"):
            raise ValueError(f"mqtt shared must be true or false, not {shared!r}")
        self.shared = shared == "true"
        if self.shared and not re.fullmatch(r"[^/+#]+", self.group):
            raise ValueError(f"mqtt group {self.group!r} must not contain '/', '+' or '#'")
        self.session_expiry = int(parse_duration(params.get("session_expiry", "168h")))
        self.client_id = params.get("client_id") or _client_id(self.group, name)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 1883
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        if self.password:
            add_secret(self.password)
        self.max_concurrency = max(1, int(max_concurrency))
        self._client: aiomqtt.Client | None = None
        self._again: deque[_MqttDelivery] = deque()
        self._again_ready = asyncio.Event()
        self._timers: set[asyncio.Task[None]] = set()
        self._read: asyncio.Future[aiomqtt.Message] | None = None
        self._fd: int | None = None
        self._get_lock = asyncio.Lock()
        self._on_readable: Any = None
        self._reading = False
        self._closed = False

    @property
    def subscription(self) -> str:
        return f"$share/{self.group}/{self.topic}" if self.shared else self.topic

    def _error(self, what: str, exc: BaseException) -> SourceError:
        reason = scrub(error_text(exc), self.password)
        return SourceError(f"mqtt source {self.url}: {what}: {reason}", workload=self.name)

    def _closed_error(self) -> SourceError:
        state = "closed" if self._closed else "not started"
        return SourceError(f"mqtt source {self.url}: {state}", workload=self.name)

    # -- EventSource ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._closed:
            raise self._closed_error()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry
        props.ReceiveMaximum = self.max_concurrency
        client = aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            timeout=_CONNECT_TIMEOUT,
            # No MQTT keepalive: reading pauses while the reconciler is busy (see
            # _pause_if_full), and paho would drop a connection it has not read from for
            # 2 x keepalive. Dead peers are found by TCP keepalive instead.
            keepalive=0,
            socket_options=_TCP_KEEPALIVE,
        )
        # aiomqtt does not expose paho's manual ack, so it is set on its paho client
        # (``_client``). Without it paho PUBACKs on receipt and a crash loses messages.
        client._client.manual_ack_set(True)
        try:
            await asyncio.wait_for(client.__aenter__(), _CONNECT_TIMEOUT + 1)
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            raise self._error("cannot connect", exc) from None
        try:
            await client.subscribe(self.subscription, qos=self.qos, timeout=_CONNECT_TIMEOUT)
        except (aiomqtt.MqttError, OSError) as exc:
            await _disconnect(client)
            raise self._error(f"cannot subscribe to {self.subscription!r}", exc) from None
        self._client = client
        self._take_over_reader(client)

    async def get(self) -> _MqttDelivery:
        # One reader at a time: two get() calls awaiting the shared pending read would
        # both return its message.
        async with self._get_lock:
            return await self._get()

    async def _get(self) -> _MqttDelivery:
        client = self._client
        if client is None or self._closed:
            raise self._closed_error()
        while not self._again:
            # One read stays pending across get() calls (never cancelled while open): a
            # cancelled read could drop a message already taken off aiomqtt's queue.
            if self._read is None:
                self._read = asyncio.ensure_future(anext(client.messages))
            again = asyncio.ensure_future(self._again_ready.wait())
            try:
                await asyncio.wait((again, self._read), return_when=asyncio.FIRST_COMPLETED)
            finally:
                again.cancel()
                await asyncio.gather(again, return_exceptions=True)
            read = self._read
            if read is None or self._closed:
                raise self._closed_error()
            if read.done():
                self._read = None
                if read.cancelled():
                    raise self._closed_error()
                exc = read.exception()
                if exc is not None:
                    raise self._error("connection lost", exc)
                self._resume_if_room()
                return self._delivery(read.result())
        delivery = self._again.popleft()
        if not self._again:
            self._again_ready.clear()
        return delivery

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for timer in list(self._timers):
            timer.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        self._timers.clear()
        self._again.clear()
        read, self._read = self._read, None
        if read is not None:
            # An un-acked message it may hold is redelivered by the broker on reconnect.
            read.cancel()
            await asyncio.gather(read, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            # Un-acked messages stay in the broker's session and come back on reconnect.
            await _disconnect(client)

    # -- internals ------------------------------------------------------------------------

    def _take_over_reader(self, client: aiomqtt.Client) -> None:
        """Replace aiomqtt's socket reader by one that can pause.

        MQTT v5 Receive Maximum alone does not bound what arrives: Mosquitto 2.0.11 sends
        two new messages per PUBACK once its quota is used (measured), so un-acked
        messages pile up in memory. Not reading the socket while ``max_concurrency``
        messages wait un-handed makes TCP flow control hold the rest on the broker.
        """
        paho = client._client
        sock = paho.socket()
        if sock is None:
            return
        self._fd = sock.fileno()
        loop = asyncio.get_running_loop()

        def on_readable() -> None:
            try:
                paho.loop_read()
            except Exception as exc:
                if not client._disconnected.done():
                    client._disconnected.set_exception(exc)
                return
            self._pause_if_full()

        self._on_readable = on_readable
        loop.remove_reader(self._fd)
        loop.add_reader(self._fd, on_readable)
        self._reading = True

    def _pause_if_full(self) -> None:
        client = self._client
        if client is None or self._fd is None or not self._reading:
            return
        if len(client.messages) >= self.max_concurrency:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._reading = False

    def _resume_if_room(self) -> None:
        client = self._client
        if client is None or self._fd is None or self._reading or self._on_readable is None:
            return
        if len(client.messages) >= self.max_concurrency:
            return
        sock = client._client.socket()
        if sock is None or sock.fileno() != self._fd:
            # paho closed the socket while reads were paused (a failed PUBACK write):
            # never watch a stale descriptor; the next read reports the lost connection.
            self._fd = None
            if not client._disconnected.done():
                client._disconnected.set_exception(ConnectionError("connection closed"))
            return
        asyncio.get_running_loop().add_reader(self._fd, self._on_readable)
        self._reading = True

    def _delivery(self, message: aiomqtt.Message) -> _MqttDelivery:
        payload = message.payload
        if isinstance(payload, str):
            raw = payload.encode()
        elif isinstance(payload, bytes | bytearray):
            raw = bytes(payload)
        elif payload is None:
            raw = b""
        else:
            raw = str(payload).encode()
        data, data_b64 = decode_payload(raw)
        headers = _user_properties(message)
        topic = message.topic.value
        headers["mqtt-qos"] = str(message.qos)
        if message.retain:
            headers["mqtt-retain"] = "true"
        event_id = next((headers[k] for k in _ID_PROPERTIES if headers.get(k)), None)
        if event_id is None:
            digest = hashlib.sha256(topic.encode() + b"\0" + raw).hexdigest()[:16]
            event_id = f"{topic}:{message.mid}:{digest}"
        event = Event(
            id=event_id,
            source=self.url,
            subject=topic,
            data=data,
            headers=headers,
            data_b64=data_b64,
        )
        return _MqttDelivery(self, message, event)

    def _ack(self, message: aiomqtt.Message) -> None:
        client = self._client
        if client is None:
            # Closed before the instance ended: the broker redelivers on reconnect.
            raise self._closed_error()
        client._client.ack(message.mid, message.qos)

    def _redeliver_later(self, delivery: _MqttDelivery, delay: float | None) -> None:
        if self._closed:
            return
        wait = _DEFAULT_NAK_DELAY if delay is None else min(max(delay, 0.0), _MAX_NAK_DELAY)

        async def later() -> None:
            await asyncio.sleep(wait)
            self._again.append(delivery._again())
            self._again_ready.set()

        task = asyncio.get_running_loop().create_task(later())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)


async def _disconnect(client: aiomqtt.Client) -> None:
    try:
        await asyncio.wait_for(client.__aexit__(None, None, None), _CONNECT_TIMEOUT)
    except (aiomqtt.MqttError, OSError, TimeoutError):
        pass


def _user_properties(message: aiomqtt.Message) -> dict[str, str]:
    props: Any = message.properties
    pairs = getattr(props, "UserProperty", None) or []
    return {str(k): str(v) for k, v in pairs}


def _client_id(group: str, name: str) -> str:
    """Stable across restarts (the persistent session hangs on it), distinct per host
    (two members with one id would keep taking the session from each other)."""
    host = socket.gethostname()
    digest = hashlib.sha256(f"{group}\0{name}\0{host}".encode()).hexdigest()[:10]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{group}-{name}")[:40]
    return f"gxo-{slug}-{digest}"


register_source("mqtt", MqttSource)
