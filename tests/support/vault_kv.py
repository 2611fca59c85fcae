"""A local HTTP server speaking the parts of HashiCorp Vault's API the vault:* modules use.

No ``vault`` binary ships with Debian or PyPI, so the tests run against this server
(stdlib, in a thread, on a free 127.0.0.1 port). It implements, as Vault documents them:

    POST /v1/auth/approle/login            {role_id, secret_id} -> {"auth": {"client_token"}}
    GET  /v1/<kv2 mount>/data/<path>       ?version=N -> {"data": {"data", "metadata"}}
    POST /v1/<kv2 mount>/data/<path>       {"data", "options": {"cas"}} -> {"data": metadata}
    GET  /v1/<kv1 mount>/<path>            -> {"data": {...}}
    POST /v1/<kv1 mount>/<path>            body is the data -> 204

Every other request needs ``X-Vault-Token`` (403 {"errors": ["permission denied"]}
otherwise); unknown secrets answer 404 {"errors": []}; a failed check-and-set answers
400 like Vault ("check-and-set parameter did not match the current version"). When
``namespace`` is set, requests must carry that ``X-Vault-Namespace``.
``server.requests`` records (method, path, token) of every request.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT_TOKEN = "hvs.root-token-for-tests"
ROLE_ID = "role-1234"
SECRET_ID = "secret-id-5678"
APPROLE_TOKEN = "hvs.approle-issued-token"


@dataclass
class VaultKV:
    url: str = ""
    kv1_mounts: tuple[str, ...] = ("kv1",)
    namespace: str | None = None
    kv2: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # path -> versions
    kv1: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(state: VaultKV) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            return json.loads(raw) if raw else {}

        def _route(self, method: str) -> None:
            parts = urlsplit(self.path)
            token = self.headers.get("X-Vault-Token")
            with state.lock:
                state.requests.append((method, parts.path, token))
            if (
                state.namespace is not None
                and self.headers.get("X-Vault-Namespace") != state.namespace
            ):
                return self._send(403, {"errors": ["permission denied (namespace)"]})
            if parts.path == "/v1/auth/approle/login" and method == "POST":
                body = self._body()
                if body.get("role_id") == ROLE_ID and body.get("secret_id") == SECRET_ID:
                    return self._send(
                        200, {"auth": {"client_token": APPROLE_TOKEN, "lease_duration": 60}}
                    )
                return self._send(400, {"errors": ["invalid role or secret ID"]})
            if token not in (ROOT_TOKEN, APPROLE_TOKEN):
                return self._send(403, {"errors": ["permission denied"]})
            segments = parts.path.split("/")
            if len(segments) < 4 or segments[1] != "v1":
                return self._send(404, {"errors": []})
            mount = segments[2]
            if mount in state.kv1_mounts:
                return self._kv1(method, "/".join(segments[3:]))
            if segments[3] != "data" or len(segments) < 5:
                return self._send(404, {"errors": []})
            return self._kv2(method, "/".join(segments[4:]), parse_qs(parts.query))

        def _kv1(self, method: str, path: str) -> None:
            if method == "GET":
                if path not in state.kv1:
                    return self._send(404, {"errors": []})
                return self._send(200, {"data": state.kv1[path], "lease_duration": 2764800})
            state.kv1[path] = self._body()
            return self._send(204)

        def _kv2(self, method: str, path: str, query: dict[str, list[str]]) -> None:
            versions = state.kv2.get(path, [])
            if method == "GET":
                if not versions:
                    return self._send(404, {"errors": []})
                wanted = int(query["version"][0]) if "version" in query else len(versions)
                if not 1 <= wanted <= len(versions):
                    return self._send(404, {"errors": []})
                entry = versions[wanted - 1]
                return self._send(
                    200, {"data": {"data": entry["data"], "metadata": entry["metadata"]}}
                )
            body = self._body()
            cas = (body.get("options") or {}).get("cas")
            if cas is not None and cas != len(versions):
                return self._send(
                    400, {"errors": ["check-and-set parameter did not match the current version"]}
                )
            metadata = {
                "created_time": datetime.now(UTC).isoformat(),
                "custom_metadata": None,
                "deletion_time": "",
                "destroyed": False,
                "version": len(versions) + 1,
            }
            state.kv2.setdefault(path, []).append({"data": body.get("data"), "metadata": metadata})
            return self._send(200, {"data": metadata})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PUT(self) -> None:
            self._route("POST")

    return Handler


@contextlib.contextmanager
def serve_vault(namespace: str | None = None) -> Iterator[VaultKV]:
    state = VaultKV(namespace=namespace)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
