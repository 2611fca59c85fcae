"""A local HTTP server on a unix socket implementing the few Docker Engine API endpoints
the docker:* modules use — for machines with a docker client but no engine (CI).

It follows the Engine API reference (https://docs.docker.com/reference/api/engine/):

    GET    /_ping                          "OK"
    GET    /images/{name}/json             image inspect, or 404 {"message": "No such image: ..."}
    POST   /images/create?fromImage=&tag=  pull: JSON-lines progress; 404 for an unknown
                                           repository; a stream {"error"} when a private
                                           image is pulled without X-Registry-Auth
    POST   /build?t=&dockerfile=&buildargs=   body: the context tar; JSON-lines {"stream"},
                                           {"aux": {"ID"}}; a "RUN false" step fails with
                                           {"errorDetail", "error"} like a failed RUN
    POST   /images/{name}/push?tag=        JSON-lines; "Pushed" or "Layer already exists",
                                           then {"aux": {"Tag", "Digest", "Size"}}
    POST   /containers/create?name=        {"Id", "Warnings"}; 404 unknown image, 409 name in use
    POST   /containers/{id}/start          204
    POST   /containers/{id}/wait           {"StatusCode"}
    GET    /containers/{id}/logs           the multiplexed stream (8-byte frame headers)
    GET    /containers/{id}/json           {"Id", "Name", "Config": {"Image"}, "State": {"Running"}}
    DELETE /containers/{id}?force=1        204, or 404

Containers do not run anything: their Cmd is interpreted as a tiny script language,
statements separated by ";" (``/bin/sh -c`` strings too): ``echo WORDS`` (stdout),
``warn WORDS`` (stderr), ``printenv NAME``, ``exit N``. Image ids are the SHA-256 of
the Dockerfile, the context files and build args, so an unchanged rebuild gives the
same id, as a cached build does. ``engine.requests`` records (method, path, query).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shlex
import socketserver
import struct
import tarfile
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

PRIVATE_PREFIX = "registry.local/private/"


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _full(name: str) -> str:
    last = name.rsplit("/", 1)[-1]
    return name if (":" in last or "@" in name) else f"{name}:latest"


@dataclass
class FakeEngine:
    socket: str = ""
    # images a pull can fetch: "repo:tag" -> content marker (changes the id)
    remote: dict[str, str] = field(
        default_factory=lambda: {"alpine:3.19": "v1", f"{PRIVATE_PREFIX}app:1": "p1"}
    )
    images: dict[str, dict[str, Any]] = field(default_factory=dict)  # "repo:tag" -> inspect
    registry: dict[str, str] = field(default_factory=dict)  # pushed "repo:tag" -> image id
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)
    built_contexts: list[list[str]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)
    auth_headers: list[str | None] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_image(self, name: str, image_id: str) -> None:
        tags = self.images.get(_full(name), {}).get("RepoTags", [])
        self.images[_full(name)] = {
            "Id": image_id,
            "RepoTags": sorted({*tags, _full(name)}),
            "RepoDigests": [f"{name.rsplit(':', 1)[0]}@{_sha('digest' + image_id)}"],
        }


def _run_script(cmd: list[str], env: dict[str, str]) -> tuple[str, str, int]:
    if len(cmd) >= 3 and cmd[0] in ("/bin/sh", "sh") and cmd[1] == "-c":
        statements = [shlex.split(s) for s in cmd[2].split(";") if s.strip()]
    else:
        statements = [cmd]
    out, err = io.StringIO(), io.StringIO()
    for words in statements:
        if not words:
            continue
        verb, args = words[0], words[1:]
        if verb == "echo":
            out.write(" ".join(args) + "\n")
        elif verb == "warn":
            err.write(" ".join(args) + "\n")
        elif verb == "printenv":
            out.write(env.get(args[0], "") + "\n")
        elif verb == "exit":
            return out.getvalue(), err.getvalue(), int(args[0])
        else:
            err.write(f"{verb}: not found\n")
            return out.getvalue(), err.getvalue(), 127
    return out.getvalue(), err.getvalue(), 0


def _handler(engine: FakeEngine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def address_string(self) -> str:
            return "unix"

        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _empty(self, status: int = 204) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _stream(self, messages: list[dict[str, Any]]) -> None:
            data = b"".join(json.dumps(m).encode() + b"\r\n" for m in messages)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(data), 50):  # small chunks: messages split mid-way
                piece = data[start : start + 50]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _route(self, method: str) -> None:
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            query = parse_qs(parts.query)
            with engine.lock:
                engine.requests.append((method, path, query))
            body = self._body() if method == "POST" else b""
            if path.startswith("/v1."):
                path = "/" + path.split("/", 2)[2]
            with engine.lock:
                return self._dispatch(method, path, query, body)

        def _dispatch(
            self, method: str, path: str, query: dict[str, list[str]], body: bytes
        ) -> None:
            if path == "/_ping":
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")
                return None
            if path.startswith("/images/") and path.endswith("/json") and method == "GET":
                name = _full(path[len("/images/") : -len("/json")])
                if name not in engine.images:
                    return self._json(404, {"message": f"No such image: {name}"})
                return self._json(200, engine.images[name])
            if path == "/images/create" and method == "POST":
                return self._pull(query)
            if path == "/build" and method == "POST":
                return self._build(query, body)
            if path.startswith("/images/") and path.endswith("/push") and method == "POST":
                return self._push(path[len("/images/") : -len("/push")], query)
            if path == "/containers/create" and method == "POST":
                return self._create(query, json.loads(body or b"{}"))
            if path.startswith("/containers/"):
                rest = path[len("/containers/") :]
                ident, _, action = rest.partition("/")
                container = engine.containers.get(ident) or next(
                    (c for c in engine.containers.values() if c["Name"] == "/" + ident), None
                )
                if container is None:
                    return self._json(404, {"message": f"No such container: {ident}"})
                if method == "DELETE" and not action:
                    del engine.containers[container["Id"]]
                    return self._empty()
                if action == "start":
                    out, err, code = _run_script(
                        container["Config"].get("Cmd") or [], container["env"]
                    )
                    container.update(out=out, err=err, code=code)
                    container["State"]["Running"] = True
                    return self._empty()
                if action == "wait":
                    container["State"]["Running"] = False
                    return self._json(200, {"StatusCode": container.get("code", 0), "Error": None})
                if action == "logs":
                    frames = b""
                    for kind, text in (
                        (1, container.get("out", "")),
                        (2, container.get("err", "")),
                    ):
                        for line in text.splitlines(keepends=True):
                            data = line.encode()
                            frames += struct.pack(">BxxxI", kind, len(data)) + data
                    self.send_response(200)
                    self.send_header("Content-Type", "application/vnd.docker.multiplexed-stream")
                    self.send_header("Content-Length", str(len(frames)))
                    self.end_headers()
                    self.wfile.write(frames)
                    return None
                if action == "json":
                    public = {k: v for k, v in container.items() if k[0].isupper()}
                    return self._json(200, public)
            return self._json(404, {"message": f"page not found: {method} {path}"})

        def _pull(self, query: dict[str, list[str]]) -> None:
            repo = query.get("fromImage", [""])[0]
            tag = query.get("tag", ["latest"])[0]
            name = f"{repo}:{tag}"
            engine.auth_headers.append(self.headers.get("X-Registry-Auth"))
            if name not in engine.remote:
                return self._json(
                    404,
                    {
                        "message": f"pull access denied for {repo}, repository does not exist or may require 'docker login'"
                    },
                )
            if name.startswith(PRIVATE_PREFIX) and not self.headers.get("X-Registry-Auth"):
                return self._stream(
                    [
                        {"status": f"Pulling from {repo}", "id": tag},
                        {
                            "errorDetail": {"message": "unauthorized: authentication required"},
                            "error": "unauthorized: authentication required",
                        },
                    ]
                )
            image_id = _sha(name + engine.remote[name])
            fresh = engine.images.get(name, {}).get("Id") != image_id
            engine.add_image(name, image_id)
            return self._stream(
                [
                    {"status": f"Pulling from {repo}", "id": tag},
                    {
                        "status": "Downloading",
                        "progressDetail": {"current": 1, "total": 2},
                        "id": "abc",
                    },
                    {"status": "Pull complete", "progressDetail": {}, "id": "abc"},
                    {"status": f"Digest: {_sha('digest' + image_id)}"},
                    {
                        "status": f"Status: {'Downloaded newer image' if fresh else 'Image is up to date'} for {name}"
                    },
                ]
            )

        def _build(self, query: dict[str, list[str]], body: bytes) -> None:
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
            engine.built_contexts.append(sorted(files))
            dockerfile = query.get("dockerfile", ["Dockerfile"])[0]
            if dockerfile not in files:
                return self._json(
                    500, {"message": f"Cannot locate specified Dockerfile: {dockerfile}"}
                )
            steps = [
                ln.strip()
                for ln in files[dockerfile].decode().splitlines()
                if ln.strip() and not ln.startswith("#")
            ]
            args = json.loads(query.get("buildargs", ["{}"])[0])
            messages: list[dict[str, Any]] = []
            for i, step in enumerate(steps, 1):
                messages.append({"stream": f"Step {i}/{len(steps)} : {step}\n"})
                if step.startswith("RUN false"):
                    message = "The command '/bin/sh -c false' returned a non-zero code: 1"
                    messages.append(
                        {"errorDetail": {"code": 1, "message": message}, "error": message}
                    )
                    return self._stream(messages)
            digest = hashlib.sha256()
            for name in sorted(files):
                digest.update(name.encode() + b"\0" + files[name])
            digest.update(json.dumps(args, sort_keys=True).encode())
            image_id = "sha256:" + digest.hexdigest()
            messages.append({"stream": f" ---> {image_id[7:19]}\n"})
            messages.append({"aux": {"ID": image_id}})
            messages.append({"stream": f"Successfully built {image_id[7:19]}\n"})
            for tag in query.get("t", []):
                engine.add_image(tag, image_id)
                messages.append({"stream": f"Successfully tagged {_full(tag)}\n"})
            return self._stream(messages)

        def _push(self, repo: str, query: dict[str, list[str]]) -> None:
            tag = query.get("tag", ["latest"])[0]
            name = f"{repo}:{tag}"
            if name not in engine.images:
                return self._json(
                    404, {"message": f"An image does not exist locally with the tag: {repo}"}
                )
            auth = self.headers.get("X-Registry-Auth")
            engine.auth_headers.append(auth)
            if repo.startswith(PRIVATE_PREFIX) and (not auth or auth == "e30="):
                return self._stream(
                    [
                        {"status": f"The push refers to repository [{repo}]"},
                        {
                            "errorDetail": {"message": "unauthorized: authentication required"},
                            "error": "unauthorized: authentication required",
                        },
                    ]
                )
            image_id = engine.images[name]["Id"]
            status = "Layer already exists" if engine.registry.get(name) == image_id else "Pushed"
            engine.registry[name] = image_id
            digest = _sha("manifest" + image_id)
            return self._stream(
                [
                    {"status": f"The push refers to repository [{repo}]"},
                    {"status": "Preparing", "progressDetail": {}, "id": "layer1"},
                    {
                        "status": "Pushing",
                        "progressDetail": {"current": 5, "total": 10},
                        "id": "layer1",
                    },
                    {"status": status, "progressDetail": {}, "id": "layer1"},
                    {"status": f"{tag}: digest: {digest} size: 528"},
                    {"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": 528}},
                ]
            )

        def _create(self, query: dict[str, list[str]], body: dict[str, Any]) -> None:
            image = _full(body.get("Image", ""))
            if image not in engine.images:
                return self._json(404, {"message": f"No such image: {image}"})
            name = query.get("name", [None])[0]
            if name and any(c["Name"] == "/" + name for c in engine.containers.values()):
                return self._json(
                    409, {"message": f'Conflict. The container name "/{name}" is already in use'}
                )
            ident = uuid.uuid4().hex * 2
            env = dict(e.split("=", 1) for e in body.get("Env") or [])
            engine.containers[ident] = {
                "Id": ident,
                "Name": "/" + (name or ident[:12]),
                "Config": {
                    "Image": body.get("Image"),
                    "Cmd": body.get("Cmd"),
                    "Env": body.get("Env"),
                    "Labels": body.get("Labels"),
                },
                "HostConfig": body.get("HostConfig") or {},
                "State": {"Running": False},
                "env": env,
            }
            return self._json(201, {"Id": ident, "Warnings": []})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return Handler


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False


@contextlib.contextmanager
def serve_engine() -> Iterator[FakeEngine]:
    """A FakeEngine listening on a fresh unix socket; ``engine.socket`` is its path."""
    engine = FakeEngine()
    folder = tempfile.mkdtemp(prefix="gxo-docker-")
    path = os.path.join(folder, "docker.sock")
    server = _UnixServer(path, _handler(engine))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    engine.socket = path
    try:
        yield engine
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        Path(folder).rmdir()
