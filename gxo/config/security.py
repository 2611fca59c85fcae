"""``security_context``: how a workload's module is sandboxed (docs/sandbox.md).

Fail closed: every field is either enforced by :mod:`gxo.engine.sandbox` or refused
at load time. A field this host cannot enforce (no root for ``user``, no writable
cgroup controller for ``limits.memory``, no libseccomp for ``seccomp``, no user
namespaces ...) is a validation error naming the field and why; it is never ignored.

A playbook-level ``security_context`` is the default of every workload; a workload's
own ``security_context`` overrides it field by field (``limits`` and
``capabilities`` merge key by key). :func:`merge` does that.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "CAPABILITIES",
    "Capabilities",
    "Limits",
    "SecurityContext",
    "format_size",
    "merge",
    "new_list",
    "parse_size",
    "require_sandboxed",
]

Namespace = Literal["mount", "pid", "net", "ipc", "uts", "user"]

# Linux capability numbers (linux/capability.h), by name without the CAP_ prefix.
CAPABILITIES: dict[str, int] = {
    name: number
    for number, name in enumerate(
        [
            "CHOWN",
            "DAC_OVERRIDE",
            "DAC_READ_SEARCH",
            "FOWNER",
            "FSETID",
            "KILL",
            "SETGID",
            "SETUID",
            "SETPCAP",
            "LINUX_IMMUTABLE",
            "NET_BIND_SERVICE",
            "NET_BROADCAST",
            "NET_ADMIN",
            "NET_RAW",
            "IPC_LOCK",
            "IPC_OWNER",
            "SYS_MODULE",
            "SYS_RAWIO",
            "SYS_CHROOT",
            "SYS_PTRACE",
            "SYS_PACCT",
            "SYS_ADMIN",
            "SYS_BOOT",
            "SYS_NICE",
            "SYS_RESOURCE",
            "SYS_TIME",
            "SYS_TTY_CONFIG",
            "MKNOD",
            "LEASE",
            "AUDIT_WRITE",
            "AUDIT_CONTROL",
            "SETFCAP",
            "MAC_OVERRIDE",
            "MAC_ADMIN",
            "SYSLOG",
            "WAKE_ALARM",
            "BLOCK_SUSPEND",
            "AUDIT_READ",
            "PERFMON",
            "BPF",
            "CHECKPOINT_RESTORE",
        ]
    )
}


def new_list() -> list[Any]:
    """The ``default_factory`` of the config models' list fields (not ``list`` itself):
    pydantic asks every factory for its signature, and ``inspect.signature(list)``
    parses the builtin's text signature with ``tokenize``, whose large regex then
    compiles — ~13 M instructions of every ``gxo`` start-up (issue 19)."""
    return []


_SIZE = re.compile(r"^\s*(\d+)\s*([KMGTkmgt]i?)?[Bb]?\s*$")
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


def parse_size(value: int | str) -> int:
    """Bytes from ``256Mi`` (binary), ``100M`` (decimal) or a plain number of bytes."""
    if isinstance(value, bool):
        raise ValueError("a size must be a number of bytes or a string like '256Mi'")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("a size must be positive")
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"invalid size {value!r}: expected bytes or e.g. '256Mi', '1Gi', '100M'")
    number, unit = int(match.group(1)), (match.group(2) or "").lower()
    factor = 1024 ** ("kmgt".index(unit[0]) + 1) if unit.endswith("i") else _UNITS[unit]
    if number <= 0:
        raise ValueError("a size must be positive")
    return number * factor


def format_size(value: int | str) -> str:
    """The size as the user wrote it (``256Mi``), or bytes for a plain number."""
    return str(value).strip() if isinstance(value, str) else f"{value} bytes"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Limits(_Model):
    """Resource limits. memory and pids need a writable cgroup; the others are rlimits."""

    memory: int | str | None = Field(
        None, description="Memory limit (cgroup), e.g. 256Mi; exceeding it kills the sandbox"
    )
    cpu_seconds: int | None = Field(None, ge=1, description="CPU time limit (RLIMIT_CPU)")
    pids: int | None = Field(None, ge=1, description="Processes and threads at once (cgroup)")
    open_files: int | None = Field(None, ge=3, description="Open file descriptors (RLIMIT_NOFILE)")
    file_size: int | str | None = Field(
        None, description="Largest file the module may write (RLIMIT_FSIZE), e.g. 100Mi"
    )

    @field_validator("memory", "file_size")
    @classmethod
    def _size(cls, value: int | str | None) -> int | str | None:
        if value is not None:
            parse_size(value)
        return value


class Capabilities(_Model):
    """Linux capabilities dropped from / kept in the sandbox (names with or without CAP_)."""

    drop: list[str] = Field(default_factory=new_list, description="Capabilities to drop, or ALL")
    add: list[str] = Field(default_factory=new_list, description="Capabilities kept despite drop")

    @field_validator("drop", "add")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        out = []
        for raw in value:
            name = str(raw).upper().removeprefix("CAP_")
            if name != "ALL" and name not in CAPABILITIES:
                raise ValueError(f"unknown capability {raw!r}")
            out.append(name)
        return out


class SecurityContext(_Model):
    """How the workload's module is sandboxed (a re-executed child; docs/sandbox.md)."""

    user: str | None = Field(
        None, description="Run as this user: a name (nobody) or uid[:gid]; needs root"
    )
    namespaces: list[Namespace] | None = Field(
        None,
        description="Namespaces to unshare (mount, pid, net, ipc, uts, user); "
        "default: mount, pid, ipc, uts, plus net when network is none",
    )
    read_only_root: bool = Field(False, description="The root file system is read-only inside")
    writable_paths: list[str] = Field(
        default_factory=new_list,
        description="Paths relative to the workspace kept writable (with read_only_root)",
    )
    hidden_paths: list[str] = Field(
        default_factory=new_list, description="Absolute paths covered by an empty tmpfs inside"
    )
    network: Literal["none", "host"] = Field(
        "host", description="none: an empty network namespace (loopback only); host: shared"
    )
    limits: Limits | None = Field(None, description="Resource limits")
    seccomp: Literal["default", "strict", "unconfined"] = Field(
        "default", description="System call filter profile"
    )
    no_new_privileges: bool = Field(
        True, description="No privilege gain through setuid binaries or file capabilities"
    )
    capabilities: Capabilities | None = Field(None, description="Capabilities to drop / keep")

    @field_validator("namespaces")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("a namespace is listed twice")
        return value

    @field_validator("writable_paths")
    @classmethod
    def _relative(cls, value: list[str]) -> list[str]:
        for path in value:
            parts = str(path).replace("\\", "/").split("/")
            if str(path).startswith("/") or ".." in parts or not str(path).strip():
                raise ValueError(
                    f"{path!r} must be a path inside the workspace (relative, no '..')"
                )
        return value

    @field_validator("hidden_paths")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        for path in value:
            if not str(path).startswith("/") or str(path).rstrip("/") == "":
                raise ValueError(f"{path!r} must be an absolute path other than /")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SecurityContext:
        ns = self.effective_namespaces()
        if self.network == "none" and "net" not in ns:
            raise ValueError("network: none needs the 'net' namespace in namespaces")
        needs_mount = self.read_only_root or self.writable_paths or self.hidden_paths
        if needs_mount and "mount" not in ns:
            raise ValueError(
                "read_only_root, writable_paths and hidden_paths need the 'mount' namespace"
            )
        if "pid" in ns and "mount" not in ns:
            raise ValueError("the 'pid' namespace needs the 'mount' namespace (a private /proc)")
        if self.writable_paths and not self.read_only_root:
            raise ValueError("writable_paths only makes sense with read_only_root: true")
        # Fail closed: what this host cannot enforce is refused now, not ignored later.
        from gxo.engine.sandbox.host import problems

        found = problems(self)
        if found:
            raise ValueError("cannot be enforced on this host: " + "; ".join(found))
        return self

    def effective_namespaces(self) -> list[str]:
        if self.namespaces is not None:
            return list(self.namespaces)
        ns = ["mount", "pid", "ipc", "uts"]
        if self.network == "none":
            ns.append("net")
        return ns


def merge(default: SecurityContext | None, own: SecurityContext | None) -> SecurityContext | None:
    """``own`` over the playbook-level ``default``: fields ``own`` sets win, limits and
    capabilities merge key by key."""
    if default is None or own is None:
        return own if default is None else default
    data = default.model_dump(exclude_unset=True)
    for key, value in own.model_dump(exclude_unset=True).items():
        if key in ("limits", "capabilities") and isinstance(data.get(key), dict) and value:
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return SecurityContext.model_validate(data)


def as_dict(context: Any) -> dict[str, Any]:
    """The JSON form handed to the sandbox child."""
    return context.model_dump(mode="json")


def require_sandboxed(playbook: Any) -> None:
    """``gxo daemon --require-sandbox``: refuse a playbook with an unsandboxed workload."""
    from gxo.errors import PlaybookValidationError

    bare = [w.name for w in playbook.workloads if w.security_context is None]
    if bare:
        raise PlaybookValidationError(
            f"playbook '{playbook.name}': the daemon requires a sandbox (--require-sandbox) "
            f"and these workloads have no security_context: {', '.join(bare)} "
            "(set one at playbook level or per workload; docs/sandbox.md)"
        )
