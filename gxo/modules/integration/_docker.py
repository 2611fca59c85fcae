"""Docker Engine API client plumbing shared by ``docker:*`` (httpx over the unix socket).

The leading underscore keeps the registry from importing this file as a module.
Only the documented Engine API is used (https://docs.docker.com/reference/api/engine/):
``/_ping``, ``/images/create``, ``/images/{name}/json``, ``/images/{name}/push``,
``/build``, ``/containers/create|{id}/start|wait|logs|json`` and ``DELETE /containers/{id}``.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from gxo.modules.base import ModuleParams

__all__ = ["DockerApiError", "DockerParams", "RegistryAuth", "engine", "split_image"]

DEFAULT_SOCKET = "/var/run/docker.sock"


class RegistryAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(..., min_length=1, description="Registry user")
    password: str = Field(..., min_length=1, description="Registry password or token")
    serveraddress: str | None = Field(
        None, description="Registry address, e.g. registry.example.com"
    )


class DockerParams(ModuleParams):
    docker_host: str | None = Field(
        None,
        description="Engine address: unix:///path/docker.sock or tcp://host:2375 (default: $DOCKER_HOST, else the local socket)",
    )
    timeout: float = Field(600.0, gt=0, description="Seconds to wait for the engine per request")


class DockerApiError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def split_image(image: str) -> tuple[str, str]:
    """``repo[:tag]`` / ``repo@digest`` → ``(repo, tag or digest)``; the tag defaults to latest."""
    if "@" in image:
        repo, digest = image.split("@", 1)
        return repo, digest
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = image.rsplit(":", 1)
        return repo, tag
    return image, "latest"


def auth_header(auth: RegistryAuth | None) -> dict[str, str]:
    if auth is None:
        return {}
    payload = {"username": auth.username, "password": auth.password}
    if auth.serveraddress:
        payload["serveraddress"] = auth.serveraddress
    encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()
    return {"X-Registry-Auth": encoded}


class Engine:
    """An httpx client bound to the engine (close it with ``aclose``)."""

    def __init__(self, http: Any, where: str) -> None:
        self.http = http
        self.where = where

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """A JSON (or empty) answer; DockerApiError with the engine's message otherwise."""
        import httpx

        try:
            answer = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise DockerApiError(f"cannot reach the Docker engine at {self.where}: {exc}") from None
        if answer.status_code >= 400:
            raise DockerApiError(_message(answer.content, answer.status_code), answer.status_code)
        if not answer.content:
            return None
        try:
            return answer.json()
        except ValueError:
            return answer.text

    async def stream(
        self, method: str, path: str, on_message: Callable[[dict[str, Any]], None], **kwargs: Any
    ) -> None:
        """A streamed JSON-lines answer (pull, push, build): each message to ``on_message``.

        A message with ``error`` raises DockerApiError (the engine answers 200 and
        reports the failure in the stream).
        """
        import httpx

        try:
            async with self.http.stream(method, path, **kwargs) as answer:
                if answer.status_code >= 400:
                    body = await answer.aread()
                    raise DockerApiError(_message(body, answer.status_code), answer.status_code)
                async for message in _json_lines(answer.aiter_bytes()):
                    if message.get("error") or message.get("errorDetail"):
                        detail = message.get("errorDetail") or {}
                        raise DockerApiError(str(message.get("error") or detail.get("message")))
                    on_message(message)
        except httpx.HTTPError as exc:
            raise DockerApiError(f"cannot reach the Docker engine at {self.where}: {exc}") from None

    async def image(self, name: str) -> dict[str, Any] | None:
        """``GET /images/{name}/json``, or None when there is no such image."""
        try:
            found = await self.request("GET", f"/images/{quote(name, safe='/:@')}/json")
        except DockerApiError as exc:
            if exc.status == 404:
                return None
            raise
        return found if isinstance(found, dict) else None


async def _json_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
    buffer = b""
    decoder = json.JSONDecoder()
    async for chunk in chunks:
        buffer += chunk
        text = buffer.decode("utf-8", "replace")
        pos = 0
        while True:
            while pos < len(text) and text[pos] in " \r\n\t":
                pos += 1
            if pos >= len(text):
                break
            try:
                obj, end = decoder.raw_decode(text, pos)
            except ValueError:
                break
            if isinstance(obj, dict):
                yield obj
            pos = end
        buffer = text[pos:].encode()
    rest = buffer.decode("utf-8", "replace").strip()
    if rest:
        try:
            obj = json.loads(rest)
        except ValueError:
            return
        if isinstance(obj, dict):
            yield obj


def _message(body: bytes, status: int) -> str:
    try:
        data = json.loads(body)
        text = data.get("message") if isinstance(data, dict) else None
    except ValueError:
        text = None
    text = text or body.decode("utf-8", "replace").strip() or "no message"
    return f"{status}: {text}"


def engine(ctx: Any, params: DockerParams) -> Engine:
    """An Engine for ``params.docker_host`` (unix socket or tcp)."""
    import httpx

    host = params.docker_host or os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    timeout = httpx.Timeout(params.timeout, connect=10.0)
    if host.startswith("unix://"):
        path = host[len("unix://") :]
        transport = httpx.AsyncHTTPTransport(uds=path)
        http = httpx.AsyncClient(transport=transport, base_url="http://docker", timeout=timeout)
        return Engine(http, host)
    if host.startswith(("tcp://", "http://")):
        base = "http://" + host.split("://", 1)[1]
        return Engine(httpx.AsyncClient(base_url=base, timeout=timeout), host)
    raise ctx.fail(f"docker_host {host!r} is not unix:///path or tcp://host:port")


def register_auth(ctx: Any, auth: RegistryAuth | None) -> None:
    if auth is not None:
        ctx.run.secrets.add(auth.password)
        header = auth_header(auth)["X-Registry-Auth"]
        ctx.run.secrets.add(header)
