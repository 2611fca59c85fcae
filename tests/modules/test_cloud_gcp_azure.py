"""gcp:gcs_sync, gcp:gce_instance, gcp_secretmanager:read, azure:blob_sync and
azure:vm_instance, each on its official client library (never mocked):

- Cloud Storage: gcp-storage-emulator (PyPI) on loopback;
- Azure Blob: Azurite (npm) on loopback (``.ci/run`` installs it);
- where no emulator exists, a local HTTP(S) stand-in on loopback implementing the REST
  endpoints the libraries call: Google OAuth2's service-account token exchange (the JWT's
  RS256 signature verified with the key's public half), Secret Manager
  ``versions/V:access``, Compute Engine instances and zone operations, Microsoft Entra's
  client-credentials token request and Azure Resource Manager virtual machines (with their
  ``Azure-AsyncOperation`` polling), network interfaces and public IP addresses. The Azure
  one speaks HTTPS (a trustme CA): azure-identity and the ARM bearer policy refuse plain
  HTTP.
"""

# ruff: noqa: F811
from __future__ import annotations

import base64
import json
import ssl
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from support.cloud_emulators import Azurite, azurite, gcs_emulator  # noqa: F401

from gxo.modules.testkit import run_module, run_playbook_text

TOKEN = "ya29.good-access-token"
SIG = "s1gn4ture%2Bvalue"
EMAIL = "gxo@test-project.iam.gserviceaccount.com"


