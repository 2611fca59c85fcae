"""``object_storage:delete_object``: delete an S3 object (no change when it is absent)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, register
from gxo.modules.integration._s3 import (
    S3Params,
    bucket_field,
    describe_error,
    head_object,
    open_client,
    s3_uri,
)


@register("object_storage:delete_object", layer="integration")
class ObjectStorageDeleteObject(Module):
    """Delete one S3 object; ``changed: false`` when there was no such object.

    Example:
        - name: drop_old_report
          process:
            module: object_storage:delete_object
            params: { bucket: reports, key: daily/old.json, endpoint_url: http://127.0.0.1:9000 }
    """

    class Params(S3Params):
        bucket: str = bucket_field()
        key: str = Field(..., min_length=1, max_length=1024, description="Object key")

    summary = {
        "bucket": "bucket name",
        "key": "object key",
        "changed": "false when the object did not exist",
    }

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        client = await open_client(ctx, params)
        try:
            return await ctx.to_thread(_delete, client, params)
        except Exception as exc:
            raise ctx.fail(
                describe_error(exc, f"cannot delete {s3_uri(params.bucket, params.key)}")
            ) from None
        finally:
            await ctx.to_thread(client.close)


def _delete(client: Any, params: ObjectStorageDeleteObject.Params) -> dict[str, Any]:
    out = {"bucket": params.bucket, "key": params.key, "changed": False}
    if head_object(client, params.bucket, params.key) is None:
        return out
    client.delete_object(Bucket=params.bucket, Key=params.key)
    out["changed"] = True
    return out
