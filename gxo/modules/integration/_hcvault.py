"""HashiCorp Vault KV client plumbing shared by ``vault:read`` and ``vault:write`` (httpx).

The leading underscore keeps the registry from importing this file as a module.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field

from gxo.modules.base import ModuleParams

__all__ = ["KvParams", "VaultApiError", "kv_client"]


class KvParams(ModuleParams):
    """Connection and location params common to the KV modules."""

    url: str | None = Field(
        None, description="Vault address, e.g. https://vault:8200 (default: $VAULT_ADDR)"
    )
    token: str | None = Field(
        None, description="Vault token (default: $VAULT_TOKEN unless role_id is given)"
    )
    role_id: str | None = Field(None, description="AppRole role_id (login instead of a token)")
    secret_id: str | None = Field(None, description="AppRole secret_id")
    auth_mount: str = Field("approle", min_length=1, description="Mount of the AppRole auth method")
    namespace: str | None = Field(None, description="Vault Enterprise namespace")
    mount: str = Field("secret", min_length=1, description="Mount point of the KV engine")
    # Named `path` in playbooks; not a filesystem path, so not `path` in Python (the
    # confinement checks treat params called *path as workspace files).
    location: str = Field(
        ..., alias="path", min_length=1, description="Secret path inside the mount, e.g. app/db"
    )
    kv_version: Literal[1, 2] = Field(2, description="KV engine version: 1 or 2")
    ca_cert: str | None = Field(None, description="CA bundle (PEM file) to verify the server")
    verify: bool = Field(True, description="Verify the server's TLS certificate")
    timeout: float = Field(30.0, gt=0, description="Seconds per request")


class VaultApiError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KvClient:
    """A logged-in Vault session for one KV path (async; close it)."""

    def __init__(self, http: Any, params: KvParams) -> None:
        self.http = http
        self.params = params
        self.mount = params.mount.strip("/")
        self.path = params.location.strip("/")

    async def aclose(self) -> None:
        await self.http.aclose()

    def _url(self, kind: str) -> str:
        if self.params.kv_version == 1:
            return f"/v1/{self.mount}/{self.path}"
        return f"/v1/{self.mount}/{kind}/{self.path}"

    async def request(self, method: str, url: str, **kwargs: Any) -> Any:
        import httpx

        try:
            answer = await self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise VaultApiError(
                f"cannot reach Vault at {self.http.base_url}: {type(exc).__name__}: {exc}"
            ) from None
        if answer.status_code == 204:
            return None
        try:
            body = answer.json() if answer.content else None
        except ValueError:
            body = None
        if answer.status_code >= 400:
            errors = body.get("errors") if isinstance(body, dict) else None
            detail = "; ".join(str(e) for e in errors) if errors else answer.reason_phrase
            raise VaultApiError(
                f"{method} {url}: {answer.status_code} {detail}".rstrip(), answer.status_code
            )
        return body

    async def read(self, version: int | None = None) -> dict[str, Any] | None:
        """``{"data": ..., "metadata": ...}`` of the secret, or None when there is none."""
        query = (
            {"version": version} if version is not None and self.params.kv_version == 2 else None
        )
        try:
            body = await self.request("GET", self._url("data"), params=query)
        except VaultApiError as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise VaultApiError(f"unexpected answer from Vault for {self.describe()}")
        if self.params.kv_version == 1:
            return {"data": body["data"], "metadata": {}}
        inner = body["data"]
        if inner.get("data") is None:  # deleted (v2 keeps metadata)
            return None
        return {"data": inner["data"], "metadata": inner.get("metadata") or {}}

    async def write(self, data: dict[str, Any], cas: int | None = None) -> dict[str, Any]:
        if self.params.kv_version == 1:
            await self.request("POST", self._url("data"), json=data)
            return {}
        payload: dict[str, Any] = {"data": data}
        if cas is not None:
            payload["options"] = {"cas": cas}
        body = await self.request("POST", self._url("data"), json=payload)
        return dict(body.get("data") or {}) if isinstance(body, dict) else {}

    def describe(self) -> str:
        return f"{self.mount}/{self.path} (kv v{self.params.kv_version})"


async def kv_client(ctx: Any, params: KvParams) -> KvClient:
    """Check params, register the credentials as secrets, log in; the caller closes it."""
    import httpx

    url = params.url or os.environ.get("VAULT_ADDR")
    if not url:
        raise ctx.fail("no Vault address: set url, or VAULT_ADDR in the environment")
    if (params.role_id is None) != (params.secret_id is None):
        raise ctx.fail("AppRole login needs both role_id and secret_id")
    if params.role_id is not None and params.token is not None:
        raise ctx.fail("give either token or role_id/secret_id, not both")
    token = params.token
    if token is None and params.role_id is None:
        token = os.environ.get("VAULT_TOKEN")
        if not token:
            raise ctx.fail(
                "no Vault credentials: set token (or VAULT_TOKEN), or role_id and secret_id"
            )
    from gxo.modules.integration._crypto import register_secret

    for value in (token, params.secret_id):
        register_secret(ctx, value, data=True)
    verify: Any = params.verify
    if params.ca_cert:
        import ssl

        ca = ctx.resolve_path(params.ca_cert, param="ca_cert")
        try:
            verify = ssl.create_default_context(cafile=str(ca))
        except (OSError, ssl.SSLError) as exc:
            raise ctx.fail(f"cannot load ca_cert {ca}: {exc}") from None
    headers = {"X-Vault-Request": "true"}
    if params.namespace:
        headers["X-Vault-Namespace"] = params.namespace
    try:
        http = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers=headers, verify=verify, timeout=params.timeout
        )
    except (ValueError, TypeError) as exc:
        raise ctx.fail(f"invalid Vault url {url!r}: {exc}") from None
    client = KvClient(http, params)
    try:
        if token is None:
            body = await client.request(
                "POST",
                f"/v1/auth/{params.auth_mount.strip('/')}/login",
                json={"role_id": params.role_id, "secret_id": params.secret_id},
            )
            token = (
                (body or {}).get("auth", {}).get("client_token") if isinstance(body, dict) else None
            )
            if not token:
                raise VaultApiError("AppRole login answered without a client token")
            register_secret(ctx, token, data=True)
        http.headers["X-Vault-Token"] = token
    except VaultApiError as exc:
        await client.aclose()
        raise ctx.fail(f"Vault login failed: {exc}") from None
    except BaseException:
        await client.aclose()
        raise
    return client