class Fake:
    def __init__(self) -> None:
        self.gcs: dict[str, dict[str, bytes]] = {}
        self.blobs: dict[str, dict[str, tuple[bytes, str]]] = {}
        self.secrets: dict[str, str] = {}
        self.instances: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.vms: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.public_key: Any = None
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.url = ""  # the HTTP stand-in (Google)
        self.https_url = ""  # the HTTPS stand-in (Azure)
        self.ca_file = ""


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _verify_jwt(public_key: Any, jwt: str) -> dict[str, Any] | None:
    """The claims of an unexpired RS256 JWT signed by ``public_key``, else None."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        head, claims, sig = jwt.split(".")
        public_key.verify(
            _b64d(sig), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        payload = json.loads(_b64d(claims))
    except (ValueError, InvalidSignature):
        return None
    if not isinstance(payload, dict) or payload.get("exp", 0) <= time.time():
        return None
    return payload


def _handler(fake: Fake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(
            self,
            status: int,
            body: Any = None,
            ctype: str = "application/json",
            retry_after: bool = False,
        ) -> None:
            data = (
                b""
                if body is None
                else body
                if isinstance(body, bytes)
                else json.dumps(body).encode()
            )
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            if retry_after:
                self.send_header("Retry-After", "0")  # 0: the client polls every poll_interval
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _authorized(self) -> bool:
            """The stand-in's token, or a JWT signed by the service-account key (what
            google-auth sends the GAPIC clients: a self-signed JWT, as Google accepts)."""
            header = self.headers.get("Authorization") or ""
            if header == f"Bearer {TOKEN}":
                return True
            if not header.startswith("Bearer ") or fake.public_key is None:
                return False
            return _verify_jwt(fake.public_key, header[len("Bearer ") :]) is not None

        def _route(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            body = self._body()
            with fake.lock:
                fake.requests.append(f"{method} {parts.path}")
            path = parts.path
            if path == "/token" and method == "POST":
                return self._token(body)
            if path.startswith("/login/") and path.endswith("/oauth2/v2.0/token"):
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                if (
                    form.get("client_secret") != "sp-secret-value"
                    or form.get("grant_type") != "client_credentials"
                ):
                    return self._send(
                        401,
                        {
                            "error": "invalid_client",
                            "error_description": "AADSTS7000215: Invalid client secret provided.\nTrace ID: 1",
                        },
                    )
                return self._send(
                    200, {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3599}
                )
            if not self._authorized():
                return self._send(
                    401,
                    {
                        "error": {
                            "code": 401,
                            "message": "Invalid Credentials",
                            "status": "UNAUTHENTICATED",
                        }
                    },
                )
            if path.startswith("/v1/projects/") and path.endswith(":access"):
                name = path.split("/")[5]
                if name not in fake.secrets:
                    return self._send(
                        404,
                        {
                            "error": {
                                "code": 404,
                                "message": f"Secret [{name}] not found",
                                "status": "NOT_FOUND",
                            }
                        },
                    )
                data = base64.b64encode(fake.secrets[name].encode()).decode()
                return self._send(
                    200, {"name": path[4:-7].replace("latest", "3"), "payload": {"data": data}}
                )
            segments = path.split("/")
            if path.startswith("/subscriptions/"):
                return self._arm(method, path, query, body)
            if path.startswith("/asyncops/"):
                n = fake.polls[path] = fake.polls.get(path, 0) + 1
                failed = path.endswith("-fail")
                if n < 2:
                    return self._send(200, {"status": "InProgress"}, retry_after=True)
                if failed:
                    return self._send(
                        200,
                        {
                            "status": "Failed",
                            "error": {"code": "QuotaExceeded", "message": "quota exceeded"},
                        },
                    )
                return self._send(200, {"status": "Succeeded"})
            if path.startswith("/compute/v1/projects/"):
                return self._compute(method, segments[7:], body)
            return self._send(404, {"error": {"message": f"no route {method} {path}"}})

        def _async(self, status: int, body: Any = None, fail: bool = False) -> None:
            n = len(fake.polls) + len(fake.vms) + 1
            base = getattr(self.server, "base_url", fake.url)
            url = f"{base}/asyncops/{n}-{time.monotonic_ns()}" + ("-fail" if fail else "")
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Azure-AsyncOperation", url)
            self.send_header("Retry-After", "0")  # 0: the client polls every poll_interval
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _arm(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
            if query.get("api-version") is None:
                return self._send(
                    400,
                    {
                        "error": {
                            "code": "MissingApiVersionParameter",
                            "message": "api-version missing",
                        }
                    },
                )
            if "/Microsoft.Network/networkInterfaces/" in path:
                pip = (
                    path.split("/providers/")[0]
                    + "/providers/Microsoft.Network/publicIPAddresses/pip1"
                )
                return self._send(
                    200,
                    {
                        "properties": {
                            "ipConfigurations": [
                                {
                                    "properties": {
                                        "privateIPAddress": "10.1.0.4",
                                        "publicIPAddress": {"id": pip},
                                    }
                                }
                            ]
                        }
                    },
                )
            if "/Microsoft.Network/publicIPAddresses/" in path:
                return self._send(200, {"properties": {"ipAddress": "20.5.6.7"}})
            tail = path.split("/virtualMachines/", 1)[1]
            name, _, action = tail.partition("/")
            vm = fake.vms.get(name)
            if method == "PUT" and not action:
                spec = json.loads(body)
                if spec["properties"]["hardwareProfile"]["vmSize"] == "Standard_Quota":
                    return self._async(201, spec, fail=True)
                fake.vms[name] = {
                    "name": name,
                    "location": spec["location"],
                    "tags": spec.get("tags") or {},
                    "properties": {**spec["properties"], "vmId": f"vm-{len(fake.vms) + 1}"},
                    "power": "running",
                }
                return self._async(201, spec)
            if vm is None:
                return self._send(
                    404, {"error": {"code": "ResourceNotFound", "message": f"VM {name} not found"}}
                )
            if method == "GET" and not action:
                view = {
                    "statuses": [
                        {"code": "ProvisioningState/succeeded"},
                        {"code": f"PowerState/{vm['power']}"},
                    ]
                }
                out = {k: v for k, v in vm.items() if k != "power"}
                out["properties"] = {**vm["properties"], "instanceView": view}
                return self._send(200, out)
            if method == "PATCH" and not action:
                vm["tags"] = json.loads(body)["tags"]
                return self._async(200, {})
            if method == "POST" and action in ("start", "deallocate"):
                vm["power"] = "running" if action == "start" else "deallocated"
                return self._async(202)
            if method == "DELETE" and not action:
                del fake.vms[name]
                return self._async(202)
            return self._send(400, {"error": {"message": "unsupported"}})

        def _operation(self, error: str | None = None) -> None:
            with fake.lock:
                name = f"op-{len(fake.operations) + 1}"
                op: dict[str, Any] = {"name": name, "status": "RUNNING"}
                if error:
                    op["error"] = {"errors": [{"code": "RESOURCE_NOT_FOUND", "message": error}]}
                fake.operations[name] = op
            return self._send(200, op)

        def _compute(self, method: str, rest: list[str], body: bytes) -> None:
            # rest: [instances, NAME?, ACTION?] or [operations, NAME, wait]
            if rest[:1] == ["operations"] and method == "POST":
                op = fake.operations.get(rest[1])
                if op is None:
                    return self._send(404, {"error": {"message": "no such operation"}})
                return self._send(200, {**op, "status": "DONE"})
            name = rest[1] if len(rest) > 1 else None
            action = rest[2] if len(rest) > 2 else None
            if method == "POST" and name is None:
                spec = json.loads(body)
                image = spec["disks"][0]["initializeParams"]["sourceImage"]
                if image == "bad-image":
                    return self._operation(f"The resource '{image}' was not found")
                n = len(fake.instances) + 1
                nic = {"networkIP": f"10.0.0.{n}"}
                if spec["networkInterfaces"][0].get("accessConfigs"):
                    nic["accessConfigs"] = [{"natIP": f"34.1.2.{n}"}]
                fake.instances[spec["name"]] = {
                    "id": str(1000 + n),
                    "name": spec["name"],
                    "status": "RUNNING",
                    "machineType": f"https://x/compute/v1/{spec['machineType']}",
                    "networkInterfaces": [nic],
                    "labels": spec.get("labels") or {},
                    "labelFingerprint": "fp0",
                }
                return self._operation()
            instance = fake.instances.get(name or "")
            if instance is None:
                return self._send(
                    404, {"error": {"message": f"The resource '{name}' was not found"}}
                )
            if method == "GET" and action is None:
                return self._send(200, instance)
            if method == "DELETE" and action is None:
                del fake.instances[name or ""]
                return self._operation()
            if method == "POST" and action in ("start", "stop"):
                instance["status"] = "RUNNING" if action == "start" else "TERMINATED"
                return self._operation()
            if method == "POST" and action == "setLabels":
                change = json.loads(body)
                if change.get("labelFingerprint") != instance["labelFingerprint"]:
                    return self._send(412, {"error": {"message": "Labels fingerprint invalid"}})
                instance["labels"] = change["labels"]
                instance["labelFingerprint"] = instance["labelFingerprint"] + "x"
                return self._operation()
            return self._send(400, {"error": {"message": "unsupported"}})

        def _token(self, body: bytes) -> None:
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            payload = _verify_jwt(fake.public_key, form.get("assertion", ""))
            if (
                payload is None
                or payload.get("iss") != EMAIL
                or payload.get("aud") != "https://oauth2.googleapis.com/token"  # as Google's
                or form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer"
            ):
                return self._send(
                    400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
                )
            return self._send(
                200, {"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"}
            )

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PUT(self) -> None:
            self._route("PUT")

        def do_DELETE(self) -> None:
            self._route("DELETE")

        def do_PATCH(self) -> None:
            self._route("PATCH")

    return Handler


def _serve(server: ThreadingHTTPServer) -> threading.Thread:
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    return thread


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fake]:
    import trustme

    state = Fake()
    handler = _handler(state)
    plain = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    secure = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    state.ca_file = str(tmp_path_factory.mktemp("ca") / "ca.pem")
    ca.cert_pem.write_to_path(state.ca_file)
    state.url = f"http://127.0.0.1:{plain.server_address[1]}"
    state.https_url = f"https://127.0.0.1:{secure.server_address[1]}"
    secure.base_url = state.https_url  # type: ignore[attr-defined]
    threads = [_serve(plain), _serve(secure)]
    try:
        yield state
    finally:
        for server, thread in zip((plain, secure), threads, strict=True):
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


@pytest.fixture(scope="module")
def service_account(fake: Fake, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fake.public_key = key.public_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path_factory.mktemp("gcp") / "sa.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": EMAIL,
                "private_key_id": "k1",
                "private_key": pem,
                "token_uri": f"{fake.url}/token",
            }
        )
    )
    return path


def tree(root: Path) -> Path:
    site = root / "site"
    (site / "css").mkdir(parents=True)
    (site / "index.html").write_text("<h1>hi</h1>")
    (site / "css" / "a.css").write_text("body{}")
    (site / "b.txt").write_text("bee")
    return site


def _gcs(endpoint: str) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project="test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
    )


def _gcs_objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    client = _gcs(endpoint)
    return {b.name: b.download_as_bytes() for b in client.list_blobs(bucket)}


@pytest.fixture
def no_gcp_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ambient GCP credentials: Application Default Credentials find none (no gcloud
    config, no metadata-server probe off loopback: google-auth's NO_GCE_CHECK, which it
    reads when imported, so set on the loaded module too)."""
    import google.auth.compute_engine._metadata as metadata

    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_OAUTH_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setattr(metadata, "_NO_GCE_CHECK", True)


