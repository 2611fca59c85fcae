"""``aws:s3_sync``: make an S3 prefix hold a local directory's files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, register
from gxo.modules.integration._cloud_sync import local_files
from gxo.modules.integration._s3 import (
    S3Params,
    bucket_field,
    describe_error,
    file_digests,
    head_object,
    open_client,
    remote_matches,
)
from gxo.modules.integration.object_storage_put_object import upload

MAX_LISTED = 1000  # keys listed in the summary per kind


@register("aws:s3_sync", layer="integration")
class AwsS3Sync(Module):
    """Upload the files of a local directory that differ from the objects under a prefix.

    Each file under ``source`` maps to ``prefix`` + its relative path (``/``-separated).
    A file is *unchanged* when an object of the same size already has its content: the
    SHA-256 GXO stores in the object's metadata (``gxo-sha256``) or else the MD5 ETag;
    an object whose ETag is a multipart one (``...-N``) and that has no ``gxo-sha256``
    is uploaded again. With ``delete: true`` objects under the prefix that have no
    local file are deleted. ``dry_run: true`` (and ``--check``) computes the same lists
    and changes nothing. Symbolic links are followed; hidden files are included
    unless ``exclude_hidden: true``.

    Example:
        - name: publish_site
          process:
            module: aws:s3_sync
            params:
              source: site/
              bucket: www-example
              prefix: v2/
              delete: true
    """

    class Params(S3Params):
        source: str = Field(..., min_length=1, description="Local directory to upload")
        bucket: str = bucket_field()
        prefix: str = Field("", description="Key prefix (e.g. site/); empty for the bucket's root")
        delete: bool = Field(False, description="Delete objects under prefix with no local file")
        dry_run: bool = Field(False, description="Compute the changes, make none")
        exclude_hidden: bool = Field(False, description="Skip files and directories named .*")
        content_type_guess: bool = Field(
            True, description="Set each object's Content-Type from its file name"
        )

    summary = {
        "bucket": "bucket name",
        "prefix": "key prefix",
        "uploaded": "number of files uploaded (or to upload, with dry_run)",
        "deleted": "number of objects deleted (or to delete)",
        "unchanged": "number of files already in place",
        "uploaded_keys": "keys uploaded (first 1000)",
        "deleted_keys": "keys deleted (first 1000)",
        "bytes_uploaded": "bytes uploaded (or to upload)",
        "dry_run": "true when nothing was changed (dry_run or --check)",
        "changed": "true when anything was (or would be) uploaded or deleted",
    }
    path_params = ("source",)
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
        client = await open_client(ctx, params)
        try:
            return await ctx.to_thread(_sync, client, root, params, prefix, dry_run)
        except OSError as exc:
            raise ctx.fail(f"cannot read {exc.filename or root}: {exc.strerror or exc}") from None
        except Exception as exc:
            raise ctx.fail(
                describe_error(exc, f"cannot sync to s3://{params.bucket}/{prefix}")
            ) from None
        finally:
            await ctx.to_thread(client.close)


def _remote_objects(client: Any, bucket: str, prefix: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []) or []:
            out[obj["Key"]] = obj
    return out


def _sync(
    client: Any, root: Path, params: AwsS3Sync.Params, prefix: str, dry_run: bool
) -> dict[str, Any]:
    import mimetypes

    local = local_files(root, params.exclude_hidden)
    remote = _remote_objects(client, params.bucket, prefix)
    uploaded: list[str] = []
    unchanged = 0
    size_total = 0
    for rel, path in local.items():
        key = prefix + rel
        md5_hex, sha_hex, size = file_digests(path)
        obj = remote.get(key)
        if obj is not None and int(obj.get("Size", -1)) == size:
            etag = str(obj.get("ETag", "")).strip('"')
            if etag == md5_hex:
                unchanged += 1
                continue
            if "-" in etag and remote_matches(
                head_object(client, params.bucket, key), md5_hex, sha_hex, size
            ):
                unchanged += 1
                continue
        uploaded.append(key)
        size_total += size
        if not dry_run:
            ctype = mimetypes.guess_type(rel)[0] if params.content_type_guess else None
            upload(client, params.bucket, key, path, None, sha_hex, content_type=ctype)
    deleted: list[str] = []
    if params.delete:
        wanted = {prefix + rel for rel in local}
        deleted = sorted(k for k in remote if k not in wanted)
        if deleted and not dry_run:
            for start in range(0, len(deleted), 1000):
                answer = client.delete_objects(
                    Bucket=params.bucket,
                    Delete={
                        "Objects": [{"Key": k} for k in deleted[start : start + 1000]],
                        "Quiet": True,
                    },
                )
                errors = answer.get("Errors") or []
                if errors:
                    first = errors[0]
                    raise RuntimeError(
                        f"cannot delete {first.get('Key')}: {first.get('Message') or first.get('Code')}"
                    )
    return {
        "bucket": params.bucket,
        "prefix": prefix,
        "uploaded": len(uploaded),
        "deleted": len(deleted),
        "unchanged": unchanged,
        "uploaded_keys": uploaded[:MAX_LISTED],
        "deleted_keys": deleted[:MAX_LISTED],
        "bytes_uploaded": size_total,
        "dry_run": dry_run,
        "changed": bool(uploaded or deleted),
    }
