"""``--rbac FILE``: subjects (certificate CN or fingerprint) → roles → RPC methods,
optionally limited to playbook name globs. Deny by default.

.. code-block:: yaml

    roles:                      # custom roles; admin, operator, viewer are built in
      deployer: { methods: [ApplyPlaybook, GetWorkloadStatus, ListWorkloads],
                  playbooks: ["web-*"] }
    subjects:
      - { cn: alice, roles: [admin] }
      - { cn: bob, roles: [viewer] }
      - { fingerprint: "sha256:…", roles: [operator] }

The unix socket's clients are the local identity (``--local-identity``, default
``local-admin``): ``admin`` unless a subject with that ``cn`` gives other roles.
A TLS client no subject names has no role, so every RPC it makes is denied.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gxo.daemon.security.identity import Identity

__all__ = ["BUILTIN_ROLES", "METHODS", "Decision", "Policy", "RbacError", "Role", "load_policy"]


def _service_methods() -> frozenset[str]:
    from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2 as pb

    return frozenset(m.name for m in pb.DESCRIPTOR.services_by_name["GxoDaemon"].methods)


METHODS = _service_methods()
VIEWER = frozenset(
    {"GetWorkloadStatus", "ListWorkloads", "ListRuns", "GetLogs", "StreamEvents", "Health"}
    | {"ListPaused"}
)
# An operator answers paused workloads (control:wait_for_signal): resume and reject.
OPERATOR = VIEWER | frozenset(
    {"ApplyPlaybook", "StopWorkload", "StartWorkload", "ResumeWorkload", "RejectWorkload"}
)
_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")


class RbacError(Exception):
    """A bad ``--rbac`` file: the message starts with ``FILE:LINE:``."""


@dataclass(frozen=True)
class Role:
    name: str
    methods: frozenset[str]
    playbooks: tuple[str, ...] | None = None  # None: every playbook

    def covers(self, playbook: str) -> bool:
        if self.playbooks is None:
            return True
        return bool(playbook) and any(fnmatch.fnmatchcase(playbook, g) for g in self.playbooks)


BUILTIN_ROLES = {
    "admin": Role("admin", METHODS),
    "operator": Role("operator", OPERATOR),
    "viewer": Role("viewer", VIEWER),
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # The globs a list/stream answer is narrowed to (a role limited to some playbooks
    # asking for all of them); None: nothing to narrow.
    scope: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Subject:
    cn: str | None
    fingerprint: str | None
    roles: tuple[str, ...]

    def matches(self, identity: Identity) -> bool:
        if self.fingerprint is not None:
            return identity.fingerprint == self.fingerprint
        if identity.local:
            return self.cn == identity.name
        return identity.cn is not None and self.cn == identity.cn


class Policy:
    def __init__(
        self,
        roles: dict[str, Role] | None = None,
        subjects: list[Subject] | None = None,
        *,
        local_identity: str = "local-admin",
    ) -> None:
        self.roles = {**BUILTIN_ROLES, **(roles or {})}
        self.subjects = subjects or []
        self.local_identity = local_identity

    def roles_of(self, identity: Identity) -> list[Role]:
        names = [r for s in self.subjects if s.matches(identity) for r in s.roles]
        if not names and identity.local:
            names = ["admin"]  # the 0600 socket's owner, unless the file says otherwise
        return [self.roles[n] for n in dict.fromkeys(names)]

    def decide(self, identity: Identity, method: str, playbook: str | None) -> Decision:
        """``playbook``: the request's target playbook, "" when it cannot be told, None
        when the request names none (Health; ListWorkloads and StreamEvents for all)."""
        roles = [r for r in self.roles_of(identity) if method in r.methods]
        if not roles:
            return Decision(False)
        if playbook is None:
            if any(r.playbooks is None for r in roles):
                return Decision(True)
            return Decision(True, tuple(g for r in roles for g in r.playbooks or ()))
        return Decision(any(r.covers(playbook) for r in roles))


# -- the file ---------------------------------------------------------------------------


def load_policy(path: str | Path, local_identity: str = "local-admin") -> Policy:
    from gxo.config.yamlsafe import parse_yaml, read_text_file
    from gxo.errors import GxoError

    shown = str(path)
    try:
        text = read_text_file(path, "RBAC file", shown)
        data, positions = parse_yaml(text, shown)
    except GxoError as exc:
        raise RbacError(str(exc)) from None

    def fail(where: tuple[Any, ...], message: str) -> RbacError:
        found = positions.nearest(where) if positions else None
        line = f":{found[0]}" if found else ""
        return RbacError(f"{shown}{line}: {message}")

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise fail((), "an RBAC file is a mapping with 'roles' and 'subjects'")
    for key in data:
        if key not in ("roles", "subjects"):
            raise fail((key,), f"unknown key '{key}' (expected roles, subjects)")
    roles = _roles(data.get("roles") or {}, fail)
    known = {**BUILTIN_ROLES, **roles}
    subjects = _subjects(data.get("subjects") or [], known, fail)
    return Policy(roles, subjects, local_identity=local_identity)


def _strings(value: Any, where: tuple[Any, ...], what: str, fail: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise fail(where, f"{what} must be a list of non-empty strings")
    return list(value)


def _roles(raw: Any, fail: Any) -> dict[str, Role]:
    if not isinstance(raw, dict):
        raise fail(("roles",), "roles must be a mapping of role name → {methods, playbooks}")
    roles: dict[str, Role] = {}
    for name, spec in raw.items():
        where = ("roles", name)
        if name in BUILTIN_ROLES:
            raise fail(where, f"role '{name}' is built in and cannot be redefined")
        if not isinstance(spec, dict):
            raise fail(where, f"role '{name}' must be a mapping with methods (and playbooks)")
        for key in spec:
            if key not in ("methods", "playbooks"):
                raise fail((*where, key), f"role '{name}': unknown key '{key}'")
        if "methods" not in spec:
            raise fail(where, f"role '{name}' needs methods")
        methods = _strings(spec["methods"], (*where, "methods"), f"role '{name}': methods", fail)
        for i, method in enumerate(methods):
            if method != "*" and method not in METHODS:
                raise fail(
                    (*where, "methods", i),
                    f"role '{name}': unknown method '{method}' "
                    f"(known: {', '.join(sorted(METHODS))}, or *)",
                )
        globs = None
        if spec.get("playbooks") is not None:
            pwhere = (*where, "playbooks")
            globs = tuple(_strings(spec["playbooks"], pwhere, f"role '{name}': playbooks", fail))
        allowed = METHODS if "*" in methods else frozenset(methods)
        roles[name] = Role(name, allowed, globs)
    return roles


def _subjects(raw: Any, known: dict[str, Role], fail: Any) -> list[Subject]:
    if not isinstance(raw, list):
        raise fail(("subjects",), "subjects must be a list of {cn|fingerprint, roles}")
    subjects = []
    for i, entry in enumerate(raw):
        where = ("subjects", i)
        if not isinstance(entry, dict):
            raise fail(where, "a subject is a mapping: {cn: NAME, roles: [...]}")
        for key in entry:
            if key not in ("cn", "fingerprint", "roles"):
                raise fail((*where, key), f"unknown key '{key}' (expected cn|fingerprint, roles)")
        if ("cn" in entry) == ("fingerprint" in entry):
            raise fail(where, "a subject names exactly one of cn or fingerprint")
        cn = entry.get("cn")
        fp = entry.get("fingerprint")
        if cn is not None and (not isinstance(cn, str) or not cn):
            raise fail((*where, "cn"), "cn must be a non-empty string")
        if fp is not None:
            fp = fp.lower() if isinstance(fp, str) else fp
            if not isinstance(fp, str) or not _FINGERPRINT.match(fp):
                raise fail((*where, "fingerprint"), "fingerprint must be sha256:<64 hex digits>")
        names = _strings(entry.get("roles"), (*where, "roles"), "roles", fail)
        for j, role in enumerate(names):
            if role not in known:
                raise fail(
                    (*where, "roles", j),
                    f"unknown role '{role}' (defined: {', '.join(sorted(known))})",
                )
        subjects.append(Subject(cn, fp, tuple(names)))
    return subjects