async def test_gcs_sync(
    gcs_emulator: str, fake: Fake, service_account: Path, tmp_path: Path, no_gcp_defaults: None
) -> None:
    site = tree(tmp_path)
    client = _gcs(gcs_emulator)
    bucket = client.create_bucket("web")
    for name, data in {"v1/stale.txt": b"old", "v1/b.txt": b"bee", "other/x": b"x"}.items():
        bucket.blob(name).upload_from_string(data)
    params = {
        "source": "site",
        "bucket": "web",
        "prefix": "v1/",
        "delete": True,
        "base_url": gcs_emulator,
        # a service-account key: its token is exchanged at the stand-in's token endpoint
        "credentials_file": str(service_account),
    }
    dry = await run_module("gcp:gcs_sync", {**params, "dry_run": True}, workspace=tmp_path)
    assert dry.ok, dry.error
    assert dry.summary["uploaded_keys"] == ["v1/css/a.css", "v1/index.html"]
    assert dry.summary["unchanged"] == 1 and dry.summary["deleted_keys"] == ["v1/stale.txt"]
    assert "v1/stale.txt" in _gcs_objects(gcs_emulator, "web")
    r = await run_module("gcp:gcs_sync", params, workspace=tmp_path)
    assert r.ok, r.error
    assert r.summary["uploaded"] == 2 and r.summary["deleted"] == 1 and r.summary["changed"]
    objects = _gcs_objects(gcs_emulator, "web")
    assert sorted(objects) == ["other/x", "v1/b.txt", "v1/css/a.css", "v1/index.html"]
    assert objects["v1/index.html"] == b"<h1>hi</h1>"
    assert client.bucket("web").get_blob("v1/index.html").content_type == "text/html"
    # anonymous (an emulator's way); nothing to do now
    anon = {**params, "credentials_file": None, "anonymous": True}
    again = await run_module("gcp:gcs_sync", anon, workspace=tmp_path)
    assert again.ok, again.error
    assert again.summary["unchanged"] == 3 and again.summary["changed"] is False
    (site / "b.txt").write_text("BEE")  # same size, other content
    r = await run_module("gcp:gcs_sync", {**params, "token": TOKEN}, workspace=tmp_path)
    assert r.summary["uploaded_keys"] == ["v1/b.txt"]
    assert _gcs_objects(gcs_emulator, "web")["v1/b.txt"] == b"BEE"
    # errors: no such bucket, no credentials at all, missing source, unreachable service
    r = await run_module("gcp:gcs_sync", {**anon, "bucket": "nobucket"}, workspace=tmp_path)
    assert r.status == "Failed" and "cannot list gs://nobucket/v1/: HTTP 404" in str(r.error)
    r = await run_module("gcp:gcs_sync", {**params, "credentials_file": None}, workspace=tmp_path)
    assert r.status == "Failed" and "no GCP credentials" in str(r.error)
    r = await run_module("gcp:gcs_sync", {**anon, "token": TOKEN}, workspace=tmp_path)
    assert r.status == "Failed" and "anonymous sends no credentials" in str(r.error)
    r = await run_module("gcp:gcs_sync", {**anon, "source": "nope"}, workspace=tmp_path)
    assert r.status == "Failed" and "does not exist" in str(r.error)
    closed = f"http://127.0.0.1:{_closed_port()}"
    r = await run_module(
        "gcp:gcs_sync",
        {**params, "credentials_file": None, "token": "ya29.secret-tok", "base_url": closed}
        | {"timeout": 1},
        workspace=tmp_path,
    )
    assert r.status == "Failed" and "cannot list gs://web/v1/: ConnectionError" in str(r.error)
    assert "Connection refused" in str(r.error) and "retried until the timeout" in str(r.error)
    assert "ya29.secret-tok" not in str(r.error)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_gcp_secret_manager(fake: Fake, service_account: Path, tmp_path: Path) -> None:
    fake.secrets["db"] = json.dumps({"password": "gcp-pw-123", "user": "app"})
    fake.secrets["plain"] = "plain-gcp-secret"
    base = {
        "project": "test-project",
        "base_url": fake.url,
        "credentials_file": str(service_account),
    }
    r = await run_module("gcp_secretmanager:read", {**base, "name": "db", "key": "password"})
    assert r.ok, r.error
    assert r.summary == {
        "name": "projects/test-project/secrets/db/versions/3",
        "value": "[REDACTED]",
    }
    r = await run_module("gcp_secretmanager:read", {**base, "name": "plain"})
    assert r.ok and r.summary["value"] == "[REDACTED]"
    r = await run_module("gcp_secretmanager:read", {**base, "name": "plain", "key": "k"})
    assert r.status == "Failed" and "not a JSON object" in str(r.error)
    r = await run_module("gcp_secretmanager:read", {**base, "name": "db", "key": "nope"})
    assert r.status == "Failed" and "keys: password, user" in str(r.error)
    r = await run_module("gcp_secretmanager:read", {**base, "name": "missing"})
    assert r.status == "Failed" and "HTTP 404: Secret [missing] not found" in str(r.error)
    # a key the token endpoint does not accept
    other = tmp_path / "other.json"
    info = json.loads(service_account.read_text())
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    info["private_key"] = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    other.write_text(json.dumps(info))
    r = await run_module(
        "gcp_secretmanager:read", {**base, "name": "db", "credentials_file": str(other)}
    )
    assert r.status == "Failed" and "Invalid JWT Signature" in str(r.error)
    assert "PRIVATE KEY" not in str(r.error)
    (tmp_path / "user.json").write_text(json.dumps({"type": "authorized_user"}))
    r = await run_module(
        "gcp_secretmanager:read",
        {**base, "name": "db", "credentials_file": str(tmp_path / "user.json")},
    )
    assert r.status == "Failed" and "cannot load credentials_file" in str(r.error)
    (tmp_path / "ext.json").write_text(json.dumps({"type": "external_account"}))
    r = await run_module(
        "gcp_secretmanager:read",
        {**base, "name": "db", "credentials_file": str(tmp_path / "ext.json")},
    )
    assert r.status == "Failed" and "type 'external_account' is not one of" in str(r.error)
    # a plain token the service refuses: HTTP 401, the token never shown
    r = await run_module(
        "gcp_secretmanager:read",
        {**base, "name": "db", "credentials_file": None, "token": "ya29.refused-tok"},
    )
    assert r.status == "Failed" and "HTTP 401: the access token was refused" in str(r.error)
    assert "ya29.refused-tok" not in str(r.error)
    assert any(req.endswith("/secrets/db/versions/latest:access") for req in fake.requests)


