"""``object_storage:manage_bucket``: make sure an S3 bucket exists, or does not."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, register
from gxo.modules.integration._s3 import (
    S3Params,
    bucket_field,
    describe_error,
    error_code,
    open_client,
)


@register("object_storage:manage_bucket", layer="integration")
class ObjectStorageManageBucket(Module):
    """Create or delete an S3 bucket, idempotently.

    ``state: present`` creates the bucket unless it exists (``changed: false``);
    ``state: absent`` deletes it if it exists. A bucket that still holds objects is
    only deleted with ``force: true``, which deletes its objects (and versions) first.
    Works with AWS and S3-compatible servers (MinIO, Ceph, moto) through
    ``endpoint_url``; credentials come from ``access_key``/``secret_key`` or the AWS
    chain (environment, profile, instance role).

    Example:
        - name: bucket
          process:
            module: object_storage:manage_bucket
            params:
              bucket: build-artifacts
              endpoint_url: http://127.0.0.1:9000
              access_key: minio
              secret_key: "{{ secret('MINIO_SECRET') }}"
    """

    class Params(S3Params):
        bucket: str = bucket_field()
        state: Literal["present", "absent"] = Field(
            "present", description="present: the bucket exists; absent: it does not"
        )
        force: bool = Field(False, description="state absent: delete the bucket's objects first")

    summary = {
        "bucket": "bucket name",
        "state": "present or absent (the state afterwards)",
        "changed": "false when the bucket was already in that state",
        "objects_deleted": "objects deleted first (state absent with force)",
    }

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        client = await open_client(ctx, params)
        try:
            return await ctx.to_thread(_manage, client, params)
        except _Failure as exc:
            raise ctx.fail(str(exc)) from None
        except Exception as exc:
            raise ctx.fail(describe_error(exc, f"bucket {params.bucket}")) from None
        finally:
            await ctx.to_thread(client.close)


class _Failure(Exception):
    pass


def _exists(client: Any, bucket: str) -> bool:
    try:
        client.head_bucket(Bucket=bucket)
        return True
    except Exception as exc:
        if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise


def _manage(client: Any, params: ObjectStorageManageBucket.Params) -> dict[str, Any]:
    bucket = params.bucket
    out: dict[str, Any] = {"bucket": bucket, "state": params.state, "changed": False}
    exists = _exists(client, bucket)
    if params.state == "present":
        if not exists:
            region = client.meta.region_name
            kwargs: dict[str, Any] = {"Bucket": bucket}
            if region and region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            client.create_bucket(**kwargs)
            out["changed"] = True
        return out
    if not exists:
        return out
    deleted = 0
    if params.force:
        deleted = _empty(client, bucket)
    try:
        client.delete_bucket(Bucket=bucket)
    except Exception as exc:
        if error_code(exc) == "BucketNotEmpty":
            raise _Failure(
                f"bucket {bucket} is not empty: set force: true to delete its objects first"
            ) from None
        raise
    out["changed"] = True
    out["objects_deleted"] = deleted
    return out


def _empty(client: Any, bucket: str) -> int:
    deleted = 0
    paginator = client.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket):
        keys = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            deleted += len(batch)
    return deleted
