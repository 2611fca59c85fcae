"""``vault:read``: read a secret from HashiCorp Vault's KV engine (v1 or v2)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, ReadsUnlessDest, register
from gxo.modules.integration._files import write_atomic
from gxo.modules.integration._hcvault import KvParams, VaultApiError, kv_client
from gxo.template.secrets import SecretStr


@register("vault:read", layer="integration")
class VaultRead(ReadsUnlessDest, Module):
    """Read the secret at ``mount``/``path`` from HashiCorp Vault's KV engine.

    Authenticates with ``token`` (default ``$VAULT_TOKEN``) or AppRole
    (``role_id`` + ``secret_id``). KV v2 (default) returns the latest version or
    ``version``; KV v1 with ``kv_version: 1``. ``key`` picks one field as ``value``.

    The values are secrets: every string in ``data`` is registered with the run's
    secret registry and shows as ``[REDACTED]`` in summaries, logs and reports.
    ``dest`` writes the data as JSON (or the single ``key`` as text) to a file with
    mode 0600 for tools that need it; ``redact: false`` publishes the values in the
    summary for non-sensitive configuration. A missing secret fails the workload
    unless ``missing_ok: true`` (then ``found: false``).

    Example:
        - name: db_creds
          process:
            module: vault:read
            params:
              url: https://vault.internal:8200
              token: "{{ secret('VAULT_TOKEN') }}"
              path: apps/billing/db
              key: password
              dest: run/db_password
    """

    class Params(KvParams):
        version: int | None = Field(None, ge=1, description="KV v2: read this version")
        key: str | None = Field(None, min_length=1, description="Return only this field as value")
        dest: str | None = Field(
            None, min_length=1, description="Write the data (JSON) or the key's value here (0600)"
        )
        redact: bool = Field(True, description="Treat the values as secrets (redacted)")
        missing_ok: bool = Field(
            False, description="A missing secret is found: false, not a failure"
        )

    summary = {
        "found": "whether the secret exists",
        "data": "the secret's fields (values redacted unless redact: false)",
        "value": "the field named by key",
        "version": "KV v2: the version read",
        "metadata": "KV v2: created_time, version, custom_metadata ...",
        "path": "the file written (with dest)",
    }
    path_params = ("dest", "ca_cert")

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        client = await kv_client(ctx, params)
        try:
            secret = await client.read(params.version)
        except VaultApiError as exc:
            raise ctx.fail(f"cannot read {client.describe()}: {exc}") from None
        finally:
            await client.aclose()
        if secret is None:
            if params.missing_ok:
                return {"found": False}
            raise ctx.fail(f"no secret at {client.describe()}")
        data = secret["data"]
        if params.key is not None and params.key not in data:
            raise ctx.fail(
                f"secret {client.describe()} has no key '{params.key}' (keys: {', '.join(sorted(data))})"
            )
        if params.redact:
            _register(ctx, data)
            data = _mark(data)
        out: dict[str, Any] = {"found": True, "data": data}
        meta = secret["metadata"]
        if meta:
            out["metadata"] = meta
            if "version" in meta:
                out["version"] = meta["version"]
        if params.key is not None:
            out["value"] = data[params.key]
        if params.dest is not None:
            dest = ctx.resolve_path(params.dest, param="dest")
            raw = secret["data"]
            payload = raw[params.key] if params.key is not None else raw
            text = payload if isinstance(payload, str) else json.dumps(payload, indent=2)
            try:
                await ctx.to_thread(write_atomic, dest, str(text).encode(), mode=0o600)
            except OSError as exc:
                raise ctx.fail(f"cannot write dest {dest}: {exc.strerror or exc}") from None
            out["path"] = str(dest)
        return out


def _register(ctx: ModuleContext, value: Any) -> None:
    from gxo.modules.integration._crypto import register_secret

    if isinstance(value, str):
        register_secret(ctx, value, data=True)
    elif isinstance(value, dict):
        for item in value.values():
            _register(ctx, item)
    elif isinstance(value, list):
        for item in value:
            _register(ctx, item)


def _mark(value: Any) -> Any:
    if isinstance(value, str):
        return SecretStr(value)
    if isinstance(value, dict):
        return {k: _mark(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark(v) for v in value]
    return value
