"""docker:build / run / push / pull through the Engine API over a unix socket.

Against the real engine when one answers on /var/run/docker.sock (``docker info``
works), and always against tests/support/docker_engine.py, a local HTTP server on a
unix socket implementing the endpoints the modules use (documented there), so CI —
which has a docker client but no engine — covers the modules fully.
"""

from __future__ import annotations

import base64
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.docker_engine import PRIVATE_PREFIX, FakeEngine, serve_engine

from gxo.modules.testkit import run_module

REDACTED = "[REDACTED]"


@pytest.fixture(scope="module")
def engine_server() -> Iterator[FakeEngine]:
    with serve_engine() as engine:
        yield engine


def host(engine: FakeEngine, **extra: Any) -> dict[str, Any]:
    return {"docker_host": f"unix://{engine.socket}", **extra}


async def test_pull(engine_server: FakeEngine) -> None:
    r = await run_module("docker:pull", host(engine_server, image="alpine:3.19"))
    assert r.ok, r.error
    assert r.summary["changed"] is True
    assert r.summary["id"] == engine_server.images["alpine:3.19"]["Id"]
    assert r.summary["digest"].startswith("alpine@sha256:")
    assert any("Downloaded newer image" in line for _, line in r.logs)
    assert not any("Downloading" in line for _, line in r.logs)  # progress lines are not logged
    again = await run_module("docker:pull", host(engine_server, image="alpine:3.19"))
    assert again.summary["changed"] is False
    engine_server.remote["alpine:3.19"] = "v2"  # a newer image behind the same tag
    newer = await run_module("docker:pull", host(engine_server, image="alpine:3.19"))
    assert newer.summary["changed"] is True
    missing = await run_module("docker:pull", host(engine_server, image="nope/nothing"))
    assert missing.status == "Failed"
    assert "cannot pull nope/nothing: 404: pull access denied" in str(missing.error)
    private = f"{PRIVATE_PREFIX}app:1"
    denied = await run_module("docker:pull", host(engine_server, image=private))
    assert "unauthorized: authentication required" in str(denied.error)
    auth = {"username": "ci", "password": "registry-pa55word", "serveraddress": "registry.local"}
    ok = await run_module("docker:pull", host(engine_server, image=private, registry_auth=auth))
    assert ok.ok, ok.error
    sent = json.loads(base64.urlsafe_b64decode(engine_server.auth_headers[-1]))
    assert sent == auth
    assert "registry-pa55word" not in repr(ok.summary) + repr(ok.logs)


async def test_build_push(engine_server: FakeEngine, tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "src").mkdir(parents=True)
    (app / "build").mkdir()
    (app / "Dockerfile").write_text("FROM scratch\nARG VERSION\nCOPY src /src\n")
    (app / "src" / "main.py").write_text("print('hi')\n")
    (app / "src" / "notes.log").write_text("x")
    (app / "src" / "keep.log").write_text("x")
    (app / "build" / "out.bin").write_text("x")
    (app / ".dockerignore").write_text("# comment\nbuild\n**/*.log\n!src/keep.log\n")
    tag = f"{PRIVATE_PREFIX}web:1.0"
    params = host(
        engine_server, context="app", tag=[tag, "web:latest"], build_args={"VERSION": "1.0"}
    )
    r = await run_module("docker:build", params, workspace=tmp_path)
    assert r.ok, r.error
    assert r.summary["changed"] is True and r.summary["tags"] == [tag, "web:latest"]
    assert (
        r.summary["id"]
        == engine_server.images[tag]["Id"]
        == engine_server.images["web:latest"]["Id"]
    )
    assert engine_server.built_contexts[-1] == [
        ".dockerignore",
        "Dockerfile",
        "src/keep.log",
        "src/main.py",
    ]
    assert any("Step 3/3 : COPY src /src" in line for _, line in r.logs)
    cached = await run_module("docker:build", params, workspace=tmp_path)
    assert cached.summary["changed"] is False
    (app / "src" / "main.py").write_text("print('changed')\n")
    rebuilt = await run_module("docker:build", params, workspace=tmp_path)
    assert rebuilt.summary["changed"] is True

    (app / "Dockerfile.bad").write_text("FROM scratch\nRUN false\n")
    bad = await run_module(
        "docker:build",
        host(engine_server, context="app", dockerfile="Dockerfile.bad", tag="x:1"),
        workspace=tmp_path,
    )
    assert bad.status == "Failed"
    assert "returned a non-zero code: 1" in str(bad.error)
    nodf = await run_module(
        "docker:build",
        host(engine_server, context="app", dockerfile="Nope", tag="x:1"),
        workspace=tmp_path,
    )
    assert "no Nope in context" in str(nodf.error)
    nodir = await run_module(
        "docker:build", host(engine_server, context="missing", tag="x:1"), workspace=tmp_path
    )
    assert "is not a directory" in str(nodir.error)

    auth = {"username": "ci", "password": "push-t0ken-value"}
    denied = await run_module("docker:push", host(engine_server, image=tag))
    assert "unauthorized" in str(denied.error)
    pushed = await run_module("docker:push", host(engine_server, image=tag, registry_auth=auth))
    assert pushed.ok, pushed.error
    assert pushed.summary["changed"] is True
    assert pushed.summary["digest"].startswith("sha256:") and pushed.summary["size"] == 528
    again = await run_module("docker:push", host(engine_server, image=tag, registry_auth=auth))
    assert again.summary["changed"] is False
    assert again.summary["digest"] == pushed.summary["digest"]
    absent = await run_module("docker:push", host(engine_server, image="ghost:1"))
    assert "no such image in the engine" in str(absent.error)
    digest = await run_module("docker:push", host(engine_server, image="web@sha256:abc"))
    assert "not a digest" in str(digest.error)