def _container_sas(az: Azurite, container: str, *, hours: int = 1) -> str:
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(
        az.account,
        container,
        account_key=az.key,
        permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True),
        expiry=datetime.now(UTC) + timedelta(hours=hours),
    )


async def _blobs(az: Azurite, container: str) -> dict[str, bytes]:
    from azure.storage.blob.aio import ContainerClient

    out = {}
    credential = {"account_name": az.account, "account_key": az.key}
    async with ContainerClient(az.url, container, credential=credential) as client:
        async for blob in client.list_blobs():
            out[blob.name] = await (await client.download_blob(blob.name)).readall()
    return out


async def test_azure_blob_sync(azurite: Azurite, tmp_path: Path) -> None:
    from azure.storage.blob.aio import ContainerClient

    site = tree(tmp_path)
    credential = {"account_name": azurite.account, "account_key": azurite.key}
    async with ContainerClient(azurite.url, "web", credential=credential) as client:
        await client.create_container()
        await client.upload_blob("v1/stale.txt", b"old")
        await client.upload_blob("other/x", b"x")
    sas = _container_sas(azurite, "web")
    params = {
        "source": "site",
        "account_url": azurite.url,
        "container": "web",
        "prefix": "v1/",
        "delete": True,
        "sas_token": f"?{sas}",
    }
    r = await run_module("azure:blob_sync", params, workspace=tmp_path)
    assert r.ok, r.error
    assert r.summary["uploaded"] == 3 and r.summary["deleted_keys"] == ["v1/stale.txt"]
    blobs = await _blobs(azurite, "web")
    assert sorted(blobs) == ["other/x", "v1/b.txt", "v1/css/a.css", "v1/index.html"]
    assert blobs["v1/index.html"] == b"<h1>hi</h1>"
    again = await run_module("azure:blob_sync", params, workspace=tmp_path)
    assert again.ok, again.error
    assert again.summary["unchanged"] == 3 and again.summary["changed"] is False
    (site / "b.txt").write_text("BEE")  # same size, other content
    (site / "css" / "a.css").unlink()
    text = f"""
    schemaVersion: "1.0.0"
    name: az
    workloads:
      - name: sync
        process:
          module: azure:blob_sync
          params: {json.dumps(params)}
    """
    result = await run_playbook_text(textwrap.dedent(text).lstrip(), check=True, workspace=tmp_path)
    summary = result.states["sync"].summary
    assert summary["deleted_keys"] == ["v1/css/a.css"] and summary["uploaded_keys"] == ["v1/b.txt"]
    assert "v1/css/a.css" in await _blobs(azurite, "web")  # --check changed nothing
    r = await run_module("azure:blob_sync", params, workspace=tmp_path)
    assert r.summary["uploaded_keys"] == ["v1/b.txt"] and r.summary["deleted"] == 1
    assert (await _blobs(azurite, "web"))["v1/b.txt"] == b"BEE"
    # a SAS signed with another key: refused, its signature never shown
    forged = sas.replace("sig=", "sig=AAAA")
    bad = await run_module("azure:blob_sync", {**params, "sas_token": forged}, workspace=tmp_path)
    assert bad.status == "Failed"
    assert "cannot list" in str(bad.error) and "HTTP 403: AuthorizationFailure" in str(bad.error)
    sig = forged.split("sig=")[1].split("&")[0]
    assert sig not in str(bad.error) and forged not in str(bad.error)
    r = await run_module("azure:blob_sync", {**params, "sas_token": None}, workspace=tmp_path)
    assert r.status == "Failed" and "no Azure credentials" in str(r.error)
    # a bearer token: azure-storage-blob sends one over HTTPS only
    r = await run_module(
        "azure:blob_sync",
        {**params, "sas_token": None, "token": "bearer-tok-123"},
        workspace=tmp_path,
    )
    assert r.status == "Failed" and "HTTPS" in str(r.error), r.error
    assert "bearer-tok-123" not in str(r.error)
    r = await run_module("azure:blob_sync", {**params, "token": "t"}, workspace=tmp_path)
    assert r.status == "Failed" and "not both" in str(r.error)
    r = await run_module(
        "azure:blob_sync", {**params, "container": "nocontainer"}, workspace=tmp_path
    )
    assert r.status == "Failed" and "cannot list" in str(r.error), r.error


