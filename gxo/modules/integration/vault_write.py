"""``vault:write``: write a secret to HashiCorp Vault's KV engine (v1 or v2), idempotently."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, register
from gxo.modules.integration._hcvault import KvParams, VaultApiError, kv_client


@register("vault:write", layer="integration")
class VaultWrite(Module):
    """Write ``data`` as the secret at ``mount``/``path`` in HashiCorp Vault's KV engine.

    The current secret is read first: when it already holds exactly ``data`` nothing
    is written (``changed: false``; on KV v2 no new version is created). ``cas``
    (KV v2) makes the write check-and-set: it only succeeds when the current
    version is ``cas`` (0: only if the secret does not exist yet). The values
    written are registered as secrets, never shown. Authentication as for
    ``vault:read``.

    Example:
        - name: store_api_key
          process:
            module: vault:write
            params:
              url: https://vault.internal:8200
              role_id: "{{ secret('VAULT_ROLE_ID') }}"
              secret_id: "{{ secret('VAULT_SECRET_ID') }}"
              path: apps/billing/api
              data: { key: "{{ secret('BILLING_API_KEY') }}", rotated: "2026-01-01" }
    """

    class Params(KvParams):
        data: dict[str, Any] = Field(..., description="The secret's fields")
        cas: int | None = Field(
            None, ge=0, description="KV v2 check-and-set: expected current version"
        )

    summary = {
        "changed": "false when the secret already held exactly this data",
        "version": "KV v2: the version now current",
        "created_time": "KV v2: when the written version was created",
    }
    path_params = ("ca_cert",)

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        from gxo.modules.integration.vault_read import _register

        _register(ctx, params.data)
        if params.cas is not None and params.kv_version == 1:
            raise ctx.fail("cas applies to kv_version 2 only")
        client = await kv_client(ctx, params)
        try:
            current = await client.read()
            if current is not None and current["data"] == params.data:
                out: dict[str, Any] = {"changed": False}
                if "version" in current["metadata"]:
                    out["version"] = current["metadata"]["version"]
                return out
            written = await client.write(params.data, params.cas)
        except VaultApiError as exc:
            raise ctx.fail(f"cannot write {client.describe()}: {exc}") from None
        finally:
            await client.aclose()
        out = {"changed": True}
        if "version" in written:
            out["version"] = written["version"]
        if "created_time" in written:
            out["created_time"] = written["created_time"]
        return out
