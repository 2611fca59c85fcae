"""``messaging:consume``: a bounded consume from a broker into a record stream."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import Field, field_validator

from gxo.config.durations import Duration
from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, ModuleParams, register
from gxo.modules.integration._messaging import (
    CONSUME_SCHEMES,
    MessagingError,
    open_consumer,
    prepare_jetstream,
    scheme_of,
    shown,
    url_secrets,
)

SUMMARY_MESSAGES = 1000


@register("messaging:consume", layer="integration")
class MessagingConsume(Module):
    """Read at most ``max_messages`` messages, for at most ``max_wait``, into a record stream.

    The URLs and their semantics are the daemon's event sources' (docs/event-sources.md):
    ``nats://HOST:PORT/SUBJECT`` (core NATS: only what is published while it listens),
    ``nats+jetstream://HOST:PORT/STREAM/SUBJECT?durable=NAME``, ``mqtt://HOST:PORT/TOPIC``
    (a persistent session: after a first run, messages published meanwhile wait for the
    next), ``redis://HOST:PORT/DB?stream=NAME&start=all``, ``amqp://USER:PASS@HOST:PORT/VHOST?queue=Q``
    and ``kafka://HOST:PORT/TOPIC?group=G&start=all``. The consumer group / durable name
    defaults to the workload's name, so consecutive runs continue where the last stopped.

    Each record is the decoded message: a JSON object as it is; other JSON, text or bytes
    as ``{data: ...}`` (``{data_b64: ...}`` for bytes). With ``envelope: true`` each
    record is the whole event: ``id``, ``subject``, ``data``, ``headers``,
    ``received_at``, ``source``.

    Messages are acknowledged only after the downstream pipeline has drained the stream
    (at-least-once): when a consumer downstream stops early or fails, or this run is
    interrupted, nothing is acknowledged and the broker delivers them again (core NATS
    cannot). Without a downstream consumer the records are in the summary (``messages``,
    the first 1000). Not run under ``--check``: consuming takes messages off the broker.

    Example:
        - name: orders
          process:
            module: messaging:consume
            params:
              url: "redis://127.0.0.1:6379/0?stream=orders&start=all"
              max_messages: 500
              max_wait: 5s
        - name: totals
          stream_inputs: [orders]
          process:
            module: data:map
            params: { fields: { total: "{{ record.qty * record.price }}" } }
    """

    class Params(ModuleParams):
        url: str = Field(..., min_length=3, description="Broker URL (see the module doc)")
        max_messages: int = Field(100, ge=1, le=65535, description="Stop after this many messages")
        max_wait: Duration = Field(
            10.0, description="Stop after this long (e.g. 5s), even with fewer messages"
        )
        idle: Duration | None = Field(
            None,
            description="Stop once no message came for this long (after the first one)",
        )
        envelope: bool = Field(
            False, description="Emit the whole event (id, subject, data, headers ...)"
        )

        @field_validator("url")
        @classmethod
        def _known_scheme(cls, url: str) -> str:
            scheme = url.split("://", 1)[0].lower() if "://" in url else ""
            if scheme not in CONSUME_SCHEMES:
                raise ValueError(
                    f"unknown broker URL scheme {scheme!r} (known: {', '.join(CONSUME_SCHEMES)})"
                )
            return url

    produces = True
    summary = {
        "url": "the broker URL (credentials redacted)",
        "received": "number of messages received (and emitted)",
        "acked": "number of messages acknowledged after the stream drained",
        "redeliver": "number left un-acknowledged (a consumer downstream stopped early)",
        "messages": "the records, when no workload consumes the stream (at most 1000)",
    }
    check_hint = "consuming takes messages off the broker"

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        from gxo.daemon.sources.base import SourceError

        for secret in url_secrets(params.url):
            ctx.run.secrets.add(secret)
        where = shown(params.url)
        try:
            source = open_consumer(
                params.url, name=ctx.workload, max_concurrency=params.max_messages
            )
        except SourceError as exc:  # its message names the URL already
            raise ctx.fail(f"param url: {_plain(exc)}") from None
        except ValueError as exc:
            raise ctx.fail(f"param url {where!r}: {exc}") from None
        deliveries: list[Any] = []
        kept: list[dict[str, Any]] = []
        settled = False
        try:
            try:
                if scheme_of(params.url) == "nats+jetstream":
                    await prepare_jetstream(source, params.max_messages)
                await source.start()
            except (SourceError, MessagingError) as exc:
                raise ctx.fail(_plain(exc)) from None
            await self._receive(ctx, params, source, deliveries, kept)
            # Acknowledge only what the downstream pipeline has taken in full.
            ctx.output.close()
            await ctx.output.wait_drained()
            complete = not any(ch.abandoned for ch in ctx.output._channels)
            try:
                if complete:
                    await _ack_all(deliveries)
                else:
                    await asyncio.gather(*(d.nak(0) for d in deliveries), return_exceptions=True)
            except (SourceError, MessagingError) as exc:
                raise ctx.fail(_plain(exc)) from None
            settled = True
        finally:
            await source.close()
            if not settled:
                ctx.log(f"{len(deliveries)} message(s) not acknowledged: they will be redelivered")
        out: dict[str, Any] = {
            "url": where,
            "received": len(deliveries),
            "acked": len(deliveries) if complete else 0,
            "redeliver": 0 if complete else len(deliveries),
        }
        if not ctx.has_output:
            out["messages"] = kept
        return out

    async def _receive(
        self,
        ctx: ModuleContext,
        params: Params,
        source: Any,
        deliveries: list[Any],
        kept: list[dict[str, Any]],
    ) -> None:
        from gxo.daemon.sources.base import SourceError

        deadline = time.monotonic() + params.max_wait
        pending: asyncio.Future[Any] | None = None
        try:
            while len(deliveries) < params.max_messages:
                remaining = deadline - time.monotonic()
                if deliveries and params.idle is not None:
                    remaining = min(remaining, params.idle)
                if remaining <= 0:
                    break
                if pending is None:
                    pending = asyncio.ensure_future(source.get())
                done, _ = await asyncio.wait((pending,), timeout=remaining)
                if not done:
                    break
                task, pending = pending, None
                try:
                    delivery = task.result()
                except (SourceError, MessagingError) as exc:
                    raise ctx.fail(_plain(exc)) from None
                deliveries.append(delivery)
                record = _record(delivery.event, params.envelope)
                if ctx.has_output:
                    await ctx.emit(record)
                elif len(kept) < SUMMARY_MESSAGES:
                    kept.append(record)
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)


def _plain(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc)


def _record(event: Any, envelope: bool) -> dict[str, Any]:
    if envelope:
        return event.as_template_value()
    if event.data_b64 is not None:
        return {"data_b64": event.data_b64}
    if isinstance(event.data, dict):
        return event.data
    return {"data": event.data}


async def _ack_all(deliveries: list[Any]) -> None:
    from gxo.modules.integration._messaging import _KafkaDelivery

    kafka = [d for d in deliveries if isinstance(d, _KafkaDelivery)]
    if kafka:
        # One commit: the highest offset per partition.
        last: dict[Any, int] = {}
        for d in kafka:
            last[d.partition] = max(last.get(d.partition, -1), d.offset)
        await kafka[0]._source._consumer.commit({tp: off + 1 for tp, off in last.items()})
        return
    for start in range(0, len(deliveries), 256):
        await asyncio.gather(*(d.ack() for d in deliveries[start : start + 256]))
