"""``artifact:upload``: store a workspace file as a versioned, checksummed artifact."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, register
from gxo.modules.integration._s3 import (
    SHA256_META,
    S3Params,
    bucket_field,
    describe_error,
    file_digests,
    head_object,
    open_client,
    s3_uri,
)
from gxo.modules.integration.object_storage_put_object import upload

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@register("artifact:upload", layer="integration")
class ArtifactUpload(Module):
    """Upload a file as artifact ``name`` at ``version``; the summary is its handle.

    The file is stored in the S3 bucket at ``<prefix>/<name>/<version>/<file name>``
    with its SHA-256 in the object's metadata, and the summary is the **artifact
    handle** ``{name, version, checksum, location, size}`` (``checksum`` is the
    SHA-256 in hex, ``location`` is ``s3://bucket/key``), which ``artifact:download``
    takes to fetch and verify the file. Uploading the same bytes again is a no-op
    (``changed: false``); a version is immutable, so different bytes under an
    existing name and version fail unless ``overwrite: true``.

    Example:
        - name: package
          process:
            module: artifact:upload
            params:
              src: dist/app.tar.gz
              name: app
              version: "1.4.2"
              bucket: artifacts
              endpoint_url: http://127.0.0.1:9000
          register: app_artifact
    """

    class Params(S3Params):
        src: str = Field(..., min_length=1, description="Workspace file to upload")
        name: str = Field(..., min_length=1, max_length=200, description="Artifact name")
        version: str = Field(..., min_length=1, max_length=128, description="Artifact version")
        bucket: str = bucket_field("Bucket holding the artifacts")
        prefix: str = Field("", description="Key prefix, e.g. artifacts/")
        overwrite: bool = Field(
            False, description="Replace an existing version whose content differs"
        )

        @field_validator("version", "name", mode="before")
        @classmethod
        def _text(cls, value: Any) -> Any:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return str(value)
            return value

        @field_validator("version", "name")
        @classmethod
        def _segment(cls, value: str) -> str:
            if not _SEGMENT.match(value):
                raise ValueError(
                    f"{value!r}: use letters, digits, '.', '_', '+', '-' (no slashes or spaces)"
                )
            return value

    summary = {
        "name": "artifact name",
        "version": "artifact version",
        "checksum": "SHA-256 of the file (hex)",
        "location": "s3://bucket/key where it is stored",
        "size": "size in bytes",
        "changed": "false when this exact file was already stored there",
    }
    path_params = ("src",)

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        path = ctx.resolve_path(params.src, param="src")
        if not await ctx.to_thread(path.is_file):
            what = "is a directory" if await ctx.to_thread(path.is_dir) else "does not exist"
            raise ctx.fail(f"cannot upload src {path}: {what} (artifact:upload takes one file)")
        try:
            _md5, sha_hex, size = await ctx.to_thread(file_digests, path)
        except OSError as exc:
            raise ctx.fail(f"cannot read src {path}: {exc.strerror or exc}") from None
        prefix = params.prefix.strip("/")
        key = "/".join(p for p in (prefix, params.name, params.version, path.name) if p)
        handle = {
            "name": params.name,
            "version": params.version,
            "checksum": sha_hex,
            "location": s3_uri(params.bucket, key),
            "size": size,
        }
        client = await open_client(ctx, params)
        try:
            changed = await ctx.to_thread(_store, client, params, key, path, sha_hex, size)
        except _Conflict as exc:
            raise ctx.fail(str(exc)) from None
        except Exception as exc:
            raise ctx.fail(
                describe_error(exc, f"cannot upload artifact to {handle['location']}")
            ) from None
        finally:
            await ctx.to_thread(client.close)
        if changed:
            ctx.log(f"uploaded {path.name} ({size} bytes) to {handle['location']}")
        return {**handle, "changed": changed}


class _Conflict(Exception):
    pass


def _store(
    client: Any,
    params: ArtifactUpload.Params,
    key: str,
    path: Path,
    sha_hex: str,
    size: int,
) -> bool:
    head = head_object(client, params.bucket, key)
    if head is not None:
        meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
        stored = meta.get(SHA256_META)
        if stored == sha_hex and int(head.get("ContentLength", -1)) == size:
            return False
        if not params.overwrite:
            raise _Conflict(
                f"artifact {params.name} {params.version} already exists at "
                f"{s3_uri(params.bucket, key)} with different content "
                "(versions are immutable: bump version, or set overwrite: true)"
            )
    upload(
        client,
        params.bucket,
        key,
        path,
        None,
        sha_hex,
        metadata={"gxo-artifact": params.name, "gxo-version": params.version},
    )
    return True
