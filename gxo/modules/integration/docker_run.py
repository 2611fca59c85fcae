"""``docker:run``: run a container through the Docker Engine API."""

from __future__ import annotations

import struct
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, register
from gxo.modules.integration._docker import (
    DockerApiError,
    DockerParams,
    RegistryAuth,
    engine,
    register_auth,
    split_image,
)
from gxo.modules.integration.docker_pull import pull

MAX_OUTPUT = 1_000_000


@register("docker:run", layer="integration")
class DockerRun(Module):
    """Run ``command`` in a container of ``image``.

    By default the container runs to completion: its exit code, stdout and stderr
    are in the summary, a non-zero exit fails the workload, and the container is
    removed afterwards (``remove: false`` keeps it). With ``detach: true`` the
    container is started and left running; if a container of that ``name``
    already runs the same image, nothing is done (``changed: false``), otherwise
    it is replaced. The image is pulled when missing (``pull: missing``),
    ``always`` or ``never``. Relative host paths in ``volumes`` are relative to the
    workspace.

    Example:
        - name: migrate
          process:
            module: docker:run
            params:
              image: "registry.example.com/team/app:1.4.2"
              command: [python, manage.py, migrate]
              env: { DATABASE_URL: "{{ secret('DATABASE_URL') }}" }
    """

    class Params(DockerParams):
        image: str = Field(..., min_length=1, description="Image: repo[:tag]")
        command: list[str] | str | None = Field(
            None, description="Command (list, or a string run by /bin/sh -c)"
        )
        entrypoint: list[str] | None = Field(None, description="Override the image's entrypoint")
        name: str | None = Field(None, min_length=1, description="Container name")
        env: dict[str, Any] = Field(default_factory=dict, description="Environment variables")
        workdir: str | None = Field(None, description="Working directory inside the container")
        user: str | None = Field(None, description="User (name or uid[:gid])")
        volumes: list[str] = Field(
            default_factory=list, description='Bind mounts "host:container[:ro]"'
        )
        ports: dict[str, int | str] = Field(
            default_factory=dict, description='Published ports {"80/tcp": 8080}'
        )
        labels: dict[str, str] = Field(default_factory=dict, description="Container labels")
        network: str | None = Field(None, description="Network to attach to")
        detach: bool = Field(False, description="Start and leave running (do not wait)")
        remove: bool = Field(True, description="Remove the container after it exits (not detached)")
        pull: Literal["missing", "always", "never"] = Field(
            "missing", description="When to pull the image"
        )
        registry_auth: RegistryAuth | None = Field(
            None, description="Credentials to pull the image"
        )
        max_output: int = Field(
            MAX_OUTPUT, ge=0, description="Bytes of stdout/stderr kept in the summary"
        )

    summary = {
        "container_id": "the container id",
        "name": "the container name",
        "exit_code": "exit status (not detached)",
        "stdout": "standard output (not detached)",
        "stderr": "standard error (not detached)",
        "status": "running (detached)",
        "changed": "false when a detached container was already running this image",
    }

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        register_auth(ctx, params.registry_auth)
        api = engine(ctx, params)
        container: str | None = None
        try:
            if params.detach and params.name:
                current = await _inspect(api, params.name)
                if current is not None:
                    running = (current.get("State") or {}).get("Running")
                    if running and (current.get("Config") or {}).get("Image") == params.image:
                        return {
                            "container_id": current.get("Id"),
                            "name": params.name,
                            "status": "running",
                            "changed": False,
                        }
                    await api.request(
                        "DELETE", f"/containers/{quote(params.name)}", params={"force": "1"}
                    )
                    ctx.log(f"replaced container {params.name}")
            if params.pull == "always" or (
                params.pull == "missing" and await api.image(params.image) is None
            ):
                repo, tag = split_image(params.image)
                await pull(ctx, api, params.image, repo, tag, params.registry_auth)
            body = _create_body(ctx, params)
            query = {"name": params.name} if params.name else None
            created = await api.request("POST", "/containers/create", params=query, json=body)
            container = str(created["Id"])
            for warning in created.get("Warnings") or []:
                ctx.log(str(warning), level="warning")
            await api.request("POST", f"/containers/{container}/start")
            if params.detach:
                return {
                    "container_id": container,
                    "name": params.name,
                    "status": "running",
                    "changed": True,
                }
            waited = await api.request("POST", f"/containers/{container}/wait")
            code = int((waited or {}).get("StatusCode", -1))
            stdout, stderr = await _logs(api, container, params.max_output)
        except DockerApiError as exc:
            raise ctx.fail(f"docker run {params.image}: {exc}") from None
        finally:
            if container is not None and not params.detach and params.remove:
                try:
                    await api.request("DELETE", f"/containers/{container}", params={"force": "1"})
                except DockerApiError as exc:
                    ctx.log(f"could not remove container {container[:12]}: {exc}", level="warning")
            await api.aclose()
        out = {
            "container_id": container,
            "name": params.name,
            "exit_code": code,
            "stdout": stdout,
            "stderr": stderr,
            "changed": True,
        }
        if code != 0:
            tail = stderr.strip().splitlines()[-1:] or stdout.strip().splitlines()[-1:]
            raise ctx.fail(
                f"container exited with status {code}" + (f": {tail[0]}" if tail else ""),
                summary=out,
            )
        return out


