"""Kernel primitives of the sandbox child: namespaces, mounts, rlimits, capabilities,
no_new_privs and seccomp (ctypes on libc; libseccomp through pyseccomp).

Every function raises :class:`SandboxSetupError` naming the ``security_context`` field
it enforces and the errno: a sandbox that cannot be set up never runs the module.
Only ``os``, ``ctypes``, ``resource`` and ``socket`` are imported here.
"""

from __future__ import annotations

import ctypes
import os
import resource
import struct
from typing import Any

__all__ = [
    "SandboxSetupError",
    "apply_capabilities",
    "apply_rlimits",
    "apply_seccomp",
    "drop_bounding",
    "hide_paths",
    "loopback_up",
    "mount_proc",
    "no_new_privs",
    "private_mounts",
    "read_only_root",
    "switch_user",
    "unshare",
]

CLONE = {
    "mount": 0x00020000,
    "uts": 0x04000000,
    "ipc": 0x08000000,
    "user": 0x10000000,
    "pid": 0x20000000,
    "net": 0x40000000,
}
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME = 1 << 18, 1 << 21
# statvfs f_flag bits -> the mount flags a bind remount must keep (locked flags)
_ST_TO_MS: tuple[tuple[int, int], ...] = (
    (1, MS_RDONLY),
    (2, MS_NOSUID),
    (4, MS_NODEV),
    (8, MS_NOEXEC),
    (1024, MS_NOATIME),
    (2048, MS_NODIRATIME),
    (4096, MS_RELATIME),
)
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 24, 36, 38
CAP_LAST = 40

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong]
_libc.mount.argtypes += [ctypes.c_void_p]


class SandboxSetupError(Exception):
    """The sandbox could not be set up as the security_context asks (fail closed)."""


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SandboxSetupError(f"{what}: {os.strerror(err)} (errno {err})")


def unshare(names: list[str], field: str = "namespaces") -> None:
    flags = 0
    for name in names:
        flags |= CLONE[name]
    if flags:
        _check(_libc.unshare(flags), f"{field}: unshare({', '.join(names)})")


def setns(fd: int, name: str) -> None:
    """Join the namespace open on ``fd`` (for ``pid``: the one of our next children)."""
    _check(_libc.setns(fd, CLONE[name]), f"namespaces: setns({name})")


def become_subreaper() -> None:
    """Orphaned descendants come to this process (to be reaped), not to the host's init."""
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def set_pdeathsig(signum: int) -> None:
    _libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None, what: str
) -> None:
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"{what}: mount {target}",
    )


