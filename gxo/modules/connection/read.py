"""``connection:read``: read from a connection by ``connection_id`` (or from each streamed one)."""

from __future__ import annotations

import asyncio
import base64
import codecs
from typing import Any

from pydantic import Field, field_validator

from gxo.config.durations import Duration
from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, ModuleParams, StreamRole, raw_template, register
from gxo.modules.connection._streams import MAX_READ, per_record, socket_error, value_builder

TEXT = ("string", "text", "utf-8", "utf8")


@register("connection:read", layer="connection")
class ConnectionRead(Module):
    """Read bytes from an open connection: a fixed size, up to a delimiter, or to the end.

    ``size`` reads exactly that many bytes (fewer only at end of stream);
    ``read_until`` reads up to and including the delimiter; with both, whichever
    comes first; neither reads until the peer closes (16 MiB at most; a delimiter
    must come within 16 MiB too). For UDP
    each read returns one datagram. ``timeout`` bounds the wait for the data.

    ``encoding``: ``string`` (UTF-8 text, the default; invalid UTF-8 is an error),
    ``base64``, ``hex``, or another text codec name (``latin-1``).

    With ``stream_inputs`` (records holding a ``connection_id``, such as
    ``connection:listen``'s) it reads from every record's connection concurrently
    (``connection_id`` is templated per ``record``) and emits the input record
    plus ``data``, ``bytes_read`` and ``eof``. ``repeat: true`` keeps reading each
    connection and emits one record per message; when the peer stops sending it
    emits a last record with ``eof: true`` and empty ``data`` and leaves the
    connection open, so the replies still in the pipeline reach the client: the
    writer closes it (``connection:write`` with ``close: "{{ record.eof }}"``). A
    connection idle for ``timeout`` or failing is closed at once. A failing read
    in one-read stream mode is logged and counted as ``errors``; the others go on.

    Example:
        - name: lines
          process:
            module: connection:read
            params: { connection_id: "{{ record.connection_id }}", read_until: "\\n", repeat: true, timeout: 60s }
          stream_inputs: [listener]
    """

    class Params(ModuleParams):
        connection_id: str = raw_template(
            ...,
            description="The connection (from connection:open/listen); per record: {{ record.connection_id }}",
        )
        size: int | None = Field(
            None, ge=1, le=MAX_READ, description="Read exactly this many bytes"
        )
        read_until: str | None = Field(
            None, min_length=1, description="Read up to and including this delimiter (\\n)"
        )
        timeout: Duration | None = Field(
            30.0, description="How long to wait for the data (30s; null = no limit)"
        )
        encoding: str = Field(
            "string",
            description="How data is returned: string (UTF-8), base64, hex, or a text codec name",
        )
        repeat: bool = Field(
            False, description="Stream mode: keep reading each connection until it closes"
        )
        max_concurrency: int = Field(
            1000, ge=1, le=100_000, description="Stream mode: connections read at once"
        )

        @field_validator("encoding")
        @classmethod
        def _known(cls, value: str) -> str:
            if value.lower() in (*TEXT, "base64", "hex"):
                return value.lower()
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(
                    f"unknown encoding {value!r}: string, base64, hex or a text codec name"
                ) from None
            return value

    consumes = StreamRole.optional
    produces = True
    summary = {
        "connection_id": "the connection read from",
        "data": "what was read (text, base64 or hex per encoding)",
        "bytes_read": "how many bytes were read",
        "eof": "true when the peer closed the connection (data may be shorter)",
        "reads / errors": "stream mode: records emitted / connections that failed",
    }

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        until = params.read_until.encode() if params.read_until is not None else None
        if params.repeat and not ctx.has_input:
            raise ctx.fail("repeat: needs stream_inputs (it reads every streamed connection)")

        async def read(connection_id: str) -> dict[str, Any]:
            handle = _handle(ctx, connection_id)
            try:
                async with asyncio.timeout(params.timeout or None):
                    data, eof = await handle.read(params.size, until, MAX_READ)
            except TimeoutError:
                raise ctx.fail(
                    f"connection {connection_id}: no data within {params.timeout}s"
                ) from None
            except ValueError as exc:
                raise ctx.fail(f"connection {connection_id}: {exc}") from None
            except OSError as exc:
                raise ctx.fail(f"connection {connection_id}: {socket_error(exc)}") from None
            return {
                "connection_id": connection_id,
                "data": _decode(ctx, data, params.encoding, connection_id),
                "bytes_read": len(data),
                "eof": eof,
            }

        if not ctx.has_input:
            connection_id = str(ctx.render(params.connection_id, path="connection_id"))
            result = await read(connection_id)
            ctx.log(f"read {result['bytes_read']} bytes from {connection_id}")
            return result

        pick = value_builder(ctx, params.connection_id, "connection_id")

        async def each(record: dict[str, Any]) -> dict[str, Any] | None:
            connection_id = str(pick(record))
            if not params.repeat:
                return {**record, **await read(connection_id)}
            while True:
                try:
                    result = await read(connection_id)
                except Exception as exc:
                    # Idle past timeout, reset by the peer, closed elsewhere: nothing
                    # is pending on it, so it is closed here.
                    if connection_id in ctx.connections:
                        ctx.log(f"closing {connection_id}: {exc}", level="debug")
                        await ctx.connections.close(connection_id)
                    return None
                if not result["eof"]:
                    await ctx.emit({**record, **result})
                    continue
                if result["bytes_read"]:  # a last message without its delimiter
                    await ctx.emit({**record, **result, "eof": False})
                # The peer is done sending; answers to its last messages may still be
                # on their way downstream, so whoever writes them closes it
                # (connection:write close: "{{ record.eof }}"), or the run end does.
                return {**record, **result, "data": "", "bytes_read": 0}

        done, errors = await per_record(ctx, each, params.max_concurrency)
        return {"reads": done, "errors": errors}


def _handle(ctx: ModuleContext, connection_id: str) -> Any:
    handle = ctx.connections.get(connection_id)
    if not hasattr(handle, "read"):
        kind = ctx.connections.kind(connection_id)
        raise ctx.fail(f"connection_id '{connection_id}' is a {kind} handle, not a socket")
    return handle


def _decode(ctx: ModuleContext, data: bytes, encoding: str, connection_id: str) -> str:
    if encoding == "base64":
        return base64.b64encode(data).decode("ascii")
    if encoding == "hex":
        return data.hex()
    codec = "utf-8" if encoding in TEXT else encoding
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise ctx.fail(
            f"connection {connection_id}: data is not {codec} text ({exc.reason} at byte "
            f"{exc.start}); use encoding: base64"
        ) from None
