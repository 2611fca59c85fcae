"""``azure:blob_sync``: make an Azure Blob Storage prefix hold a local directory's files."""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import quote, unquote

from pydantic import Field, model_validator

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, register
from gxo.modules.integration._cloud_sync import SYNC_SUMMARY, SyncParams, api_error, make_plan

API_VERSION = "2021-08-06"


@register("azure:blob_sync", layer="integration")
class AzureBlobSync(Module):
    """Upload the files of a local directory that differ from the blobs under a prefix.

    Over the Blob service REST API with httpx (no SDK): List Blobs, Put Blob (block
    blobs, with ``Content-MD5``) and Delete Blob. A file is unchanged when a blob of the
    same size has the same ``Content-MD5``. ``delete: true`` removes blobs under the
    prefix without a local file; ``dry_run`` (and ``--check``) changes nothing.
    Credentials: a ``sas_token`` (or ``$AZURE_STORAGE_SAS_TOKEN``) or an OAuth2 bearer
    ``token`` (or ``$AZURE_STORAGE_TOKEN``), both secrets. The tests use a local HTTP
    server implementing these three operations.

    Example:
        - name: publish
          process:
            module: azure:blob_sync
            params:
              source: site/
              account_url: https://myaccount.blob.core.windows.net
              container: web
              sas_token: "{{ secret('AZURE_SAS') }}"
    """

    class Params(SyncParams):
        account_url: str = Field(
            ...,
            min_length=8,
            description="https://ACCOUNT.blob.core.windows.net (or a test server)",
        )
        container: str = Field(..., min_length=3, max_length=63, description="Container name")
        sas_token: str | None = Field(None, description="Shared access signature (a secret)")
        token: str | None = Field(None, description="OAuth2 bearer token (a secret)")

        @model_validator(mode="after")
        def _one_credential(self) -> AzureBlobSync.Params:
            if self.sas_token is not None and self.token is not None:
                raise ValueError("give either sas_token or token, not both")
            return self

    summary = {"container": "container name", "prefix": "blob name prefix", **SYNC_SUMMARY}
    path_params = ("source",)
    check_mode = CheckMode.predict

    async def check(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        return await self._sync(ctx, params, dry_run=True)

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        return await self._sync(ctx, params, dry_run=params.dry_run)

    async def _sync(self, ctx: ModuleContext, params: Params, *, dry_run: bool) -> dict[str, Any]:
        import httpx

        root = ctx.resolve_path(params.source, param="source")
        if not await ctx.to_thread(root.is_dir):
            what = "is a file" if await ctx.to_thread(root.exists) else "does not exist"
            raise ctx.fail(f"param source: {root} {what} (expected a directory)")
        sas = params.sas_token
        token = params.token
        if sas is None and token is None:
            sas = os.environ.get("AZURE_STORAGE_SAS_TOKEN") or None
            token = None if sas else os.environ.get("AZURE_STORAGE_TOKEN") or None
        if sas is None and token is None:
            raise ctx.fail(
                "no Azure credentials: set sas_token (or AZURE_STORAGE_SAS_TOKEN) "
                "or token (or AZURE_STORAGE_TOKEN)"
            )
        sas = sas.lstrip("?") if sas else None
        for value in (sas, token, unquote(sas or "")):
            if value:
                ctx.run.secrets.add(value)
        # The signature is the secret part of a SAS; alone it is what error texts echo.
        if sas:
            sig = re.search(r"(?:^|&)sig=([^&]+)", sas)
            if sig:
                ctx.run.secrets.add(sig.group(1))
                ctx.run.secrets.add(unquote(sig.group(1)))
        headers = {"x-ms-version": API_VERSION}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        prefix = params.prefix.lstrip("/")
        base = f"{params.account_url.rstrip('/')}/{quote(params.container, safe='')}"
        where = f"{params.account_url.rstrip('/')}/{params.container}/{prefix}"
        async with httpx.AsyncClient(timeout=params.timeout, headers=headers) as http:
            try:
                remote = await _list(ctx, http, base, sas, prefix, where)
                plan = await ctx.to_thread(
                    make_plan,
                    root,
                    prefix,
                    remote,
                    delete=params.delete,
                    exclude_hidden=params.exclude_hidden,
                )
                if not dry_run:
                    await _apply(ctx, http, base, sas, plan, where)
            except httpx.HTTPError as exc:
                reason = ctx.redact(f"{type(exc).__name__}: {exc}")
                raise ctx.fail(f"cannot sync to {where}: {reason}") from None
        return plan.summary(dry_run, container=params.container, prefix=prefix)


def _url(base: str, name: str | None, sas: str | None, query: str = "") -> str:
    url = base if name is None else f"{base}/{quote(name)}"
    parts = [p for p in (query, sas) if p]
    return url + ("?" + "&".join(parts) if parts else "")


def _tag(block: str, name: str) -> str | None:
    found = re.search(rf"<{name}>([^<]*)</{name}>", block)
    return found.group(1) if found else None


async def _list(
    ctx: ModuleContext, http: Any, base: str, sas: str | None, prefix: str, where: str
) -> dict[str, tuple[int, str | None]]:
    from html import unescape

    remote: dict[str, tuple[int, str | None]] = {}
    marker = ""
    while True:
        query = f"restype=container&comp=list&prefix={quote(prefix, safe='')}"
        if marker:
            query += f"&marker={quote(marker, safe='')}"
        answer = await http.get(_url(base, None, sas, query))
        if answer.status_code != 200:
            raise ctx.fail(ctx.redact(api_error(f"cannot list {where}", answer)))
        text = answer.text
        for block in re.findall(r"<Blob>(.*?)</Blob>", text, re.S):
            name = _tag(block, "Name")
            if name is None:
                continue
            size = _tag(block, "Content-Length")
            md5 = _tag(block, "Content-MD5") or None
            remote[unescape(name)] = (int(size) if size else -1, md5)
        marker = unescape(_tag(text, "NextMarker") or "")
        if not marker:
            return remote


async def _apply(
    ctx: ModuleContext, http: Any, base: str, sas: str | None, plan: Any, where: str
) -> None:
    import mimetypes

    for key, path, md5, _size in plan.upload:
        data = await ctx.to_thread(path.read_bytes)
        ctype = mimetypes.guess_type(key)[0] or "application/octet-stream"
        answer = await http.put(
            _url(base, key, sas),
            content=data,
            headers={
                "x-ms-blob-type": "BlockBlob",
                "Content-MD5": md5,
                "x-ms-blob-content-md5": md5,
                "x-ms-blob-content-type": ctype,
            },
        )
        if answer.status_code not in (200, 201):
            raise ctx.fail(ctx.redact(api_error(f"cannot upload {key} to {where}", answer)))
    for key in plan.delete:
        answer = await http.delete(_url(base, key, sas))
        if answer.status_code not in (200, 202, 404):
            raise ctx.fail(ctx.redact(api_error(f"cannot delete {key} from {where}", answer)))
