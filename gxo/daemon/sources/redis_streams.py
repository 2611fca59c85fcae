"""``redis://HOST:PORT/DB?stream=NAME&group=G&claim_after=60s`` — Redis Streams consumer groups.

Every source is one member of the consumer group ``group`` (created with MKSTREAM when
missing, reading new entries, or the whole stream with ``start=all``); its consumer name
is ``hostname-pid-random``, so members of a fleet share the stream's entries.

- ``get()`` reads with XREADGROUP ``COUNT <= max_concurrency`` only when its small buffer
  is empty, so nothing is read ahead beyond ``max_concurrency`` entries while the
  reconciler is not asking (back-pressure leaves the rest on the server).
- ``ack()`` is XACK. ``nak()`` leaves the entry pending: after ``claim_after`` of idleness
  it is taken over by XAUTOCLAIM — by this member or any other one of the group. The same
  holds for the entries of a member that died or closed without acking: at-least-once,
  and a redelivered event keeps its id (the stream entry id).
- A heartbeat (every claim_after / 3, XCLAIM JUSTID of the entries this member still
  owns) keeps an instance that runs longer than claim_after from having its entry
  claimed and processed a second time meanwhile. ``claim_after`` is thus the time a dead
  member's entries wait, not a limit on how long an instance may run.
- ``data``: when the entry has a single field ``data`` or ``payload``, that field decoded
  like any payload (JSON, else text, else ``data_b64``); otherwise the field dict as text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from gxo.config.durations import parse_duration
from gxo.daemon.logsetup import add_secret, redact_url
from gxo.daemon.sources._util import SettleOnce, error_text, member_id, query_params, scrub
from gxo.daemon.sources.base import Event, SourceError, decode_payload, register_source

__all__ = ["RedisStreamSource"]

log = logging.getLogger("gxo.daemon.sources.redis")

_PARAMS = {"stream", "group", "claim_after", "block", "start"}
_SINGLE_FIELDS = (b"data", b"payload")
_CONNECT_TIMEOUT = 5.0
# A group member with nothing pending and idle this long is dropped from the group at
# start: every daemon start adds a member (hostname-pid-random), and XINFO CONSUMERS
# should list the fleet, not its history. A live member is only re-added by its next read.
_FORGET_IDLE = 3600.0


class _RedisDelivery(SettleOnce):
    __slots__ = ("_entry_id", "_source")

    def __init__(self, source: RedisStreamSource, entry_id: bytes, event: Event) -> None:
        super().__init__(event)
        self._source = source
        self._entry_id = entry_id

    async def _ack(self) -> None:
        await self._source._ack(self._entry_id)

    async def _nak(self, delay: float | None) -> None:
        # Redis has no per-entry redelivery delay: the entry stays pending and is
        # claimed again once idle for claim_after (the delay is that, not ``delay``).
        self._source._held.discard(self._entry_id)


class RedisStreamSource:
    def __init__(
        self, url: str, *, name: str, max_concurrency: int = 4, group: str | None = None
    ) -> None:
        parts = urlsplit(url)
        self.url = redact_url(url)
        self.name = name
        params = query_params(parts.query, _PARAMS, what="redis")
        self.stream = params.get("stream", "")
        if not self.stream:
            raise ValueError("redis source needs ?stream=NAME")
        self.group = params.get("group") or group or name
        self.claim_after = parse_duration(params.get("claim_after", "60s"))
        if self.claim_after <= 0:
            raise ValueError("redis claim_after must be > 0")
        self.block = parse_duration(params.get("block", "1s"))
        start = params.get("start", "new")
        if start not in ("new", "all"):
            raise ValueError(f"redis start must be 'new' or 'all', not {start!r}")
        self.start_id = "$" if start == "new" else "0"
        db_text = parts.path.strip("/") or "0"
        if not db_text.isdigit():
            raise ValueError(f"redis database must be a number, not {db_text!r}")
        self.db = int(db_text)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        if self.password:
            add_secret(self.password)
        self.max_concurrency = max(1, int(max_concurrency))
        self.consumer = member_id()
        self._client: aioredis.Redis | None = None
        self._buffer: deque[_RedisDelivery] = deque()
        self._lock = asyncio.Lock()
        self._closed = False
        self._claim_cursor: bytes | str = "0-0"
        self._next_claim = 0.0
        self._inflight: asyncio.Future[None] | None = None
        # Entries read by this member and not settled (buffered or being processed):
        # kept from idling into claim_after by the heartbeat.
        self._held: set[bytes] = set()
        self._heartbeat: asyncio.Task[None] | None = None

    # -- errors ---------------------------------------------------------------------------

    def _error(self, what: str, exc: BaseException) -> SourceError:
        reason = scrub(error_text(exc), self.password)
        return SourceError(f"redis source {self.url}: {what}: {reason}", workload=self.name)

    # -- EventSource ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._closed:
            raise SourceError(f"redis source {self.url}: closed", workload=self.name)
        client = aioredis.Redis(
            host=self.host,
            port=self.port,
            db=self.db,
            username=self.username,
            password=self.password,
            socket_connect_timeout=_CONNECT_TIMEOUT,
            decode_responses=False,
            client_name=self.consumer,  # CLIENT LIST shows which member a connection is
            # One quick retry rides over a dropped connection; redis-py's default (three
            # with up to 10 s back-off) would hide an unreachable server for seconds.
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
        )
        try:
            await client.ping()
            await client.xgroup_create(self.stream, self.group, id=self.start_id, mkstream=True)
        except rexc.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # the group exists: join it
                await client.aclose()
                raise self._error("cannot create the consumer group", exc) from None
        except (rexc.RedisError, OSError) as exc:
            await client.aclose()
            raise self._error("cannot connect", exc) from None
        self._client = client
        await self._forget_departed(client)
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def get(self) -> _RedisDelivery:
        async with self._lock:
            while not self._buffer:
                client = self._require_client()
                # The blocking read runs as a task close() can cancel: closing the
                # client does not wake a pending XREADGROUP BLOCK.
                self._inflight = asyncio.ensure_future(self._fill(client))
                try:
                    await self._inflight
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if self._closed and task is not None and not task.cancelling():
                        raise SourceError(
                            f"redis source {self.url}: closed", workload=self.name
                        ) from None
                    raise
                except (rexc.RedisError, OSError) as exc:
                    if self._closed:
                        raise SourceError(
                            f"redis source {self.url}: closed", workload=self.name
                        ) from None
                    raise self._error("cannot read the stream", exc) from None
                finally:
                    self._inflight = None
            return self._buffer.popleft()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Buffered but never handed out: they stay pending and are claimed by another
        # member (or this group's next source) after claim_after.
        self._buffer.clear()
        self._held.clear()
        for task in (self._heartbeat, self._inflight):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._heartbeat = None
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except (rexc.RedisError, OSError):
                pass

    # -- internals ------------------------------------------------------------------------

    def _require_client(self) -> aioredis.Redis:
        if self._closed or self._client is None:
            state = "closed" if self._closed else "not started"
            raise SourceError(f"redis source {self.url}: {state}", workload=self.name)
        return self._client

    async def _fill(self, client: aioredis.Redis) -> None:
        if time.monotonic() >= self._next_claim:
            await self._claim(client)
        if not self._buffer:
            await self._read(client)

    async def _claim(self, client: aioredis.Redis) -> None:
        """Take over entries pending longer than claim_after (a nak, a dead member)."""
        reply = await client.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            int(self.claim_after * 1000),
            start_id=self._claim_cursor,
            count=self.max_concurrency,
        )
        cursor, entries = reply[0], reply[1]
        self._claim_cursor = cursor
        if cursor in (b"0-0", "0-0"):
            # A full pass over the pending list: the next one is due in a fraction of
            # claim_after (a nak'd entry becomes claimable exactly claim_after later).
            self._next_claim = time.monotonic() + min(self.claim_after / 4, 5.0)
        for entry_id, fields in entries:
            if entry_id in self._held:
                continue  # ours and in progress (the heartbeat was late): not a redelivery
            if fields is None:  # deleted from the stream while pending (Redis 6.2)
                await client.xack(self.stream, self.group, entry_id)
                continue
            self._buffer.append(self._delivery(entry_id, fields))
        # Redis >= 7 lists entries trimmed away while pending: nothing left to process.
        deleted = reply[2] if len(reply) > 2 else []
        if deleted:
            await client.xack(self.stream, self.group, *deleted)

    async def _read(self, client: aioredis.Redis) -> None:
        block_ms = max(1, int(min(self.block, self.claim_after) * 1000))
        reply = await client.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=self.max_concurrency,
            block=block_ms,
        )
        for _stream, entries in _stream_entries(reply):
            for entry_id, fields in entries:
                self._buffer.append(self._delivery(entry_id, fields or {}))

    async def _forget_departed(self, client: aioredis.Redis) -> None:
        try:
            for member in await client.xinfo_consumers(self.stream, self.group):
                if member["pending"] == 0 and member["idle"] >= _FORGET_IDLE * 1000:
                    await client.xgroup_delconsumer(self.stream, self.group, member["name"])
        except (rexc.RedisError, OSError) as exc:
            log.debug("redis source %s: cannot prune group members: %s", self.url, exc)

    async def _beat(self) -> None:
        """Reset the idle time of the entries this member holds, every claim_after / 3.

        Without it an instance running longer than claim_after would have its entry
        claimed by another member (or this one) and processed twice at the same time.
        Only entries still owned by this consumer are touched, so one already claimed
        by another member (after a stall here) is not taken back.
        """
        interval = max(self.claim_after / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            client = self._client
            if client is None or not self._held:
                continue
            try:
                owned = await client.xpending_range(
                    self.stream,
                    self.group,
                    min="-",
                    max="+",
                    count=len(self._held) + 1000,
                    consumername=self.consumer,
                )
                ids = [p["message_id"] for p in owned if p["message_id"] in self._held]
                if ids:
                    await client.xclaim(self.stream, self.group, self.consumer, 0, ids, justid=True)
            except (rexc.RedisError, OSError) as exc:
                # get() reports a lost server; entries not refreshed may be redelivered.
                log.debug("redis source %s: heartbeat failed: %s", self.url, exc)

    def _delivery(self, entry_id: bytes, fields: dict[bytes, bytes]) -> _RedisDelivery:
        data, data_b64 = _entry_data(fields)
        event = Event(
            id=_text(entry_id),
            source=self.url,
            subject=self.stream,
            data=data,
            headers={"redis-group": self.group, "redis-consumer": self.consumer},
            data_b64=data_b64,
        )
        self._held.add(entry_id)
        return _RedisDelivery(self, entry_id, event)

    async def _ack(self, entry_id: bytes) -> None:
        client = self._require_client()
        try:
            await client.xack(self.stream, self.group, entry_id)
        except (rexc.RedisError, OSError) as exc:
            raise self._error(f"cannot ack entry {_text(entry_id)}", exc) from None
        finally:
            self._held.discard(entry_id)


def _stream_entries(reply: Any) -> list[tuple[Any, list[Any]]]:
    """XREADGROUP's reply as ``[(stream, entries)]`` (RESP2 list or RESP3 dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [(k, v[0] if v and isinstance(v[0], list) else v) for k, v in reply.items()]
    return [(item[0], item[1]) for item in reply]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entry_data(fields: dict[bytes, bytes]) -> tuple[Any, str | None]:
    if len(fields) == 1:
        key, value = next(iter(fields.items()))
        if key in _SINGLE_FIELDS:
            return decode_payload(value)
    out: dict[str, Any] = {}
    for key, value in fields.items():
        # A field dict is text by nature; an odd non-UTF-8 value keeps its bytes visible
        # as \x escapes rather than failing the whole event.
        out[key.decode("utf-8", "backslashreplace")] = value.decode("utf-8", "backslashreplace")
    return out, None


register_source("redis", RedisStreamSource)
