"""``object_storage:get_object``: download an S3 object to a file, or read it as text."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, ReadsUnlessDest, register
from gxo.modules.integration._files import atomic_target
from gxo.modules.integration._s3 import (
    CHUNK,
    S3Params,
    bucket_field,
    describe_error,
    open_client,
    s3_uri,
)

DEFAULT_MAX_SIZE = 10 * 1024 * 1024


@register("object_storage:get_object", layer="integration")
class ObjectStorageGetObject(ReadsUnlessDest, Module):
    """Download an S3 object into ``dest``, or return it as text in the summary.

    With ``dest`` the object is streamed to a temporary file beside it and renamed
    over it when complete (a failed download leaves no partial file). Without
    ``dest`` the object is decoded as ``encoding`` text into the summary's
    ``content`` (at most ``max_size`` bytes: use ``dest`` for large or binary objects).

    Example:
        - name: fetch_config
          process:
            module: object_storage:get_object
            params: { bucket: configs, key: app/settings.json, endpoint_url: http://127.0.0.1:9000 }
    """

    class Params(S3Params):
        bucket: str = bucket_field()
        key: str = Field(..., min_length=1, max_length=1024, description="Object key")
        dest: str | None = Field(
            None, min_length=1, description="File to write; omit to get the content as text"
        )
        encoding: str = Field("utf-8", min_length=1, description="Text encoding (without dest)")
        max_size: int = Field(
            DEFAULT_MAX_SIZE, ge=0, description="Largest object read as text (without dest)"
        )

    summary = {
        "bucket": "bucket name",
        "key": "object key",
        "size": "object size in bytes",
        "etag": "ETag of the object",
        "content_type": "Content-Type of the object",
        "last_modified": "last modification time (ISO 8601)",
        "metadata": "user metadata (x-amz-meta-*)",
        "content": "the object as text (without dest)",
        "path": "absolute path of the written file (with dest)",
        "sha256": "SHA-256 (hex) of the downloaded bytes",
    }
    path_params = ("dest",)

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        try:
            "".encode(params.encoding)
        except LookupError:
            raise ctx.fail(f"unknown encoding '{params.encoding}'") from None
        dest = ctx.resolve_path(params.dest, param="dest") if params.dest else None
        client = await open_client(ctx, params)
        where = s3_uri(params.bucket, params.key)
        try:
            return await ctx.to_thread(_get, client, params, dest)
        except _Failure as exc:
            raise ctx.fail(f"{where}: {exc}") from None
        except OSError as exc:
            raise ctx.fail(f"cannot write dest {dest}: {exc.strerror or exc}") from None
        except Exception as exc:
            raise ctx.fail(describe_error(exc, f"cannot download {where}")) from None
        finally:
            await ctx.to_thread(client.close)


class _Failure(Exception):
    pass


def _get(client: Any, params: ObjectStorageGetObject.Params, dest: Path | None) -> dict[str, Any]:
    answer = client.get_object(Bucket=params.bucket, Key=params.key)
    body = answer["Body"]
    try:
        size = int(answer.get("ContentLength", 0))
        out: dict[str, Any] = {
            "bucket": params.bucket,
            "key": params.key,
            "size": size,
            "etag": str(answer.get("ETag", "")).strip('"'),
            "content_type": answer.get("ContentType"),
            "last_modified": _iso(answer.get("LastModified")),
            "metadata": dict(answer.get("Metadata") or {}),
        }
        sha = hashlib.sha256()
        if dest is None:
            if size > params.max_size:
                raise _Failure(
                    f"object is {size} bytes, more than max_size={params.max_size}: use dest"
                )
            data = body.read()
            sha.update(data)
            try:
                out["content"] = data.decode(params.encoding)
            except UnicodeDecodeError as exc:
                raise _Failure(
                    f"object is not valid {params.encoding} text (byte {exc.start}): set encoding, or use dest"
                ) from None
        else:
            with atomic_target(dest) as (fh, _temp):
                for chunk in body.iter_chunks(CHUNK):
                    sha.update(chunk)
                    fh.write(chunk)
            out["path"] = str(dest)
        out["sha256"] = sha.hexdigest()
        return out
    finally:
        body.close()


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
