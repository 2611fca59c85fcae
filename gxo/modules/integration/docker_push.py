"""``docker:push``: push an image to its registry through the Docker Engine API."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

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


@register("docker:push", layer="integration")
class DockerPush(Module):
    """Push ``image`` (``registry/repo:tag``) from the engine to its registry.

    Progress is streamed to the log. ``changed`` is false when the registry
    already had every layer ("Layer already exists") and the same digest.
    ``registry_auth`` carries the credentials (the password is a secret).

    Example:
        - name: publish
          process:
            module: docker:push
            params:
              image: registry.example.com/team/app:1.4.2
              registry_auth:
                username: ci
                password: "{{ secret('REGISTRY_TOKEN') }}"
    """

    class Params(DockerParams):
        image: str = Field(..., min_length=1, description="Image to push: registry/repo:tag")
        registry_auth: RegistryAuth | None = Field(
            None, description="{username, password, serveraddress}"
        )

    summary = {
        "image": "the image pushed",
        "digest": "the manifest digest the registry reported",
        "size": "manifest size reported",
        "changed": "false when the registry already had it all",
    }

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        register_auth(ctx, params.registry_auth)
        repo, tag = split_image(params.image)
        if tag.startswith("sha256:"):
            raise ctx.fail("push a tag (repo:tag), not a digest")
        api = engine(ctx, params)
        pushed = False
        aux: dict[str, Any] = {}

        def on_message(message: dict[str, Any]) -> None:
            nonlocal pushed
            status = str(message.get("status") or "")
            if message.get("aux"):
                aux.update(message["aux"])
            if status == "Pushed":
                pushed = True
            if status and not message.get("progressDetail"):
                ident = message.get("id")
                ctx.log(f"{ident}: {status}" if ident else status)

        try:
            if await api.image(params.image) is None:
                raise DockerApiError("no such image in the engine (build or tag it first)")
            await api.stream(
                "POST",
                f"/images/{quote(repo, safe='/:')}/push",
                on_message,
                params={"tag": tag},
                headers=auth_header(params.registry_auth) or {"X-Registry-Auth": "e30="},
            )
        except DockerApiError as exc:
            raise ctx.fail(f"cannot push {params.image}: {exc}") from None
        finally:
            await api.aclose()
        return {
            "image": params.image,
            "digest": aux.get("Digest"),
            "size": aux.get("Size"),
            "changed": pushed,
        }
