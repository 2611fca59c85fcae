"""``object_storage:list_objects``: stream one record per object of an S3 bucket."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.errors import GxoError
from gxo.modules.base import CheckMode, Module, register
from gxo.modules.integration._s3 import S3Params, bucket_field, describe_error, open_client


@register("object_storage:list_objects", layer="integration")
class ObjectStorageListObjects(Module):
    """List the objects of a bucket (under ``prefix``) as a stream of records.

    Each record is ``{key, size, etag, last_modified}``. Pages of ``page_size``
    keys (at most 1000, the S3 maximum) are fetched one at a time as the stream is
    consumed, so a bucket of millions of objects is listed in constant memory.
    ``max_objects`` stops early.

    Example:
        - name: reports
          process:
            module: object_storage:list_objects
            params: { bucket: reports, prefix: daily/, endpoint_url: http://127.0.0.1:9000 }
        - name: big_ones
          process:
            module: data:filter
            params: { condition: "record.size > 1000000" }
          stream_inputs: [reports]
    """

    class Params(S3Params):
        bucket: str = bucket_field()
        prefix: str = Field("", description="Only keys starting with this")
        page_size: int = Field(1000, ge=1, le=1000, description="Keys fetched per request")
        max_objects: int | None = Field(None, ge=0, description="Stop after this many objects")

    produces = True
    summary = {
        "bucket": "bucket name",
        "prefix": "the prefix listed",
        "count": "objects streamed",
        "pages": "list requests made",
        "truncated": "true when max_objects stopped the listing early",
    }

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        client = await open_client(ctx, params)
        count = pages = 0
        truncated = False
        token: str | None = None
        try:
            while True:
                page = await ctx.to_thread(_page, client, params, token)
                pages += 1
                for item in page.get("Contents", []):
                    if params.max_objects is not None and count >= params.max_objects:
                        truncated = True
                        break
                    await ctx.emit(_record(item))
                    count += 1
                token = page.get("NextContinuationToken")
                if truncated or not (page.get("IsTruncated") and token):
                    break
                if params.max_objects is not None and count >= params.max_objects:
                    truncated = True
                    break
        except GxoError:
            raise
        except Exception as exc:
            raise ctx.fail(
                describe_error(exc, f"cannot list s3://{params.bucket}/{params.prefix}"),
                summary={"bucket": params.bucket, "prefix": params.prefix, "count": count},
            ) from None
        finally:
            await ctx.to_thread(client.close)
        return {
            "bucket": params.bucket,
            "prefix": params.prefix,
            "count": count,
            "pages": pages,
            "truncated": truncated,
        }


def _page(
    client: Any, params: ObjectStorageListObjects.Params, token: str | None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "Bucket": params.bucket,
        "Prefix": params.prefix,
        "MaxKeys": params.page_size,
    }
    if token:
        kwargs["ContinuationToken"] = token
    return dict(client.list_objects_v2(**kwargs))


def _record(item: dict[str, Any]) -> dict[str, Any]:
    modified = item.get("LastModified")
    return {
        "key": item["Key"],
        "size": int(item.get("Size", 0)),
        "etag": str(item.get("ETag", "")).strip('"'),
        "last_modified": modified.isoformat() if modified is not None else None,
    }
