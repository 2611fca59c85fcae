"""``gcp_secretmanager:read``: read a secret version from Google Secret Manager."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

from pydantic import Field

from gxo.config.durations import Duration
from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, register
from gxo.modules.integration._cloud_sync import GcpAuthParams, api_error, gcp_token
from gxo.template.secrets import SecretStr

DEFAULT_BASE_URL = "https://secretmanager.googleapis.com"


@register("gcp_secretmanager:read", layer="integration")
class GcpSecretManagerRead(Module):
    """Read a secret version (``latest`` by default) from Google Secret Manager.

    Over the REST API with httpx (``GET /v1/projects/P/secrets/S/versions/V:access``).
    ``value`` is the payload as text; when it is a JSON object, ``key`` picks a field.
    The value is registered as a secret of the run: redacted in every output, including
    what later workloads read from the registered result. Credentials as for
    ``gcp:gcs_sync``. The tests use a local HTTP server implementing this endpoint and
    a service-account token exchange (no Secret Manager emulator exists).

    Example:
        - name: db
          process:
            module: gcp_secretmanager:read
            params: { project: my-project, name: db-password }
    """

    class Params(GcpAuthParams):
        project: str = Field(..., min_length=1, description="Project id or number")
        name: str = Field(..., min_length=1, description="Secret id")
        version: str = Field("latest", min_length=1, description="Version number or latest")
        key: str | None = Field(None, min_length=1, description="Field of a JSON secret")
        base_url: str = Field(DEFAULT_BASE_URL, description="API base URL (a test server in tests)")
        timeout: Duration = Field(30.0, description="Seconds per request")

    summary = {
        "name": "the version's resource name (projects/P/secrets/S/versions/N)",
        "value": "the value (or the key's value), redacted in outputs",
    }
    path_params = ("credentials_file",)
    check_mode = CheckMode.safe

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        import httpx

        resource = (
            f"projects/{quote(params.project, safe='')}/secrets/{quote(params.name, safe='')}"
            f"/versions/{quote(params.version, safe='')}"
        )
        url = f"{params.base_url.rstrip('/')}/v1/{resource}:access"
        async with httpx.AsyncClient(timeout=params.timeout) as http:
            token = await gcp_token(ctx, params, http)
            try:
                answer = await http.get(url, headers={"Authorization": f"Bearer {token}"})
            except httpx.HTTPError as exc:
                raise ctx.fail(
                    f"cannot reach Secret Manager: {type(exc).__name__}: {exc}"
                ) from None
        if answer.status_code != 200:
            raise ctx.fail(api_error(f"cannot read secret {resource}", answer))
        try:
            body = answer.json()
            text = base64.b64decode(body["payload"]["data"]).decode("utf-8")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise ctx.fail(f"unexpected answer for {resource} (no text payload)") from None
        ctx.run.secrets.add(text)
        value = text
        if params.key is not None:
            try:
                data = json.loads(text)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise ctx.fail(f"secret {params.name!r} is not a JSON object: it has no key")
            if params.key not in data:
                keys = ", ".join(sorted(data)) or "none"
                raise ctx.fail(f"secret {params.name!r} has no key {params.key!r} (keys: {keys})")
            found = data[params.key]
            value = found if isinstance(found, str) else json.dumps(found)
            from gxo.modules.integration._crypto import register_secret

            register_secret(ctx, value, data=True)
        return {"name": body.get("name", resource), "value": SecretStr(value)}
