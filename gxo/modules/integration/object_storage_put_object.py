"""``object_storage:put_object``: upload a file or text to S3, skipped when already there."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, register
from gxo.modules.integration._s3 import (
    SHA256_META,
    S3Params,
    bucket_field,
    bytes_digests,
    describe_error,
    file_digests,
    head_object,
    open_client,
    remote_matches,
    s3_uri,
)


@register("object_storage:put_object", layer="integration")
class ObjectStoragePutObject(Module):
    """Upload a local file (``src``) or text (``content``) to an S3 object.

    Idempotent: before uploading, the object's metadata is read; when it already
    holds exactly these bytes (the SHA-256 GXO stores in the object's metadata as
    ``gxo-sha256``, or else the plain MD5 ETag) nothing is sent and the summary
    says ``changed: false``. Large files go up as a multipart upload (boto3's
    transfer manager). Non-string ``content`` (a mapping from a template) is
    uploaded as JSON.

    Example:
        - name: upload_report
          process:
            module: object_storage:put_object
            params:
              bucket: reports
              key: "daily/{{ _gxo.run_id }}.json"
              src: out/report.json
              content_type: application/json
              endpoint_url: http://127.0.0.1:9000
    """

    class Params(S3Params):
        bucket: str = bucket_field()
        key: str = Field(..., min_length=1, max_length=1024, description="Object key")
        src: str | None = Field(None, min_length=1, description="Local file to upload")
        content: Any = Field(
            None, description="Text to upload instead of src (non-strings as JSON)"
        )
        content_type: str | None = Field(None, description="Content-Type of the object")
        metadata: dict[str, str] = Field(
            default_factory=dict, description="User metadata (x-amz-meta-*)"
        )

        @model_validator(mode="after")
        def _one_source(self) -> ObjectStoragePutObject.Params:
            if (self.src is None) == (self.content is None):
                raise ValueError("give exactly one of src (a file) or content (text)")
            return self

    summary = {
        "bucket": "bucket name",
        "key": "object key",
        "location": "s3://bucket/key",
        "size": "object size in bytes",
        "etag": "ETag of the object",
        "sha256": "SHA-256 (hex) of the content",
        "changed": "false when the object already had this content (nothing uploaded)",
    }
    path_params = ("src",)

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        data: bytes | None = None
        path: Path | None = None
        if params.src is not None:
            path = ctx.resolve_path(params.src, param="src")
            if not await ctx.to_thread(path.is_file):
                what = "is a directory" if await ctx.to_thread(path.is_dir) else "does not exist"
                raise ctx.fail(f"cannot upload src {path}: {what}")
            md5_hex, sha_hex, size = await ctx.to_thread(file_digests, path)
        else:
            data = _as_bytes(params.content)
            md5_hex, sha_hex, size = bytes_digests(data)
        client = await open_client(ctx, params)
        try:
            return await ctx.to_thread(_put, client, params, path, data, (md5_hex, sha_hex, size))
        except OSError as exc:
            raise ctx.fail(f"cannot read src {path}: {exc.strerror or exc}") from None
        except Exception as exc:
            raise ctx.fail(
                describe_error(exc, f"cannot upload {s3_uri(params.bucket, params.key)}")
            ) from None
        finally:
            await ctx.to_thread(client.close)


def _as_bytes(content: Any) -> bytes:
    import json

    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode("utf-8")
    return json.dumps(content, indent=2, ensure_ascii=False, default=str).encode("utf-8")


def upload(
    client: Any,
    bucket: str,
    key: str,
    path: Path | None,
    data: bytes | None,
    sha_hex: str,
    *,
    content_type: str | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Upload a file (multipart when large) or bytes, storing the SHA-256 in the metadata."""
    meta = {**(metadata or {}), SHA256_META: sha_hex}
    extra: dict[str, Any] = {"Metadata": meta}
    if content_type:
        extra["ContentType"] = content_type
    if path is not None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=64 * 1024 * 1024, use_threads=False)
        client.upload_file(os.fspath(path), bucket, key, ExtraArgs=extra, Config=config)
    else:
        client.put_object(Bucket=bucket, Key=key, Body=data or b"", **extra)


def _put(
    client: Any,
    params: ObjectStoragePutObject.Params,
    path: Path | None,
    data: bytes | None,
    digests: tuple[str, str, int],
) -> dict[str, Any]:
    md5_hex, sha_hex, size = digests
    out: dict[str, Any] = {
        "bucket": params.bucket,
        "key": params.key,
        "location": s3_uri(params.bucket, params.key),
        "size": size,
        "sha256": sha_hex,
    }
    head = head_object(client, params.bucket, params.key)
    if remote_matches(head, md5_hex, sha_hex, size):
        assert head is not None
        return {**out, "etag": str(head.get("ETag", "")).strip('"'), "changed": False}
    upload(
        client,
        params.bucket,
        params.key,
        path,
        data,
        sha_hex,
        content_type=params.content_type,
        metadata=params.metadata,
    )
    head = head_object(client, params.bucket, params.key) or {}
    return {**out, "etag": str(head.get("ETag", "")).strip('"'), "changed": True}