def private_mounts() -> None:
    """Mounts made from now on stay in this mount namespace."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None, "namespaces: mount")


def mount_proc() -> None:
    """A /proc of the new pid namespace: host processes are not visible."""
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None, "namespaces: pid")


def _unescape(path: str) -> str:
    return path.encode().decode("unicode_escape") if "\\" in path else path


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [_unescape(line.split()[4]) for line in f]


def _kept_flags(path: str) -> int:
    flags = 0
    st = os.statvfs(path).f_flag
    for bit, ms in _ST_TO_MS:
        if st & bit:
            flags |= ms
    return flags


def read_only_root(writable: list[str]) -> None:
    """Every mount read-only but /proc and the ``writable`` bind mounts (device nodes stay
    usable: a read-only mount does not apply to them)."""
    points = _mount_points()
    for path in writable:
        _mount(path, path, None, MS_BIND | MS_REC, None, "writable_paths")
    keep = set(writable)
    for point in points:
        if point in keep or point.startswith("/proc") or not os.path.lexists(point):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | _kept_flags(point)
        _mount(None, point, None, flags, None, "read_only_root")


def hide_paths(paths: list[str]) -> None:
    """An empty read-only tmpfs over each directory, /dev/null over each file."""
    for path in paths:
        if os.path.isdir(path):
            _mount(
                "gxo-hidden",
                path,
                "tmpfs",
                MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                "size=4k,mode=0555",
                "hidden_paths",
            )
        elif os.path.lexists(path):
            _mount("/dev/null", path, None, MS_BIND, None, "hidden_paths")
            _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None, "hidden_paths")


def loopback_up() -> None:
    """Bring ``lo`` up in the new network namespace (nothing else exists there)."""
    import fcntl
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), 0x8913, req))[1]
        fcntl.ioctl(s.fileno(), 0x8914, struct.pack("16sH14x", b"lo", flags | 1))


def apply_rlimits(limits: dict[str, Any]) -> None:
    from gxo.config.security import parse_size

    table = (
        ("cpu_seconds", resource.RLIMIT_CPU, int),
        ("open_files", resource.RLIMIT_NOFILE, int),
        ("file_size", resource.RLIMIT_FSIZE, parse_size),
    )
    for field, which, convert in table:
        value = limits.get(field)
        if value is not None:
            n = convert(value)
            try:
                resource.setrlimit(which, (n, n))
            except (OSError, ValueError) as exc:
                raise SandboxSetupError(f"limits.{field}: setrlimit: {exc}") from None


def resolve_user(user: str) -> tuple[int, int]:
    head, _, group = user.partition(":")
    if head.isdigit():
        uid = int(head)
        gid = int(group) if group.isdigit() else uid
        return uid, gid
    import pwd

    try:
        entry = pwd.getpwnam(head)
    except KeyError:
        raise SandboxSetupError(f"user: no user named {head!r}") from None
    if group.isdigit():
        return entry.pw_uid, int(group)
    if group:
        import grp

        try:
            return entry.pw_uid, grp.getgrnam(group).gr_gid
        except KeyError:
            raise SandboxSetupError(f"user: no group named {group!r}") from None
    return entry.pw_uid, entry.pw_gid


def switch_user(uid: int, gid: int) -> None:
    try:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        raise SandboxSetupError(f"user: cannot switch to {uid}:{gid}: {exc.strerror}") from None


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _dropped(drop: list[str], add: list[str]) -> set[int]:
    from gxo.config.security import CAPABILITIES

    dropped = set(range(CAP_LAST + 1)) if "ALL" in drop else {CAPABILITIES[name] for name in drop}
    return dropped - {CAPABILITIES[name] for name in add if name != "ALL"}


def drop_bounding(drop: list[str], add: list[str]) -> None:
    """Drop from the bounding set (before a user switch: it needs CAP_SETPCAP)."""
    for cap in sorted(_dropped(drop, add)):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            if err != 22:  # EINVAL: a capability this kernel does not know
                raise SandboxSetupError(f"capabilities.drop: {os.strerror(err)}")


def apply_capabilities(drop: list[str], add: list[str]) -> None:
    """Drop capabilities from the current sets; keep ``add``."""
    dropped = _dropped(drop, add)
    header = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data), "capabilities: capget")
    for cap in dropped:
        word, bit = divmod(cap, 32)
        mask = ~(1 << bit) & 0xFFFFFFFF
        data[word].effective &= mask
        data[word].permitted &= mask
        data[word].inheritable &= mask
    _check(_libc.capset(ctypes.byref(header), data), "capabilities: capset")


def no_new_privs() -> None:
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privileges: prctl")


no_new_privs_ = no_new_privs  # apply_seccomp's parameter of that name hides the function


# Denied by the default profile (EPERM): what a workload never needs and an escape does.
DEFAULT_DENY = [
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kexec_load",
    "kexec_file_load",
    "bpf",
    "init_module",
    "finit_module",
    "delete_module",
    "keyctl",
    "add_key",
    "request_key",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "stime",
    "iopl",
    "ioperm",
    "open_by_handle_at",
    "name_to_handle_at",
    "perf_event_open",
    "quotactl",
    "userfaultfd",
    "lookup_dcookie",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    "vhangup",
    "nfsservctl",
    "syslog",
    "personality",
    "uselib",
]

# Allowed by the strict profile (everything else: EPERM): a Python process doing
# file I/O, pipes, timers and child processes, and I/O on sockets it was handed or made
# with socketpair (asyncio's self-pipe); socket(), connect() and bind() are refused.
STRICT_ALLOW = [
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "preadv",
    "pwritev",
    "preadv2",
    "pwritev2",
    "open",
    "openat",
    "openat2",
    "close",
    "close_range",
    "stat",
    "fstat",
    "lstat",
    "newfstatat",
    "statx",
    "lseek",
    "mmap",
    "mprotect",
    "munmap",
    "mremap",
    "madvise",
    "brk",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigtimedwait",
    "sigaltstack",
    "ioctl",
    "access",
    "faccessat",
    "faccessat2",
    "pipe",
    "pipe2",
    "select",
    "pselect6",
    "poll",
    "ppoll",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "dup",
    "dup2",
    "dup3",
    "nanosleep",
    "clock_nanosleep",
    "clock_gettime",
    "clock_getres",
    "gettimeofday",
    "getpid",
    "getppid",
    "gettid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getgroups",
    "getresuid",
    "getresgid",
    "getpgrp",
    "getpgid",
    "getsid",
    "setsid",
    "setpgid",
    "fork",
    "vfork",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "wait4",
    "waitid",
    "kill",
    "tgkill",
    "tkill",
    "uname",
    "fcntl",
    "flock",
    "fsync",
    "fdatasync",
    "truncate",
    "ftruncate",
    "getdents",
    "getdents64",
    "getcwd",
    "chdir",
    "fchdir",
    "rename",
    "renameat",
    "renameat2",
    "mkdir",
    "mkdirat",
    "rmdir",
    "unlink",
    "unlinkat",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "readlink",
    "readlinkat",
    "chmod",
    "fchmod",
    "fchmodat",
    "umask",
    "getrlimit",
    "prlimit64",
    "getrusage",
    "sysinfo",
    "times",
    "futex",
    "set_robust_list",
    "get_robust_list",
    "set_tid_address",
    "arch_prctl",
    "prctl",
    "sched_yield",
    "sched_getaffinity",
    "getrandom",
    "eventfd",
    "eventfd2",
    "timerfd_create",
    "timerfd_settime",
    "timerfd_gettime",
    "signalfd",
    "signalfd4",
    "socketpair",
    "rseq",
    "statfs",
    "fstatfs",
    "utimensat",
    "futimesat",
    "sendfile",
    "copy_file_range",
    "fadvise64",
    "membarrier",
    "mlock",
    "munlock",
    "restart_syscall",
    "getpriority",
    "setpriority",
    "sched_getparam",
    "sched_getscheduler",
    "memfd_create",
    "pidfd_open",
    "pidfd_send_signal",
    "fchown",
    "chown",
    "lchown",
    "fchownat",
    "getcpu",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "shutdown",
    "getsockopt",
    "setsockopt",
    "getsockname",
    "getpeername",
    "capget",
    "capset",
    "setresuid",
    "setresgid",
    "setgroups",
    "setuid",
    "setgid",
]


def _build_filter(profile: str) -> Any:
    """The libseccomp filter of ``profile`` (``default`` or ``strict``), not loaded."""
    import errno

    import pyseccomp as seccomp

    if profile == "strict":
        f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
        for name in STRICT_ALLOW:
            _add(seccomp, f, seccomp.ALLOW, name)
        new_ns = sum(CLONE.values())
        f.add_rule(seccomp.ALLOW, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, new_ns, 0))
        f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    else:
        f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        for name in DEFAULT_DENY:
            _add(seccomp, f, seccomp.ERRNO(errno.EPERM), name)
        # clone3 passes its flags in memory a filter cannot read: ENOSYS makes libc
        # fall back to clone, whose CLONE_NEW* flags (a new namespace) are refused.
        f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
        for flag in ("user", "mount", "pid", "net"):
            f.add_rule(
                seccomp.ERRNO(errno.EPERM),
                "clone",
                seccomp.Arg(0, seccomp.MASKED_EQ, CLONE[flag], CLONE[flag]),
            )
    return f


# profile -> its BPF program, compiled once by the zygote (forks inherit it): building
# a filter with libseccomp costs 0.6 ms (strict: 2 ms) in every sandbox otherwise.
_PROGRAMS: dict[str, bytes] = {}


def precompile_seccomp(profiles: tuple[str, ...] = ("default", "strict")) -> None:
    """Compile the filters of ``profiles`` to BPF now; :func:`apply_seccomp` loads them."""
    import tempfile

    for profile in profiles:
        try:
            f = _build_filter(profile)
            with tempfile.TemporaryFile() as out:
                f.export_bpf(out)
                out.seek(0)
                program = out.read()
        except (ImportError, OSError, RuntimeError, ValueError):
            continue  # apply_seccomp builds it with libseccomp (and reports a failure)
        if program and len(program) % 8 == 0:
            _PROGRAMS[profile] = program


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2


def _load_program(program: bytes) -> None:
    """Install a BPF program as this thread's seccomp filter (the kernel needs
    no_new_privs or CAP_SYS_ADMIN, as libseccomp's ``seccomp_load``)."""
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    _check(
        _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0),
        "seccomp: prctl(PR_SET_SECCOMP)",
    )


def apply_seccomp(profile: str, no_new_privs: bool = True) -> None:
    """Load the filter of ``profile``; with ``no_new_privs`` the flag is set first."""
    if profile == "unconfined":
        return
    program = _PROGRAMS.get(profile)
    if program is not None:
        if no_new_privs:
            no_new_privs_()
        _load_program(program)
        return
    import pyseccomp as seccomp

    try:
        f = _build_filter(profile)
        # libseccomp sets no_new_privs itself unless told not to (no_new_privileges: false)
        f.set_attr(seccomp.Attr.CTL_NNP, 1 if no_new_privs else 0)
        f.load()
    except (OSError, RuntimeError, ValueError) as exc:
        raise SandboxSetupError(f"seccomp: cannot load the {profile!r} filter: {exc}") from None


def _add(seccomp: Any, f: Any, action: Any, name: str) -> None:
    try:
        f.add_rule(action, name)
    except (ValueError, RuntimeError, OSError):  # a system call this architecture lacks
        pass
