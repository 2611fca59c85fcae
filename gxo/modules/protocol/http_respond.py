"""``http:respond``: answer a request ``http:listen`` streamed (one, or every streamed one)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from pydantic import model_validator

from gxo.engine.context import ModuleContext
from gxo.errors import GxoError
from gxo.modules.base import Module, ModuleParams, StreamRole, raw_template, register

WRITE_TIMEOUT = 30.0  # how long one-request mode waits for the listener to send


@register("http:respond", layer="protocol")
class HttpRespond(Module):
    """Send the HTTP response to a request received by ``http:listen``.

    With ``stream_inputs: [the listener]`` it answers every request record as it
    arrives, its params templated per ``record`` -- together the two workloads
    are a web service. Without, it answers the one ``request_id`` it is given
    (from a registered record) and reports the bytes written.

    ``json`` sends a JSON body (``content-type: application/json``); ``body``
    sends text (``text/plain; charset=utf-8`` unless ``headers`` set a
    content-type); neither sends an empty body. A record whose params fail to
    render is answered 500 (the error is logged, not sent to the client) and
    counted as ``errors``; a request that was already answered -- 504 after the
    listener's ``response_timeout`` -- is counted as ``late``.

    Example:
        - name: reply
          stream_inputs: [web]
          process:
            module: http:respond
            params:
              request_id: "{{ record.request_id }}"
              status_code: "{{ 201 if record.method == 'POST' else 200 }}"
              headers: { x-served-by: gxo }
              json: { echo: "{{ record.json.msg }}", path: "{{ record.path }}" }
    """

    class Params(ModuleParams):
        request_id: str = raw_template(
            ..., description="The request to answer; per record: {{ record.request_id }}"
        )
        status_code: int | str = raw_template(
            200, description="HTTP status code (100-599; a template may choose it per record)"
        )
        headers: dict[str, Any] | str | None = raw_template(
            None, description="Response headers (name → value)"
        )
        body: str | None = raw_template(None, description="Response body as text")
        json_body: Any = raw_template(
            None,
            alias="json",
            description="Response body as JSON (content-type application/json); instead of body",
        )

        @model_validator(mode="after")
        def _one_body(self) -> HttpRespond.Params:
            if self.body is not None and "json_body" in self.model_fields_set:
                raise ValueError("give either body or json, not both")
            return self

    consumes = StreamRole.optional
    summary = {
        "request_id": "the request answered (one-request mode)",
        "status_code": "the status sent (one-request mode)",
        "bytes_written": "bytes of the response written (one-request mode)",
        "responses / errors / late / unknown": "stream mode: answered, answered 500 after a "
        "template error, already answered (504), no such request",
    }

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        from gxo.modules.connection._streams import value_builder
        from gxo.modules.protocol._http_server import KIND

        parts: dict[str, Callable[[dict[str, Any]], Any]] = {
            "request_id": value_builder(ctx, params.request_id, "request_id"),
            "status_code": value_builder(ctx, params.status_code, "status_code"),
            "headers": value_builder(ctx, params.headers, "headers"),
        }
        if "json_body" in params.model_fields_set:
            parts["json"] = value_builder(ctx, params.json_body, "json")
        elif params.body is not None:
            parts["body"] = value_builder(ctx, params.body, "body")

        if not ctx.has_input:
            request_id = str(parts["request_id"]({}))
            try:
                pending = ctx.connections.get(request_id, KIND)
            except GxoError:
                raise ctx.fail(
                    f"request_id: no pending request '{request_id}' (already answered, timed "
                    "out, or never received)"
                ) from None
            response = _build(ctx, parts, {})
            sent = pending.written  # before answering: the listener reports to it
            if not pending.answer(response):
                raise ctx.fail(f"request_id: request '{request_id}' was already answered")
            try:
                async with asyncio.timeout(WRITE_TIMEOUT):
                    written = await asyncio.shield(sent)
            except TimeoutError:
                raise ctx.fail(f"request '{request_id}': the response was not sent") from None
            return {
                "request_id": request_id,
                "status_code": response.status_code,
                "bytes_written": written,
            }

        answered = errors = late = unknown = 0
        connections = ctx.connections
        async for batch in ctx.batches():
            for record in batch:
                try:
                    request_id = str(parts["request_id"](record))
                    pending = connections.get(request_id, KIND)
                except GxoError as exc:
                    unknown += 1
                    ctx.count("unknown")
                    ctx.log(f"no pending request: {exc}", level="warning")
                    continue
                try:
                    response = _build(ctx, parts, record)
                except GxoError as exc:
                    from gxo.modules.protocol._http_server import json_response

                    errors += 1
                    ctx.count("errors")
                    ctx.log(f"request {request_id}: {exc}: answered 500", level="error")
                    response = json_response(500, {"error": "internal server error"})
                if pending.answer(response):
                    answered += 1
                else:
                    late += 1
                    ctx.count("late")
        return {"responses": answered, "errors": errors, "late": late, "unknown": unknown}


def _build(
    ctx: ModuleContext, parts: dict[str, Callable[[dict[str, Any]], Any]], record: dict[str, Any]
) -> Any:
    from gxo.modules.protocol._http_server import Response

    raw_status = parts["status_code"](record)
    try:
        status = int(str(raw_status).strip())
    except ValueError:
        raise ctx.fail(f"status_code: {raw_status!r} is not a number") from None
    if not 100 <= status <= 599:
        raise ctx.fail(f"status_code: {status} is not between 100 and 599")
    raw_headers = parts["headers"](record)
    if isinstance(raw_headers, str) and raw_headers.strip():
        try:
            raw_headers = json.loads(raw_headers)
        except ValueError:
            raise ctx.fail("headers: a template must give a mapping") from None
    if raw_headers and not isinstance(raw_headers, dict):
        raise ctx.fail(f"headers: expected a mapping, got {type(raw_headers).__name__}")
    headers = [(str(k), _header_value(v)) for k, v in (raw_headers or {}).items()]
    has_type = any(k.lower() == "content-type" for k, _ in headers)
    if "json" in parts:
        try:
            body = json.dumps(parts["json"](record), separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise ctx.fail(f"json: cannot encode the body: {exc}") from None
        if not has_type:
            headers.append(("content-type", "application/json"))
    elif "body" in parts:
        value = parts["body"](record)
        body = ("" if value is None else str(value)).encode()
        if not has_type:
            headers.append(("content-type", "text/plain; charset=utf-8"))
    else:
        body = b""
    return Response(status, headers, body)


def _header_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value) if value is not None else ""
    return text.replace("\r", " ").replace("\n", " ")