async def test_gce_instance_lifecycle(fake: Fake) -> None:
    base = {
        "project": "p1",
        "zone": "europe-west1-b",
        "name": "ci-runner",
        "image": "projects/debian-cloud/global/images/family/debian-12",
        "machine_type": "e2-small",
        "labels": {"team": "ci"},
        "token": TOKEN,
        "base_url": fake.url,
    }
    r = await run_module("gcp:gce_instance", {**base, "state": "absent"})
    assert r.ok and r.summary["changed"] is False and r.summary["status"] == "ABSENT"
    r = await run_module("gcp:gce_instance", base)
    assert r.ok, r.error
    s = r.summary
    assert s["actions"] == ["created"] and s["status"] == "RUNNING"
    assert s["internal_ip"].startswith("10.0.0.") and s["external_ip"].startswith("34.1.2.")
    assert s["machine_type"] == "e2-small" and s["labels"] == {"team": "ci"}
    r = await run_module("gcp:gce_instance", base)
    assert r.summary["changed"] is False
    r = await run_module(
        "gcp:gce_instance", {**base, "state": "stopped", "labels": {"env": "test"}}
    )
    assert r.summary["actions"] == ["labelled", "stopped"] and r.summary["status"] == "TERMINATED"
    assert r.summary["labels"] == {"team": "ci", "env": "test"}
    r = await run_module("gcp:gce_instance", {**base, "machine_type": "e2-large"})
    assert r.summary["actions"] == ["started"] and r.summary["status"] == "RUNNING"
    assert any("not changed" in line for _, line in r.logs)
    r = await run_module("gcp:gce_instance", {**base, "state": "absent"})
    assert r.summary["actions"] == ["deleted"] and "ci-runner" not in fake.instances
    # errors: a failed operation, no image to create from, a refused token
    r = await run_module("gcp:gce_instance", {**base, "image": "bad-image"})
    assert r.status == "Failed" and "The resource 'bad-image' was not found" in str(r.error)
    r = await run_module("gcp:gce_instance", {**base, "image": None})
    assert r.status == "Failed" and "creating one needs image" in str(r.error)
    r = await run_module("gcp:gce_instance", {**base, "token": "ya29.nope-token"})
    assert r.status == "Failed" and "HTTP 401" in str(r.error)


