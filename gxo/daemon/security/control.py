"""The daemon's security settings as one value: read and checked from the options
before anything starts (a bad file or flag is exit 2 naming it), then attached to the
gRPC server (the interceptor) and started beside it (the TLS listener)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gxo.daemon.security.audit import AuditLog
from gxo.daemon.security.interceptor import RbacInterceptor
from gxo.daemon.security.rbac import Policy, RbacError, load_policy
from gxo.daemon.security.tls import TlsConfig, TlsError, TlsListener, tls_config

__all__ = ["Security", "SecurityError", "prepare"]

log = logging.getLogger("gxo.daemon")

_TLS_FLAGS = (
    ("tls_cert", "--tls-cert"),
    ("tls_key", "--tls-key"),
    ("client_ca", "--client-ca"),
    ("tls_dir", "--tls-dir"),
    ("client_allowlist", "--client-allowlist"),
)


class SecurityError(Exception):
    """A bad security flag or file (exit 2)."""


@dataclass
class Security:
    policy: Policy
    tls: TlsConfig | None
    audit: AuditLog | None
    rbac_file: str | None
    listener: TlsListener | None = field(default=None)

    def interceptor(self, daemon: Any) -> RbacInterceptor:
        return RbacInterceptor(self.policy, daemon.resolve, self._identify, self.audit)

    def _identify(self, peer: str) -> Any:
        return self.listener.identity(peer) if self.listener is not None else None

    async def start(self, socket_path: Path) -> str | None:
        """Start the TLS listener (with --listen); returns the address it listens on."""
        if self.tls is None:
            return None
        self.listener = TlsListener(self.tls, socket_path, self.audit)
        try:
            return await self.listener.start()
        except TlsError as exc:
            await self.listener.close()
            raise SecurityError(str(exc)) from None
        except OSError as exc:
            await self.listener.close()
            raise SecurityError(
                f"--listen {self.tls.host}:{self.tls.port}: cannot listen: {exc.strerror}"
            ) from None

    async def stop_listening(self) -> None:
        if self.listener is not None:
            await self.listener.close()

    def close(self) -> None:
        if self.audit is not None:
            self.audit.close()


def prepare(options: Any) -> Security:
    tls = None
    if options.listen:
        try:
            tls = tls_config(options)
        except TlsError as exc:
            raise SecurityError(str(exc)) from None
    else:
        given = [flag for attr, flag in _TLS_FLAGS if getattr(options, attr)]
        if given:
            raise SecurityError(f"{', '.join(given)} only apply with --listen HOST:PORT")
    local = options.local_identity or "local-admin"
    try:
        policy = load_policy(options.rbac, local) if options.rbac else Policy(local_identity=local)
    except RbacError as exc:
        raise SecurityError(str(exc)) from None
    if tls is not None and not options.rbac:
        log.warning(
            "--listen without --rbac: TLS clients are authenticated but hold no role, so "
            "every RPC they make is denied; give --rbac FILE to grant roles"
        )
    audit = None
    if options.audit_log:
        try:
            audit = AuditLog(str(Path(options.audit_log).expanduser()))
        except OSError as exc:
            raise SecurityError(
                f"--audit-log {options.audit_log}: cannot open for appending: {exc.strerror}"
            ) from None
    return Security(policy, tls, audit, options.rbac)
