"""``azure:blob_sync``: make an Azure Blob Storage prefix hold a local directory's files."""

from __future__ import annotations

import base64
import os
import re
from typing import Any
from urllib.parse import unquote

from pydantic import Field, model_validator

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, register
from gxo.modules.integration._cloud_sync import (
    SYNC_SUMMARY,
    StaticToken,
    SyncParams,
    azure_error,
    load_libraries,
    make_plan,
)


@register("azure:blob_sync", layer="integration")
class AzureBlobSync(Module):
    """Upload the files of a local directory that differ from the blobs under a prefix.

    Through the official client library, azure-storage-blob (its asyncio client;
    imported when the module runs): list the blobs under the prefix, upload block blobs
    (with ``Content-MD5``, checked by the service) and delete; a transient failure is
    retried 3 times within about 10 s. A file is unchanged when a
    blob of the same size has the same ``Content-MD5``. ``delete: true`` removes blobs
    under the prefix without a local file; ``dry_run`` (and ``--check``) changes nothing.
    Credentials: a ``sas_token`` (or ``$AZURE_STORAGE_SAS_TOKEN``) or an OAuth2 bearer
    ``token`` (or ``$AZURE_STORAGE_TOKEN``; HTTPS only), both secrets. The tests run
    against Azurite (the storage emulator, from npm) on loopback.

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
        await load_libraries(
            ctx,
            "azure-storage-blob[aio]",
            "aiohttp",
            "azure.core.exceptions",
            "azure.storage.blob",
            "azure.storage.blob.aio",
        )
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
        prefix = params.prefix.lstrip("/")
        where = f"{params.account_url.rstrip('/')}/{params.container}/{prefix}"
        from azure.core.exceptions import AzureError
        from azure.storage.blob.aio import ContainerClient

        credential: Any = sas if sas else StaticToken(token or "")
        step = f"cannot list {where}"
        try:
            client = ContainerClient(
                params.account_url.rstrip("/"),
                params.container,
                credential=credential,
                connection_timeout=params.timeout,
                read_timeout=params.timeout,
                # transient failures: 3 retries after ~1, 3 and 5 s (the library's
                # default waits 15 s and more between them)
                retry_total=3,
                initial_backoff=1,
                increment_base=2,
            )
            async with client:
                remote = await _list(client, prefix)
                plan = await ctx.to_thread(
                    make_plan,
                    root,
                    prefix,
                    remote,
                    delete=params.delete,
                    exclude_hidden=params.exclude_hidden,
                )
                if not dry_run:
                    for key, path, md5, _size in plan.upload:
                        step = f"cannot upload {key} to {where}"
                        await _upload(ctx, client, key, path, md5)
                    for key in plan.delete:
                        step = f"cannot delete {key} from {where}"
                        await _delete(client, key)
        except (AzureError, ValueError, OSError) as exc:
            raise ctx.fail(ctx.redact(azure_error(step, exc))) from None
        return plan.summary(dry_run, container=params.container, prefix=prefix)


async def _list(client: Any, prefix: str) -> dict[str, tuple[int, str | None]]:
    remote: dict[str, tuple[int, str | None]] = {}
    async for blob in client.list_blobs(name_starts_with=prefix or None):
        md5 = blob.content_settings.content_md5 if blob.content_settings else None
        remote[blob.name] = (
            int(blob.size if blob.size is not None else -1),
            base64.b64encode(bytes(md5)).decode() if md5 else None,
        )
    return remote


async def _upload(ctx: ModuleContext, client: Any, key: str, path: Any, md5: str) -> None:
    import mimetypes

    from azure.storage.blob import ContentSettings

    data = await ctx.to_thread(path.read_bytes)
    settings = ContentSettings(
        content_type=mimetypes.guess_type(key)[0] or "application/octet-stream",
        content_md5=bytearray(base64.b64decode(md5)),
    )
    await client.upload_blob(
        key,
        data,
        blob_type="BlockBlob",
        overwrite=True,
        content_settings=settings,
        validate_content=True,
    )


async def _delete(client: Any, key: str) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        await client.delete_blob(key)
    except ResourceNotFoundError:
        pass  # already gone: the goal holds