async def test_gce_instance_check_mode(fake: Fake) -> None:
    params = {
        "project": "p1",
        "zone": "z",
        "name": "planned",
        "image": "img",
        "state": "stopped",
        "token": TOKEN,
        "base_url": fake.url,
    }
    text = f"""
    schemaVersion: "1.0.0"
    name: gce
    workloads:
      - name: vm
        process:
          module: gcp:gce_instance
          params: {json.dumps(params)}
    """
    import textwrap

    result = await run_playbook_text(textwrap.dedent(text).lstrip(), check=True)
    summary = result.states["vm"].summary
    assert summary["actions"] == ["created", "stopped"] and summary["status"] == "TERMINATED"
    assert "planned" not in fake.instances


AZ_NIC = "/subscriptions/s1/resourceGroups/ci/providers/Microsoft.Network/networkInterfaces/nic1"


async def test_azure_vm_lifecycle(fake: Fake) -> None:
    base = {
        "subscription_id": "s1",
        "resource_group": "ci",
        "name": "runner-1",
        "location": "westeurope",
        "image": "Canonical:ubuntu:22_04-lts:latest",
        "network_interface_id": AZ_NIC,
        "ssh_public_key": "ssh-ed25519 AAAAC3Nza test@ci",
        "tags": {"team": "ci"},
        "base_url": fake.https_url,
        "login_url": f"{fake.https_url}/login",
        "ca_file": fake.ca_file,
        "poll_interval": 0.05,
        "tenant_id": "t1",
        "client_id": "c1",
        "client_secret": "sp-secret-value",
    }
    r = await run_module("azure:vm_instance", {**base, "state": "absent"})
    assert r.ok and r.summary["changed"] is False and r.summary["power_state"] == "absent"
    r = await run_module("azure:vm_instance", base)
    assert r.ok, r.error
    s = r.summary
    assert s["actions"] == ["created"] and s["power_state"] == "running"
    assert s["private_ip"] == "10.1.0.4" and s["public_ip"] == "20.5.6.7"
    assert s["vm_size"] == "Standard_B1s" and s["tags"] == {"team": "ci"}
    created = fake.vms["runner-1"]["properties"]
    assert created["storageProfile"]["imageReference"]["sku"] == "22_04-lts"
    assert created["osProfile"]["linuxConfiguration"]["disablePasswordAuthentication"] is True
    r = await run_module("azure:vm_instance", base)
    assert r.summary["changed"] is False
    r = await run_module("azure:vm_instance", {**base, "state": "stopped", "tags": {"env": "t"}})
    assert r.ok, r.error
    assert r.summary["actions"] == ["tagged", "deallocated"]
    assert r.summary["power_state"] == "deallocated" and r.summary["tags"] == {
        "team": "ci",
        "env": "t",
    }
    r = await run_module("azure:vm_instance", {**base, "vm_size": "Standard_D2s_v5"})
    assert r.summary["actions"] == ["started"] and any("not changed" in line for _, line in r.logs)
    r = await run_module("azure:vm_instance", {**base, "state": "absent"})
    assert r.summary["actions"] == ["deleted"] and "runner-1" not in fake.vms


