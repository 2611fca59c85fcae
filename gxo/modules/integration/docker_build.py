"""``docker:build``: build an image from a workspace directory through the Docker Engine API."""

from __future__ import annotations

import fnmatch
import json
import os
import tarfile
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, register
from gxo.modules.integration._docker import DockerApiError, DockerParams, engine

CHUNK = 1 << 20


@register("docker:build", layer="integration")
class DockerBuild(Module):
    """Build an image from ``context`` (a directory) and tag it.

    The context is sent to the engine as a tar (``.dockerignore`` patterns are
    honoured: ``*``/``?`` globs, ``**`` and ``!`` exceptions, the last match wins),
    the build output is streamed to the log, and a build error fails the workload
    with the engine's message. ``changed`` is false when the first tag already
    pointed at the resulting image id (a fully cached rebuild).

    Example:
        - name: image
          process:
            module: docker:build
            params:
              context: app/
              tag: [registry.example.com/team/app:1.4.2, registry.example.com/team/app:latest]
              build_args: { VERSION: "1.4.2" }
    """

    class Params(DockerParams):
        context: str = Field(".", min_length=1, description="Build context directory")
        dockerfile: str = Field(
            "Dockerfile", min_length=1, description="Dockerfile, relative to context"
        )
        tag: str | list[str] = Field(..., description="Tag(s) for the image: repo:tag")
        build_args: dict[str, str] = Field(default_factory=dict, description="--build-arg values")
        labels: dict[str, str] = Field(default_factory=dict, description="Image labels")
        target: str | None = Field(None, min_length=1, description="Build stage to stop at")
        nocache: bool = Field(False, description="Do not use the build cache")
        pull: bool = Field(False, description="Always pull newer base images")
        platform: str | None = Field(None, description="Target platform, e.g. linux/amd64")

    summary = {
        "id": "the built image id",
        "tags": "tags given to it",
        "changed": "false when the first tag already pointed at this image",
    }
    path_params = ("context",)

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        tags = [params.tag] if isinstance(params.tag, str) else list(params.tag)
        if not tags:
            raise ctx.fail("give at least one tag")
        context = ctx.resolve_path(params.context, param="context")
        if not await ctx.to_thread(context.is_dir):
            raise ctx.fail(f"context {context} is not a directory")
        if not await ctx.to_thread((context / params.dockerfile).is_file):
            raise ctx.fail(f"no {params.dockerfile} in context {context}")
        for value in params.build_args.values():
            if ctx.run.secrets.is_secret(value):
                ctx.log(
                    "a build arg holds a secret: it stays in the image history", level="warning"
                )
        query: list[tuple[str, str]] = [("t", t) for t in tags]
        query += [("dockerfile", params.dockerfile), ("rm", "1")]
        if params.build_args:
            query.append(("buildargs", json.dumps(params.build_args)))
        if params.labels:
            query.append(("labels", json.dumps(params.labels)))
        if params.target:
            query.append(("target", params.target))
        if params.nocache:
            query.append(("nocache", "1"))
        if params.pull:
            query.append(("pull", "1"))
        if params.platform:
            query.append(("platform", params.platform))
        archive = await ctx.to_thread(_tar_context, context)
        api = engine(ctx, params)
        built: dict[str, str] = {}

        def on_message(message: dict[str, Any]) -> None:
            text = message.get("stream")
            if isinstance(text, str) and text.strip():
                for line in text.rstrip("\n").splitlines():
                    ctx.log(line)
            aux = message.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                built["id"] = str(aux["ID"])
            status = message.get("status")
            if status and not message.get("progressDetail"):
                ctx.log(str(status))

        try:
            before = await api.image(tags[0])
            await api.stream(
                "POST",
                "/build",
                on_message,
                params=query,
                headers={"Content-Type": "application/x-tar"},
                content=_chunks(ctx, archive),
            )
            after = await api.image(tags[0])
        except DockerApiError as exc:
            raise ctx.fail(f"docker build of {context} failed: {exc}") from None
        finally:
            await api.aclose()
            await ctx.to_thread(archive.close)
        image_id = built.get("id") or (after or {}).get("Id")
        return {
            "id": image_id,
            "tags": tags,
            "changed": before is None or before.get("Id") != image_id,
        }


async def _chunks(ctx: ModuleContext, archive: IO[bytes]) -> AsyncIterator[bytes]:
    await ctx.to_thread(archive.seek, 0)
    while chunk := await ctx.to_thread(archive.read, CHUNK):
        yield chunk


def _ignore_patterns(context: Path) -> list[tuple[bool, str]]:
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        out.append((negate, pattern))
    return out


def _ignored(rel: str, patterns: list[tuple[bool, str]]) -> bool:
    result = False
    for negate, pattern in patterns:
        if _match(rel, pattern):
            result = not negate
    return result


def _match(rel: str, pattern: str) -> bool:
    if fnmatch.fnmatchcase(rel, pattern) or fnmatch.fnmatchcase(rel, pattern.replace("**/", "")):
        return True
    # a pattern naming a directory excludes everything below it
    parts = rel.split("/")
    return any(fnmatch.fnmatchcase("/".join(parts[:i]), pattern) for i in range(1, len(parts)))


def _tar_context(context: Path) -> IO[bytes]:
    """The build context as an uncompressed tar in a temporary file (blocking)."""
    patterns = _ignore_patterns(context)
    always = {"Dockerfile", ".dockerignore"}
    archive = tempfile.TemporaryFile()  # noqa: SIM115 - returned open, closed by the caller
    try:
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for root, dirs, files in os.walk(context):
                dirs.sort()
                for name in sorted(files) + [
                    d for d in dirs if os.path.islink(os.path.join(root, d))
                ]:
                    full = Path(root) / name
                    rel = full.relative_to(context).as_posix()
                    if rel not in always and _ignored(rel, patterns):
                        continue
                    tar.add(full, arcname=rel, recursive=False)
                dirs[:] = [
                    d
                    for d in dirs
                    if not os.path.islink(os.path.join(root, d))
                    and not (
                        _ignored(Path(root, d).relative_to(context).as_posix(), patterns)
                        and not _has_exception(patterns)
                    )
                ]
    except BaseException:
        archive.close()
        raise
    return archive


def _has_exception(patterns: list[tuple[bool, str]]) -> bool:
    return any(negate for negate, _ in patterns)
