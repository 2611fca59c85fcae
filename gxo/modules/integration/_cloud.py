"""HTTP plumbing of the SaaS notification modules (``slack:*``, ``pagerduty:*``) — httpx,
imported lazily. The leading underscore keeps the registry from importing this file."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import Field

from gxo.config.durations import Duration
from gxo.modules.base import ModuleParams

__all__ = ["ApiParams", "post_json"]


class ApiParams(ModuleParams):
    """Connection params of the notification modules."""

    timeout: Duration = Field(30.0, description="Seconds for the whole request (or 10s, 1m ...)")
    ca_file: str | None = Field(
        None, description="PEM file of CA certificates to verify the server against"
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}"


async def post_json(
    ctx: Any,
    url: str,
    body: dict[str, Any],
    *,
    params: ApiParams,
    headers: dict[str, str] | None = None,
    what: str,
    shown_url: str | None = None,
) -> tuple[int, Any, str]:
    """POST ``body`` as JSON; ``(status, parsed JSON or None, text)``.

    Errors (connection, timeout, TLS) become ``ctx.fail`` naming ``what`` and the
    server's origin (``shown_url`` replaces the URL where it is itself a secret).
    """
    import httpx

    where = shown_url or _origin(url)
    verify: Any = True
    if params.ca_file:
        import ssl

        path = ctx.resolve_path(params.ca_file, param="ca_file")
        try:
            verify = await ctx.to_thread(ssl.create_default_context, cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            raise ctx.fail(f"param ca_file: cannot load {path}: {exc}") from None
    try:
        async with httpx.AsyncClient(timeout=params.timeout, verify=verify) as client:
            answer = await client.post(url, json=body, headers=headers or {})
    except httpx.TimeoutException:
        raise ctx.fail(f"{what}: no answer from {where} within {params.timeout:g}s") from None
    except httpx.HTTPError as exc:
        reason = ctx.redact(str(exc) or type(exc).__name__)
        raise ctx.fail(f"{what}: cannot reach {where}: {reason}") from None
    text = answer.text
    try:
        data = answer.json() if text.strip() else None
    except ValueError:
        data = None
    return answer.status_code, data, text