def _create_body(ctx: ModuleContext, params: DockerRun.Params) -> dict[str, Any]:
    body: dict[str, Any] = {"Image": params.image, "Labels": params.labels}
    if params.command is not None:
        body["Cmd"] = (
            ["/bin/sh", "-c", params.command] if isinstance(params.command, str) else params.command
        )
    if params.entrypoint is not None:
        body["Entrypoint"] = params.entrypoint
    if params.env:
        body["Env"] = [f"{k}={_text(v)}" for k, v in params.env.items()]
    if params.workdir:
        body["WorkingDir"] = params.workdir
    if params.user:
        body["User"] = params.user
    host: dict[str, Any] = {}
    if params.volumes:
        binds = []
        for spec in params.volumes:
            parts = spec.split(":")
            if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
                raise ctx.fail(f'volumes: {spec!r} is not "host:container[:ro]"')
            source = parts[0]
            if source.startswith((".", "/")) or "/" in source:
                source = str(ctx.resolve_path(source, param="volumes"))
            binds.append(":".join([source, *parts[1:]]))
        host["Binds"] = binds
    if params.ports:
        exposed: dict[str, dict[str, Any]] = {}
        bindings: dict[str, list[dict[str, str]]] = {}
        for container_port, host_port in params.ports.items():
            key = container_port if "/" in container_port else f"{container_port}/tcp"
            exposed[key] = {}
            bindings[key] = [{"HostPort": str(host_port)}]
        body["ExposedPorts"] = exposed
        host["PortBindings"] = bindings
    if params.network:
        host["NetworkMode"] = params.network
    body["HostConfig"] = host
    return body


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


async def _inspect(api: Any, name: str) -> dict[str, Any] | None:
    try:
        found = await api.request("GET", f"/containers/{quote(name)}/json")
    except DockerApiError as exc:
        if exc.status == 404:
            return None
        raise
    return found if isinstance(found, dict) else None


async def _logs(api: Any, container: str, limit: int) -> tuple[str, str]:
    """stdout and stderr of a finished container (the multiplexed log stream, demuxed)."""
    import httpx

    out = bytearray()
    err = bytearray()
    try:
        answer = await api.http.get(
            f"/containers/{container}/logs", params={"stdout": "1", "stderr": "1"}
        )
    except httpx.HTTPError as exc:
        raise DockerApiError(f"cannot read the container's logs: {exc}") from None
    if answer.status_code >= 400:
        raise DockerApiError(f"cannot read the container's logs: {answer.status_code}")
    data = answer.content
    pos = 0
    framed = len(data) >= 8 and data[0] in (0, 1, 2) and data[1:4] == b"\x00\x00\x00"
    if not framed:  # a TTY container: one raw stream
        out += data[:limit]
    while framed and pos + 8 <= len(data):
        kind, size = data[pos], struct.unpack(">I", data[pos + 4 : pos + 8])[0]
        chunk = data[pos + 8 : pos + 8 + size]
        target = err if kind == 2 else out
        if len(target) < limit:
            target += chunk[: limit - len(target)]
        pos += 8 + size
    return out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
