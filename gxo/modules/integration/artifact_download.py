"""``artifact:download``: fetch an artifact by its handle and verify its checksum."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, register
from gxo.modules.integration._artifact import ArtifactHandle, parse_location
from gxo.modules.integration._files import atomic_target
from gxo.modules.integration._s3 import CHUNK, S3Params, describe_error, open_client


@register("artifact:download", layer="integration")
class ArtifactDownload(Module):
    """Download the file an artifact handle points to, verifying its SHA-256.

    ``handle`` is the summary of ``artifact:upload`` (``{name, version, checksum,
    location, size}``), typically ``"{{ app_artifact }}"``. The file is streamed to
    a temporary file beside ``dest`` while it is hashed; only when size and
    SHA-256 match the handle is it renamed to ``dest``. A mismatch fails the
    workload and leaves no file behind. When ``dest`` is an existing directory
    (or ends with ``/``) the file keeps its stored name inside it. A ``dest`` that
    already holds the right bytes is left alone (``changed: false``).

    Example:
        - name: fetch
          process:
            module: artifact:download
            params:
              handle: "{{ app_artifact }}"
              dest: deploy/
              endpoint_url: http://127.0.0.1:9000
    """

    class Params(S3Params):
        handle: dict[str, Any] = Field(
            ...,
            description="Artifact handle from artifact:upload {name, version, checksum, location, size}",
        )
        dest: str = Field(..., min_length=1, description="File (or directory/) to write")

    summary = {
        "name": "artifact name",
        "version": "artifact version",
        "checksum": "verified SHA-256 (hex)",
        "size": "size in bytes",
        "path": "absolute path of the downloaded file",
        "changed": "false when dest already held exactly this file",
    }
    path_params = ("dest",)

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        try:
            handle = ArtifactHandle.model_validate(params.handle)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'handle'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ctx.fail(f"handle is not an artifact handle: {problems}") from None
        bucket, key = parse_location(handle.location)
        dest = ctx.resolve_path(params.dest, param="dest")
        if params.dest.endswith(("/", os.sep)) or await ctx.to_thread(dest.is_dir):
            dest = dest / key.rsplit("/", 1)[-1]
        out = {
            "name": handle.name,
            "version": handle.version,
            "checksum": handle.checksum,
            "size": handle.size,
            "path": str(dest),
        }
        if await ctx.to_thread(_matches, dest, handle):
            return {**out, "changed": False}
        client = await open_client(ctx, params)
        try:
            await ctx.to_thread(_download, client, bucket, key, dest, handle)
        except _Mismatch as exc:
            raise ctx.fail(f"artifact {handle.name} {handle.version}: {exc}") from None
        except OSError as exc:
            raise ctx.fail(f"cannot write dest {dest}: {exc.strerror or exc}") from None
        except Exception as exc:
            raise ctx.fail(describe_error(exc, f"cannot download {handle.location}")) from None
        finally:
            await ctx.to_thread(client.close)
        ctx.log(f"downloaded {handle.location} to {dest} (sha256 verified)")
        return {**out, "changed": True}


class _Mismatch(Exception):
    pass


def _matches(dest: Path, handle: ArtifactHandle) -> bool:
    with contextlib.suppress(OSError):
        if dest.is_file() and dest.stat().st_size == handle.size:
            sha = hashlib.sha256()
            with dest.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    sha.update(chunk)
            return sha.hexdigest() == handle.checksum
    return False


def _download(client: Any, bucket: str, key: str, dest: Path, handle: ArtifactHandle) -> None:
    answer = client.get_object(Bucket=bucket, Key=key)
    body = answer["Body"]
    try:
        with atomic_target(dest) as (fh, _temp):
            sha = hashlib.sha256()
            size = 0
            for chunk in body.iter_chunks(CHUNK):
                sha.update(chunk)
                size += len(chunk)
                fh.write(chunk)
            got = sha.hexdigest()
            if got != handle.checksum or size != handle.size:
                raise _Mismatch(
                    f"checksum mismatch for {handle.location}: expected sha256 {handle.checksum} "
                    f"({handle.size} bytes), got {got} ({size} bytes); nothing was written"
                )
    finally:
        body.close()
