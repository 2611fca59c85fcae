"""``gcp:gcs_sync``: make a Google Cloud Storage prefix hold a local directory's files."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, register
from gxo.modules.integration._cloud_sync import (
    SYNC_SUMMARY,
    GcpAuthParams,
    SyncParams,
    api_error,
    gcp_token,
    make_plan,
)

DEFAULT_BASE_URL = "https://storage.googleapis.com"


@register("gcp:gcs_sync", layer="integration")
class GcpGcsSync(Module):
    """Upload the files of a local directory that differ from the objects under a prefix.

    Spoken over the Cloud Storage JSON API with httpx (no SDK): list
    (``GET /storage/v1/b/BUCKET/o``), upload (``POST /upload/storage/v1/b/BUCKET/o?uploadType=media``)
    and delete (``DELETE /storage/v1/b/BUCKET/o/NAME``). A file is unchanged when an
    object of the same size has the same MD5 (``md5Hash``). ``delete: true`` removes
    objects under the prefix without a local file; ``dry_run`` (and ``--check``) changes
    nothing. Credentials: ``token``, ``GOOGLE_OAUTH_ACCESS_TOKEN``, or a service-account
    key (``credentials_file`` / ``GOOGLE_APPLICATION_CREDENTIALS``) exchanged for a
    token at its ``token_uri``. ``base_url`` points at an emulator or a test server;
    the tests use a local HTTP server implementing these endpoints.

    Example:
        - name: publish
          process:
            module: gcp:gcs_sync
            params: { source: site/, bucket: www-example, prefix: v2/, delete: true }
    """

    class Params(SyncParams, GcpAuthParams):
        bucket: str = Field(..., min_length=3, max_length=222, description="Bucket name")
        base_url: str = Field(DEFAULT_BASE_URL, description="API base URL (an emulator in tests)")

    summary = {"bucket": "bucket name", "prefix": "object name prefix", **SYNC_SUMMARY}
    path_params = ("source", "credentials_file")
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
        prefix = params.prefix.lstrip("/")
        base = params.base_url.rstrip("/")
        bucket = quote(params.bucket, safe="")
        where = f"gs://{params.bucket}/{prefix}"
        async with httpx.AsyncClient(timeout=params.timeout) as http:
            token = await gcp_token(ctx, params, http)
            http.headers["Authorization"] = f"Bearer {token}"
            try:
                remote = await _list(ctx, http, f"{base}/storage/v1/b/{bucket}/o", prefix, where)
                plan = await ctx.to_thread(
                    make_plan,
                    root,
                    prefix,
                    remote,
                    delete=params.delete,
                    exclude_hidden=params.exclude_hidden,
                )
                if not dry_run:
                    await _apply(ctx, http, base, bucket, plan, where)
            except httpx.HTTPError as exc:
                raise ctx.fail(f"cannot sync to {where}: {type(exc).__name__}: {exc}") from None
        return plan.summary(dry_run, bucket=params.bucket, prefix=prefix)


async def _list(
    ctx: ModuleContext, http: Any, url: str, prefix: str, where: str
) -> dict[str, tuple[int, str | None]]:
    remote: dict[str, tuple[int, str | None]] = {}
    page: str | None = None
    while True:
        query = {"prefix": prefix, "fields": "items(name,size,md5Hash),nextPageToken"}
        if page:
            query["pageToken"] = page
        answer = await http.get(url, params=query)
        if answer.status_code != 200:
            raise ctx.fail(api_error(f"cannot list {where}", answer))
        body = answer.json()
        for item in body.get("items", []) or []:
            remote[item["name"]] = (int(item.get("size", -1)), item.get("md5Hash"))
        page = body.get("nextPageToken")
        if not page:
            return remote


async def _apply(
    ctx: ModuleContext, http: Any, base: str, bucket: str, plan: Any, where: str
) -> None:
    import mimetypes

    for key, path, _md5, _size in plan.upload:
        data = await ctx.to_thread(path.read_bytes)
        ctype = mimetypes.guess_type(key)[0] or "application/octet-stream"
        answer = await http.post(
            f"{base}/upload/storage/v1/b/{bucket}/o",
            params={"uploadType": "media", "name": key},
            content=data,
            headers={"Content-Type": ctype},
        )
        if answer.status_code not in (200, 201):
            raise ctx.fail(api_error(f"cannot upload {key} to {where}", answer))
    for key in plan.delete:
        answer = await http.delete(f"{base}/storage/v1/b/{bucket}/o/{quote(key, safe='')}")
        if answer.status_code not in (200, 204, 404):
            raise ctx.fail(api_error(f"cannot delete {key} from {where}", answer))
