"""``--audit-log FILE``: one JSON line per RPC decision, appended and fsync'd.

A line holds who (identity, transport, certificate fingerprint, client address), what
(method, target playbook/workload), the decision (``allowed``) and the RPC's result
code; for a TLS connection refused before any RPC, ``method`` is ``-`` and ``reason``
says why. Request and response payloads are never written; names pass through the
daemon's secret redaction. The file is opened ``O_APPEND`` (0600, never through a
symlink) and each line is written by one ``write`` and fsync'd off the event loop. A
write that fails (disk full) is logged as an error with the line's method and identity;
the RPC itself is not failed for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from gxo.daemon.logsetup import redact
from gxo.daemon.security.identity import Identity

__all__ = ["AuditLog"]

log = logging.getLogger("gxo.daemon.audit")


class AuditLog:
    def __init__(self, path: str) -> None:
        """Raises OSError when the file cannot be opened for appending."""
        self.path = path
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        self.fd: int | None = os.open(path, flags, 0o600)
        os.fchmod(self.fd, 0o600)
        self._lock = asyncio.Lock()

    async def record(
        self,
        identity: Identity | None,
        method: str,
        target: str,
        allowed: bool,
        code: str,
        **extra: Any,
    ) -> None:
        line: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "identity": redact(identity.name) if identity else None,
            "transport": identity.transport if identity else "tls",
            "fingerprint": identity.fingerprint if identity else None,
            "address": identity.address if identity and identity.address else None,
            "method": method,
            "target": redact(target) if target else None,
            "allowed": allowed,
            "code": code,
        }
        line.update({k: redact(v) if isinstance(v, str) else v for k, v in extra.items()})
        data = (json.dumps(line, sort_keys=False) + "\n").encode()
        async with self._lock:  # lines in decision order, one fsync'd write each
            try:
                await asyncio.to_thread(self._append, data)
            except OSError as exc:
                log.error(
                    "cannot write the audit log %s (%s): lost the line of %s by %s",
                    self.path,
                    exc.strerror,
                    method,
                    line["identity"],
                )

    def _append(self, data: bytes) -> None:
        if self.fd is None:
            return
        os.write(self.fd, data)
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
