"""Reading an ``http:request`` response: a size cap on the body, and its description.

The leading underscore keeps the registry from importing this file as a module.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from gxo.engine.context import ModuleContext

if TYPE_CHECKING:
    import httpx

__all__ = ["DEFAULT_MAX_BODY", "check_url", "describe", "read_body"]

DEFAULT_MAX_BODY = 64 * 1024 * 1024
PARSE_IN_THREAD = 1024 * 1024  # JSON bodies larger than this are parsed off the event loop


def check_url(ctx: ModuleContext, url: str) -> None:
    """Refuse what httpx lets through but cannot connect to (a port over 65535 ends
    in "ExceptionGroup: unhandled errors in a TaskGroup" deep in the transport)."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ctx.fail(f"invalid url {url!r}: {exc}") from None
    if parsed.port is not None and not 0 < parsed.port <= 65535:
        raise ctx.fail(f"invalid url {url!r}: port {parsed.port} is out of range (1-65535)")


def _size(n: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:g} {unit}"
    return f"{n} bytes"


async def read_body(ctx: ModuleContext, response: httpx.Response, limit: int, where: str) -> bytes:
    """The (decompressed) body, failing as soon as it exceeds ``limit`` bytes."""

    def too_big(what: str) -> Exception:
        return ctx.fail(
            f"{where}: the response body {what} max_body_bytes ({limit} bytes, {_size(limit)}); "
            "raise max_body_bytes, or fetch the listing in smaller pages (emit + paginate)"
        )

    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big(f"({_size(int(declared))}, by its Content-Length) is larger than")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            # Counted after decompression: a small gzip bomb cannot fill the memory.
            raise too_big("is larger than")
        chunks.append(chunk)
    return b"".join(chunks)


async def describe(
    ctx: ModuleContext, response: httpx.Response, content: bytes, latency_ms: float
) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    body = content.decode(response.encoding or "utf-8", errors="replace")
    json_body = None
    ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if body and (ctype == "application/json" or ctype.endswith("+json")):
        try:
            json_body = (
                await ctx.to_thread(json.loads, body)
                if len(body) > PARSE_IN_THREAD
                else json.loads(body)
            )
        except ValueError:
            ctx.log(f"response says {ctype} but its body is not valid JSON", level="warning")
    links = {rel: dict(link) for rel, link in response.links.items()} if "link" in headers else {}
    return {
        "status_code": response.status_code,
        "headers": headers,
        "body": body,
        "json_body": json_body,
        "url": str(response.url),
        "links": links,
        "latency_ms": latency_ms,
    }
