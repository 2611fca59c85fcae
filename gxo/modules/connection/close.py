"""``connection:close``: close a connection by ``connection_id`` (or each streamed one)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, ModuleParams, StreamRole, raw_template, register
from gxo.modules.connection._streams import per_record, value_builder


@register("connection:close", layer="connection")
class ConnectionClose(Module):
    """Close an open connection and release it from the run's connection manager.

    Idempotent: an id that is already closed (by the peer, an earlier close or a
    listener that stopped) is not an error; ``was_open`` tells which. With
    ``stream_inputs`` it closes every record's connection and emits the record
    plus ``closed``. Whatever is left open is closed at the end of the run anyway.

    Example:
        - name: hang_up
          process:
            module: connection:close
            params: { connection_id: "{{ conn.connection_id }}" }
    """

    class Params(ModuleParams):
        connection_id: str = raw_template(
            ...,
            description="The connection to close; per record: {{ record.connection_id }}",
        )
        max_concurrency: int = Field(
            1000, ge=1, le=100_000, description="Stream mode: closes in flight at once"
        )

    consumes = StreamRole.optional
    produces = True
    summary = {
        "connection_id": "the connection",
        "closed": "true",
        "was_open": "false when it was already closed",
        "closes": "stream mode: connections closed",
    }

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        async def close(connection_id: str) -> dict[str, Any]:
            was_open = connection_id in ctx.connections
            await ctx.connections.close(connection_id)
            return {"connection_id": connection_id, "closed": True, "was_open": was_open}

        if not ctx.has_input:
            result = await close(str(ctx.render(params.connection_id, path="connection_id")))
            ctx.log(
                f"closed {result['connection_id']}"
                + ("" if result["was_open"] else " (was not open)")
            )
            return result
        pick = value_builder(ctx, params.connection_id, "connection_id")

        async def each(record: dict[str, Any]) -> dict[str, Any]:
            return {**record, **await close(str(pick(record)))}

        done, _ = await per_record(ctx, each, params.max_concurrency)
        return {"closes": done}
