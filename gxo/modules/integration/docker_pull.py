"""``docker:pull``: pull an image through the Docker Engine API."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, register
from gxo.modules.integration._docker import (
    DockerApiError,
    DockerParams,
    RegistryAuth,
    auth_header,
    engine,
    register_auth,
    split_image,
)


@register("docker:pull", layer="integration")
class DockerPull(Module):
    """Pull ``image`` (``repo:tag`` or ``repo@sha256:...``) into the engine.

    Talks to the Docker Engine API directly (``docker_host``: the unix socket by
    default, or ``$DOCKER_HOST``); progress messages are streamed to the log.
    ``changed`` is true when the local image id differs afterwards (a new image
    or a newer version of the tag). ``registry_auth`` logs in to a private
    registry; the password is a secret and never shown.

    Example:
        - name: base_image
          process:
            module: docker:pull
            params: { image: "python:3.12-slim" }
    """

    class Params(DockerParams):
        image: str = Field(
            ..., min_length=1, description="Image to pull: repo[:tag] or repo@digest"
        )
        platform: str | None = Field(None, description="Platform, e.g. linux/arm64")
        registry_auth: RegistryAuth | None = Field(
            None, description="{username, password, serveraddress}"
        )

    summary = {
        "image": "the image pulled",
        "id": "local image id",
        "digest": "repo digest (repo@sha256:...)",
        "changed": "false when the local image was already this one",
    }

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        register_auth(ctx, params.registry_auth)
        repo, tag = split_image(params.image)
        api = engine(ctx, params)
        try:
            return await pull(
                ctx, api, params.image, repo, tag, params.registry_auth, params.platform
            )
        except DockerApiError as exc:
            raise ctx.fail(f"cannot pull {params.image}: {exc}") from None
        finally:
            await api.aclose()


async def pull(
    ctx: ModuleContext,
    api: Any,
    image: str,
    repo: str,
    tag: str,
    auth: RegistryAuth | None,
    platform: str | None = None,
) -> dict[str, Any]:
    before = await api.image(image)
    query = {"fromImage": repo, "tag": tag}
    if platform:
        query["platform"] = platform

    def on_message(message: dict[str, Any]) -> None:
        status = message.get("status")
        if status and not message.get("progressDetail"):
            ident = message.get("id")
            ctx.log(f"{ident}: {status}" if ident else str(status))

    await api.stream("POST", "/images/create", on_message, params=query, headers=auth_header(auth))
    after = await api.image(image)
    if after is None:
        raise DockerApiError("the engine reported no error, but the image is not there")
    digests = after.get("RepoDigests") or []
    return {
        "image": image,
        "id": after.get("Id"),
        "digest": digests[0] if digests else None,
        "changed": before is None or before.get("Id") != after.get("Id"),
    }
