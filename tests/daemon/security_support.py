"""Certificates and a mutual-TLS gRPC client for the control-plane security tests.

Good certificates come from the real ``gxo admin pki`` commands; the bad ones
(expired, not yet valid, another CA, no clientAuth) are made with cryptography using
the same building blocks, so they differ from good ones in exactly one respect.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from gxo.admin.pki import issue, load_ca, new_key, write_key, write_pem
from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2 as pb
from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2_grpc as pb_grpc

__all__ = ["Pki", "call", "free_port", "gxo", "pb"]


def gxo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "gxo.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Pki:
    """A PKI directory made by ``gxo admin pki`` plus hand-made bad certificates."""

    def __init__(self, folder: Path) -> None:
        self.dir = folder
        for args in (
            ["init"],
            ["issue-server", "--host", "127.0.0.1", "--host", "localhost"],
        ):
            out = gxo("admin", "pki", *args, "--dir", str(folder))
            assert out.returncode == 0, out.stderr

    def client(self, cn: str) -> str:
        out = gxo("admin", "pki", "issue-client", "--dir", str(self.dir), "--cn", cn)
        assert out.returncode == 0, out.stderr
        assert "fingerprint: sha256:" in out.stdout
        return cn

    def fingerprint(self, cn: str) -> str:
        out = gxo("admin", "pki", "fingerprint", str(self.dir / f"{cn}.pem"))
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def bad(
        self,
        name: str,
        cn: str,
        *,
        not_before: datetime | None = None,
        days: int = 30,
        usage: str = "client",
        ca_dir: Path | None = None,
    ) -> str:
        """A client certificate (files NAME.pem, NAME-key.pem) for ``cn`` that is wrong
        in the one given way; returns NAME."""
        ca = load_ca(ca_dir or self.dir)
        key = new_key()
        cert = issue(cn, key, issuer=ca, days=days, not_before=not_before, usage=usage)
        write_key(self.dir / f"{name}-key.pem", key)
        write_pem(self.dir / f"{name}.pem", cert)
        return name

    def expired(self, name: str, cn: str) -> str:
        return self.bad(name, cn, not_before=datetime.now(UTC) - timedelta(days=40), days=30)

    def not_yet_valid(self, name: str, cn: str) -> str:
        return self.bad(name, cn, not_before=datetime.now(UTC) + timedelta(days=2))

    def read(self, name: str) -> bytes:
        return (self.dir / name).read_bytes()

    def channel(self, port: int, cn: str | None) -> grpc.Channel:
        """A mutual-TLS channel as ``cn`` (None: no client certificate at all)."""
        cert = self.read(f"{cn}.pem") if cn else None
        key = self.read(f"{cn}-key.pem") if cn else None
        creds = grpc.ssl_channel_credentials(self.read("ca.pem"), key, cert)
        return grpc.secure_channel(f"127.0.0.1:{port}", creds)

    def stub(self, port: int, cn: str | None) -> Any:
        return pb_grpc.GxoDaemonStub(self.channel(port, cn))


def call(
    stub: Any, method: str, request: Any, timeout: float = 20
) -> tuple[grpc.StatusCode, str, Any]:
    """(status code, details, reply or list of streamed messages) of one RPC."""
    try:
        reply = getattr(stub, method)(request, timeout=timeout)
        if not hasattr(reply, "DESCRIPTOR"):  # a stream
            reply = list(reply)
        return grpc.StatusCode.OK, "", reply
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or "", None
