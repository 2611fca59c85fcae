"""What this host can enforce: the load-time half of fail-closed sandboxing.

:func:`problems` lists, for a :class:`~gxo.config.security.SecurityContext`, every
field the sandbox could not enforce here, each naming the field and why (no root, no
user namespaces, no writable cgroup controller, no libseccomp ...). The loader turns a
non-empty list into a validation error. Import-light: only ``os``; probes are cached.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gxo.config.security import SecurityContext

__all__ = ["CgroupController", "cgroup_controller", "problems", "seccomp_problem"]

CAP_SYS_ADMIN = 21
CAP_SETUID = 7
CAP_SETGID = 6


@dataclass(frozen=True)
class CgroupController:
    """Where sandboxes get a child group for one controller (memory, pids, cpu)."""

    name: str
    version: int  # 2: the unified hierarchy; 1: the controller's own (hybrid host)
    parent: str  # this process's group: sandboxes' groups are created in it


def _effective_caps() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def has_cap(number: int) -> bool:
    return bool(_effective_caps() >> number & 1)


def _mounts() -> list[tuple[str, str, list[str]]]:
    """(mount point, fs type, super options) of every mount, from /proc/self/mountinfo."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rest = left.split(), right.split()
            if len(fields) >= 5 and len(rest) >= 3:
                out.append((fields[4], rest[0], rest[2].split(",")))
    return out


def _own_groups() -> dict[str, str]:
    """Controller (``""`` for v2) -> this process's group path, from /proc/self/cgroup."""
    groups = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            for name in names.split(",") if names else [""]:
                groups[name] = path
    return groups


def _delegated(parent: str, name: str) -> bool:
    try:
        with open(os.path.join(parent, "cgroup.subtree_control")) as f:
            return name in f.read().split()
    except OSError:
        return False


@functools.cache
def cgroup_controller(name: str) -> CgroupController | str:
    """The writable group for controller ``name``, or why there is none."""
    if not sys.platform.startswith("linux"):
        return "cgroups are Linux only"
    try:
        mounts, groups = _mounts(), _own_groups()
    except OSError as exc:
        return f"cannot read the cgroup mounts ({exc.strerror})"
    seen = []
    for point, fstype, _options in mounts:
        if fstype == "cgroup2" and "" in groups:
            parent = os.path.join(point, groups[""].lstrip("/"))
            try:
                with open(os.path.join(parent, "cgroup.controllers")) as f:
                    available = f.read().split()
            except OSError:
                continue
            if name not in available:
                seen.append(f"cgroup v2 at {point} has no {name} controller")
                continue
            if not os.access(parent, os.W_OK):
                seen.append(f"{parent} is not writable")
                continue
            if groups[""] not in ("", "/") and not _delegated(parent, name):
                # "no internal processes": a group holding processes (gxo's own) cannot
                # enable a controller for its children; it must be enabled already.
                seen.append(
                    f"the {name} controller is not enabled for the child groups of {parent} "
                    "(cgroup.subtree_control)"
                )
                continue
            return CgroupController(name, 2, parent)
    for point, fstype, options in mounts:
        if fstype == "cgroup" and name in options and name in groups:
            parent = os.path.join(point, groups[name].lstrip("/"))
            if os.access(parent, os.W_OK):
                return CgroupController(name, 1, parent)
            seen.append(f"{parent} is not writable")
    return "; ".join(seen) or f"no cgroup hierarchy with the {name} controller is mounted"


@functools.cache
def seccomp_problem() -> str | None:
    """Why seccomp filters cannot be installed here, or None."""
    if not sys.platform.startswith("linux"):
        return "seccomp is Linux only"
    import importlib.util

    if importlib.util.find_spec("pyseccomp") is None:
        return "the pyseccomp package (libseccomp bindings) is not installed"
    import ctypes

    try:
        ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return "libseccomp.so.2 is not installed (Debian: apt-get install libseccomp2)"
    return None


def _user_problem(user: str) -> str | None:
    if os.geteuid() != 0 or not (has_cap(CAP_SETUID) and has_cap(CAP_SETGID)):
        return f"user: switching to {user!r} needs root (gxo runs as uid {os.geteuid()})"
    head = user.split(":", 1)[0]
    if head.isdigit():
        return None
    import pwd

    try:
        pwd.getpwnam(head)
    except KeyError:
        return f"user: no user named {head!r} on this host"
    return None


def problems(context: SecurityContext) -> list[str]:
    """Every field of ``context`` this host cannot enforce, each with the reason."""
    if not sys.platform.startswith("linux"):
        return ["security_context: sandboxing needs Linux (namespaces, seccomp, cgroups)"]
    found: list[str] = []
    namespaces = context.effective_namespaces()
    root = os.geteuid() == 0 and has_cap(CAP_SYS_ADMIN)
    if "user" in namespaces:
        try:
            with open("/proc/sys/user/max_user_namespaces") as f:
                if int(f.read().strip() or 0) <= 0:
                    found.append("namespaces: 'user' is disabled (user.max_user_namespaces = 0)")
        except OSError:
            found.append("namespaces: 'user' is not supported by this kernel")
    elif not root:
        for ns in namespaces:
            found.append(
                f"namespaces: {ns!r} needs root (CAP_SYS_ADMIN) or the 'user' namespace "
                f"(gxo runs as uid {os.geteuid()} without CAP_SYS_ADMIN)"
            )
    if context.user is not None:
        problem = _user_problem(context.user)
        if problem:
            found.append(problem)
    limits = context.limits
    if limits is not None:
        for field, controller in (("memory", "memory"), ("pids", "pids")):
            if getattr(limits, field) is not None:
                where = cgroup_controller(controller)
                if isinstance(where, str):
                    found.append(
                        f"limits.{field}: needs a writable cgroup with the {controller} "
                        f"controller ({where})"
                    )
    if context.seccomp != "unconfined":
        problem = seccomp_problem()
        if problem:
            found.append(f"seccomp: {context.seccomp!r} cannot be applied: {problem}")
    caps = context.capabilities
    if caps is not None and caps.add:
        from gxo.config.security import CAPABILITIES

        if context.user is not None:
            found.append("capabilities.add: cannot keep capabilities for a non-root user")
        for name in caps.add:
            if name == "ALL" or not has_cap(CAPABILITIES[name]):
                found.append(f"capabilities.add: gxo itself does not hold CAP_{name}")
    return found
