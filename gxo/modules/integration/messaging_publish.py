"""``messaging:publish``: publish records (or one message) to NATS, JetStream, MQTT, Redis
Streams, AMQP or Kafka."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, StreamRole, register
from gxo.modules.integration._messaging import (
    PUBLISH_SCHEMES,
    MessagingError,
    encode,
    open_publisher,
    shown,
    url_secrets,
)

BATCH = 1000


@register("messaging:publish", layer="integration")
class MessagingPublish(Module):
    """Publish each record of ``stream_inputs`` (as JSON), or one ``message``, to a broker.

    The URLs are those of the daemon's event sources (docs/event-sources.md,
    docs/cloud-messaging.md): ``nats://HOST:PORT/SUBJECT``,
    ``nats+jetstream://HOST:PORT/STREAM/SUBJECT[?create=true]`` (waits for the stream's
    acknowledgement of every message), ``mqtt://HOST:PORT/TOPIC?qos=1``,
    ``redis://HOST:PORT/DB?stream=NAME`` (XADD, the payload in field ``data``),
    ``amqp://USER:PASS@HOST:PORT/VHOST?queue=Q`` (persistent, publisher confirms; or
    ``?exchange=E&routing_key=K``) and ``kafka://HOST:PORT/TOPIC`` (acks=all).
    A text ``message`` is sent as it is, anything else as JSON. Credentials in the URL
    are redacted everywhere. Under ``--check`` nothing is sent: the summary says how
    many messages would be.

    Example:
        - name: announce
          stream_inputs: [orders]
          process:
            module: messaging:publish
            params:
              url: "nats+jetstream://127.0.0.1:4222/ORDERS/orders.new"
    """

    class Params(ModuleParams):
        url: str = Field(..., min_length=3, description="Broker URL (see the module doc)")
        message: Any = Field(
            None, description="One message to send (text as is, anything else as JSON)"
        )
        headers: dict[str, str] = Field(
            default_factory=dict,
            description="Headers (NATS, AMQP, Kafka), user properties (MQTT) or extra fields (Redis)",
        )

        @field_validator("url")
        @classmethod
        def _known_scheme(cls, url: str) -> str:
            scheme = url.split("://", 1)[0].lower() if "://" in url else ""
            if scheme not in PUBLISH_SCHEMES:
                raise ValueError(
                    f"unknown broker URL scheme {scheme!r} (known: {', '.join(PUBLISH_SCHEMES)})"
                )
            return url

    consumes = StreamRole.optional
    summary = {
        "url": "the broker URL (credentials redacted)",
        "published": "number of messages published",
        "changed": "true when anything was published",
    }
    check_mode = CheckMode.predict

    def _validate(self, ctx: ModuleContext, params: Params) -> None:
        for secret in url_secrets(params.url):
            ctx.run.secrets.add(secret)
        if params.message is not None and ctx.has_input:
            raise ctx.fail("give either message or stream_inputs, not both")
        if params.message is None and not ctx.has_input:
            raise ctx.fail("nothing to publish: give message, or stream_inputs")
        try:
            open_publisher(params.url)
        except ValueError as exc:
            raise ctx.fail(f"param url {shown(params.url)!r}: {exc}") from None

    async def check(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        self._validate(ctx, params)
        count = 1
        if params.message is None:
            count = 0
            async for batch in ctx.batches():
                count += len(batch)
        return {"url": shown(params.url), "published": count, "changed": count > 0}

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        self._validate(ctx, params)
        publisher = open_publisher(params.url)
        published = 0
        try:
            await publisher.start()
            if params.message is not None:
                await publisher.send([encode(params.message)], params.headers)
                published = 1
            else:
                async for batch in ctx.batches(BATCH):
                    await publisher.send([encode(r) for r in batch], params.headers)
                    published += len(batch)
        except MessagingError as exc:
            summary = {"url": shown(params.url), "published": published, "changed": published > 0}
            raise ctx.fail(str(exc), summary=summary) from None
        finally:
            await publisher.close()
        return {"url": shown(params.url), "published": published, "changed": published > 0}
