"""``gcp:gcs_sync``: make a Google Cloud Storage prefix hold a local directory's files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, register
from gxo.modules.integration._cloud_sync import (
    SYNC_SUMMARY,
    GcpAuthParams,
    SyncParams,
    gcp_call_errors,
    gcp_credentials,
    gcp_error,
    gcp_retry,
    load_libraries,
    make_plan,
)

DEFAULT_BASE_URL = "https://storage.googleapis.com"
# Listing, uploading and deleting need no project; the client wants one all the same
# (without it, it would look one up through Application Default Credentials).
_NO_PROJECT = "gxo-unused-project"


@register("gcp:gcs_sync", layer="integration")
class GcpGcsSync(Module):
    """Upload the files of a local directory that differ from the objects under a prefix.

    Through the official client library, google-cloud-storage (imported when the module
    runs; its blocking calls run in a worker thread): list the objects under the prefix,
    upload (with the file's MD5 checked by the service) and delete. A file is unchanged
    when an object of the same size has the same MD5 (``md5Hash``). ``delete: true``
    removes objects under the prefix without a local file; ``dry_run`` (and ``--check``)
    changes nothing. Credentials (google-auth): ``token`` (or ``GOOGLE_OAUTH_ACCESS_TOKEN``),
    ``credentials_file`` (or ``GOOGLE_APPLICATION_CREDENTIALS``: a service-account key, an
    authorized user ...), else Application Default Credentials; ``anonymous: true`` sends
    none (an emulator). ``base_url`` points the client at an emulator (the client also
    honours ``STORAGE_EMULATOR_HOST``). The tests run against gcp-storage-emulator
    (PyPI, pure Python) on loopback, with the service-account token exchange served by a
    local HTTP stand-in.

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
        root = ctx.resolve_path(params.source, param="source")
        if not await ctx.to_thread(root.is_dir):
            what = "is a file" if await ctx.to_thread(root.exists) else "does not exist"
            raise ctx.fail(f"param source: {root} {what} (expected a directory)")
        prefix = params.prefix.lstrip("/")
        where = f"gs://{params.bucket}/{prefix}"
        await load_libraries(ctx, "google-cloud-storage", "google.cloud.storage")
        credentials = await gcp_credentials(ctx, params, params.timeout)
        errors = gcp_call_errors()
        step = f"cannot list {where}"
        try:
            bucket = await ctx.to_thread(_bucket, credentials, params)
            remote = await ctx.to_thread(_list, bucket, prefix, params.timeout)
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
                    await ctx.to_thread(_upload, bucket, key, path, md5, params.timeout)
                for key in plan.delete:
                    step = f"cannot delete {key} from {where}"
                    await ctx.to_thread(_delete, bucket, key, params.timeout)
        except errors as exc:
            raise ctx.fail(ctx.redact(gcp_error(step, exc))) from None
        return plan.summary(dry_run, bucket=params.bucket, prefix=prefix)


def _bucket(credentials: Any, params: GcpGcsSync.Params) -> Any:
    from google.cloud import storage

    options = {"api_endpoint": params.base_url.rstrip("/")}
    client = storage.Client(project=_NO_PROJECT, credentials=credentials, client_options=options)
    return client.bucket(params.bucket)


def _list(bucket: Any, prefix: str, timeout: float) -> dict[str, tuple[int, str | None]]:
    remote: dict[str, tuple[int, str | None]] = {}
    for blob in bucket.list_blobs(prefix=prefix, timeout=timeout, retry=gcp_retry(timeout)):
        remote[blob.name] = (int(blob.size if blob.size is not None else -1), blob.md5_hash)
    return remote


def _upload(bucket: Any, key: str, path: Path, md5: str, timeout: float) -> None:
    import mimetypes

    blob = bucket.blob(key)
    blob.md5_hash = md5  # sent with the upload: the service refuses a body that differs
    ctype = mimetypes.guess_type(key)[0] or "application/octet-stream"
    blob.upload_from_filename(
        str(path), content_type=ctype, timeout=timeout, retry=gcp_retry(timeout)
    )


def _delete(bucket: Any, key: str, timeout: float) -> None:
    from google.api_core.exceptions import NotFound

    try:
        bucket.blob(key).delete(timeout=timeout, retry=gcp_retry(timeout))
    except NotFound:
        pass  # already gone: the goal holds
