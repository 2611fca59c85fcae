"""Who is on the other end of an RPC: the unix socket's local identity or a client
certificate (CN and SHA-256 fingerprint)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["Identity", "fingerprint"]


def fingerprint(der: bytes) -> str:
    """``sha256:<hex>`` of a DER certificate (what ``--client-allowlist`` lists)."""
    return "sha256:" + hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class Identity:
    name: str  # the certificate's CN (its fingerprint when it has none), or the local name
    transport: str  # "unix" (the 0600 socket) or "tls" (a --listen client)
    cn: str | None = None
    fingerprint: str | None = None
    address: str = ""  # the TLS client's HOST:PORT

    @property
    def local(self) -> bool:
        return self.transport == "unix"