async def test_run(engine_server: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T15_DB_URL", "postgres://u:db-pa55@h/db")
    r = await run_module(
        "docker:run",
        host(
            engine_server,
            image="alpine:3.19",
            command="echo hello world; warn careful; printenv DB",
            env={"DB": "{{ secret('T15_DB_URL') }}", "FLAG": True},
            volumes=["data:/data:ro"],
            ports={"80": 8080},
        ),
    )
    assert r.ok, r.error
    assert r.summary["exit_code"] == 0
    assert r.summary["stdout"] == f"hello world\n{REDACTED}\n"
    assert r.summary["stderr"] == "careful\n"
    cid = r.summary["container_id"]
    assert cid not in engine_server.containers  # removed afterwards
    create = next(q for m, p, q in reversed(engine_server.requests) if p == "/containers/create")
    assert create == {}
    failing = await run_module(
        "docker:run",
        host(
            engine_server, image="alpine:3.19", command=["exit", "3"], remove=False, name="oneshot"
        ),
    )
    assert failing.status == "Failed"
    assert "container exited with status 3" in str(failing.error)
    assert failing.summary["exit_code"] == 3
    assert any(c["Name"] == "/oneshot" for c in engine_server.containers.values())  # kept
    clash = await run_module(
        "docker:run", host(engine_server, image="alpine:3.19", command=["echo"], name="oneshot")
    )
    assert "409" in str(clash.error) and "already in use" in str(clash.error)
    # missing image: pulled first (pull: missing); never: fails
    engine_server.images.pop("alpine:3.19")
    never = await run_module(
        "docker:run", host(engine_server, image="alpine:3.19", command=["echo"], pull="never")
    )
    assert "No such image" in str(never.error)
    pulled = await run_module(
        "docker:run", host(engine_server, image="alpine:3.19", command=["echo", "ok"])
    )
    assert pulled.ok, pulled.error
    assert pulled.summary["stdout"] == "ok\n"
    # detached, idempotent by name and image
    params = host(
        engine_server, image="alpine:3.19", command=["echo", "svc"], name="svc", detach=True
    )
    up = await run_module("docker:run", params)
    assert up.summary["changed"] is True and up.summary["status"] == "running"
    same = await run_module("docker:run", params)
    assert same.summary == {
        "container_id": up.summary["container_id"],
        "name": "svc",
        "status": "running",
        "changed": False,
    }
    engine_server.remote["busybox:1"] = "b1"
    replaced = await run_module("docker:run", {**params, "image": "busybox:1"})
    assert replaced.summary["changed"] is True
    assert replaced.summary["container_id"] != up.summary["container_id"]
    bad_volume = await run_module(
        "docker:run", host(engine_server, image="alpine:3.19", volumes=["nocolon"])
    )
    assert 'is not "host:container[:ro]"' in str(bad_volume.error)


async def test_engine_unreachable_and_bad_host(tmp_path: Path) -> None:
    r = await run_module(
        "docker:pull", {"image": "alpine", "docker_host": f"unix://{tmp_path}/none.sock"}
    )
    assert r.status == "Failed"
    assert "cannot reach the Docker engine at unix://" in str(r.error)
    r = await run_module("docker:pull", {"image": "alpine", "docker_host": "ssh://host"})
    assert "is not unix:///path or tcp://host:port" in str(r.error)


def _real_engine() -> bool:
    path = "/var/run/docker.sock"
    if not os.path.exists(path):
        return False
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.settimeout(2)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b"OK" in sock.recv(1024)
        except OSError:
            return False


@pytest.mark.skipif(not _real_engine(), reason="no Docker engine on /var/run/docker.sock")
async def test_real_engine_build(tmp_path: Path) -> None:  # pragma: no cover - needs an engine
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    (tmp_path / "hello.txt").write_text("hello\n")
    r = await run_module(
        "docker:build", {"context": ".", "tag": "gxo-test-scratch:1"}, workspace=tmp_path
    )
    assert r.ok, r.error
    assert r.summary["id"].startswith("sha256:")
    again = await run_module(
        "docker:build", {"context": ".", "tag": "gxo-test-scratch:1"}, workspace=tmp_path
    )
    assert again.summary["changed"] is False
