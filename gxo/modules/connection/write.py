"""``connection:write``: write text or bytes to a connection (or to each streamed one)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import Field, model_validator

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, ModuleParams, StreamRole, raw_template, register
from gxo.modules.connection._streams import per_record, socket_error, value_builder
from gxo.modules.connection.read import _handle
from gxo.template.filters import is_truthy


@register("connection:write", layer="connection")
class ConnectionWrite(Module):
    """Write ``data`` (UTF-8 text) or ``data_b64`` (bytes, base64) to an open connection.

    ``close: true`` closes the connection once the data is written (a one-shot
    reply); empty data writes nothing (with ``close``: just closes). With ``stream_inputs`` it writes to every record's connection, its
    params templated per ``record``, and emits the input record plus
    ``bytes_written``; a failed write is logged and counted as ``errors``. The data
    itself never appears in logs or summaries.

    Example:
        - name: reply
          process:
            module: connection:write
            params: { connection_id: "{{ record.connection_id }}", data: "{{ record.response }}\\n" }
          stream_inputs: [answers]
    """

    class Params(ModuleParams):
        connection_id: str = raw_template(
            ...,
            description="The connection (from connection:open/listen); per record: {{ record.connection_id }}",
        )
        data: str | None = raw_template(None, description="Text to write (sent as UTF-8)")
        data_b64: str | None = raw_template(
            None, description="Bytes to write, base64-encoded (binary protocols)"
        )
        close: bool | str = raw_template(
            False,
            description='Close the connection after writing (per record: "{{ record.eof }}")',
        )
        max_concurrency: int = Field(
            1000, ge=1, le=100_000, description="Stream mode: writes in flight at once"
        )

        @model_validator(mode="after")
        def _one(self) -> ConnectionWrite.Params:
            if (self.data is None) == (self.data_b64 is None):
                raise ValueError("give exactly one of 'data' or 'data_b64'")
            return self

    consumes = StreamRole.optional
    produces = True
    summary = {
        "connection_id": "the connection written to",
        "bytes_written": "how many bytes were written",
        "closed": "whether the connection was closed afterwards",
        "writes / errors": "stream mode: records written / writes that failed",
    }

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        field = "data" if params.data is not None else "data_b64"
        raw = params.data if params.data is not None else params.data_b64

        async def write(connection_id: str, value: Any, close: bool) -> dict[str, Any]:
            payload = _encode(ctx, field, value)
            handle = _handle(ctx, connection_id)
            try:
                written = await handle.write(payload) if payload else 0
            except OSError as exc:
                await ctx.connections.close(connection_id)
                raise ctx.fail(f"connection {connection_id}: {socket_error(exc)}") from None
            if close:
                await ctx.connections.close(connection_id)
            return {
                "connection_id": connection_id,
                "bytes_written": written,
                "closed": close,
            }

        if not ctx.has_input:
            connection_id = str(ctx.render(params.connection_id, path="connection_id"))
            close = is_truthy(ctx.render(params.close, path="close"))
            result = await write(connection_id, ctx.render(raw, path=field), close)
            ctx.log(f"wrote {result['bytes_written']} bytes to {connection_id}")
            return result

        pick = value_builder(ctx, params.connection_id, "connection_id")
        content = value_builder(ctx, raw, field)
        closing = value_builder(ctx, params.close, "close")

        async def each(record: dict[str, Any]) -> dict[str, Any]:
            connection_id, value = str(pick(record)), content(record)
            return {**record, **await write(connection_id, value, is_truthy(closing(record)))}

        done, errors = await per_record(ctx, each, params.max_concurrency)
        return {"writes": done, "errors": errors}


def _encode(ctx: ModuleContext, field: str, value: Any) -> bytes:
    if value is None:
        raise ctx.fail(f"{field}: rendered to nothing")
    text = value if isinstance(value, str) else str(value)
    if field == "data":
        return text.encode()
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ctx.fail("data_b64: not valid base64") from None
