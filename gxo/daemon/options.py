"""Everything ``gxo daemon`` was started with, as one value passed from the CLI to
:func:`gxo.daemon.server.run_daemon` and :func:`gxo.daemon.server.serve`.

One object instead of a keyword per flag: the security, state-encryption, webhook and
confinement features each read their own fields without touching the others' plumbing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DaemonOptions"]


@dataclass
class DaemonOptions:
    socket: str | None = None
    state: str = "sqlite:///~/.gxo/state.db"
    grace: float = 10.0
    log_level: str = "info"
    log_format: str = "text"
    history: int = 100
    # fleet
    fleet: str | None = None
    member: str | None = None
    lease_ttl: float = 10.0
    # TCP control plane with mutual TLS, RBAC and audit (security)
    listen: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    client_ca: str | None = None
    tls_dir: str | None = None
    client_allowlist: str | None = None
    rbac: str | None = None
    audit_log: str | None = None
    local_identity: str = "local-admin"
    # encrypted state
    state_key_file: str | None = None
    state_key_cmd: str | None = None
    # webhook event sources: the daemon's own HTTP listener
    http: str | None = None
    # filesystem confinement of daemon playbooks
    allow_paths: list[str] = field(default_factory=list)
    # sandboxing: refuse playbooks whose workloads have no security_context
    require_sandbox: bool = False
    # third-party modules (docs/module-signing.md); the CLI verifies them before serve()
    modules_dirs: list[str] = field(default_factory=list)
    trusted_keys: list[str] = field(default_factory=list)
    module_verification: str | None = None  # None: enforce
    user_config: str | None = None
