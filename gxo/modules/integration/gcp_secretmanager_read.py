"""``gcp_secretmanager:read``: read a secret version from Google Secret Manager."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from gxo.config.durations import Duration
from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, register
from gxo.modules.integration._cloud_sync import (
    GcpAuthParams,
    gcp_call_errors,
    gcp_credentials,
    gcp_error,
    load_libraries,
)
from gxo.template.secrets import SecretStr

DEFAULT_BASE_URL = "https://secretmanager.googleapis.com"


@register("gcp_secretmanager:read", layer="integration")
class GcpSecretManagerRead(Module):
    """Read a secret version (``latest`` by default) from Google Secret Manager.

    Through the official client library, google-cloud-secret-manager, over its REST
    transport (``GET /v1/projects/P/secrets/S/versions/V:access``; imported when the
    module runs, its blocking call in a worker thread). ``value`` is the payload as text;
    when it is a JSON object, ``key`` picks a field. The value is registered as a secret
    of the run: redacted in every output, including what later workloads read from the
    registered result. Credentials as for ``gcp:gcs_sync``. No Secret Manager emulator
    exists: the tests run the client library against a local HTTP stand-in on loopback
    implementing this endpoint and the service-account token exchange.

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
        resource = f"projects/{params.project}/secrets/{params.name}/versions/{params.version}"
        if any("/" in v for v in (params.project, params.name, params.version)):
            raise ctx.fail(f"project, name and version may not contain '/': {resource}")
        await load_libraries(ctx, "google-cloud-secret-manager", "google.cloud.secretmanager")
        credentials = await gcp_credentials(ctx, params, params.timeout)
        try:
            answer = await ctx.to_thread(_access, credentials, params, resource)
        except gcp_call_errors() as exc:
            raise ctx.fail(ctx.redact(gcp_error(f"cannot read secret {resource}", exc))) from None
        try:
            text = bytes(answer.payload.data).decode("utf-8")
        except UnicodeDecodeError:
            raise ctx.fail(f"secret {resource} is not text (UTF-8)") from None
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
        return {"name": answer.name or resource, "value": SecretStr(value)}


def _access(credentials: Any, params: GcpSecretManagerRead.Params, resource: str) -> Any:
    from google.cloud import secretmanager

    client = secretmanager.SecretManagerServiceClient(
        credentials=credentials,
        transport="rest",
        client_options={"api_endpoint": params.base_url.rstrip("/")},
    )
    try:
        return client.access_secret_version(name=resource, timeout=params.timeout)
    finally:
        client.transport.close()