async def test_azure_vm_errors_and_check(fake: Fake) -> None:
    base = {
        "subscription_id": "s1",
        "resource_group": "ci",
        "name": "runner-2",
        "base_url": fake.https_url,
        "ca_file": fake.ca_file,
        "poll_interval": 0.05,
        "token": TOKEN,
    }
    r = await run_module("azure:vm_instance", base)
    assert r.status == "Failed"
    assert (
        "creating one needs location, image, network_interface_id, ssh_public_key or admin_password"
        in str(r.error)
    )
    full = {
        **base,
        "location": "westeurope",
        "image": "Canonical:ubuntu:22_04-lts:latest",
        "network_interface_id": AZ_NIC,
        "admin_password": "Adm1n-pa55word!",
    }
    r = await run_module("azure:vm_instance", {**full, "vm_size": "Standard_Quota"})
    assert (
        r.status == "Failed"
        and "cannot create VM 'runner-2': QuotaExceeded quota exceeded" in str(r.error)
    )
    r = await run_module("azure:vm_instance", {**full, "image": "ubuntu"})
    assert r.status == "Failed" and "URN publisher:offer:sku:version" in str(r.error)
    r = await run_module("azure:vm_instance", {**base, "token": "bad-token-123"})
    assert (
        r.status == "Failed" and "HTTP 401" in str(r.error) and "bad-token-123" not in str(r.error)
    )
    r = await run_module(
        "azure:vm_instance",
        {
            **base,
            "token": None,
            "tenant_id": "t",
            "client_id": "c",
            "client_secret": "wrong-sp-secret",
            "login_url": f"{fake.https_url}/login",
        },
    )
    assert r.status == "Failed" and "AADSTS7000215" in str(r.error)
    assert "wrong-sp-secret" not in str(r.error) and "Trace ID" not in str(r.error)
    r = await run_module("azure:vm_instance", {**base, "client_id": "c"})
    assert r.status == "Failed" and "tenant_id, client_id and client_secret" in str(r.error)
    import textwrap

    text = f"""
    schemaVersion: "1.0.0"
    name: az
    workloads:
      - name: vm
        process:
          module: azure:vm_instance
          params: {json.dumps(full)}
    """
    result = await run_playbook_text(textwrap.dedent(text).lstrip(), check=True)
    summary = result.states["vm"].summary
    assert summary["actions"] == ["created"] and summary["power_state"] == "running"
    assert "runner-2" not in fake.vms
