"""``python -m gxo.engine.sandbox``: the sandbox child (started by :mod:`.parent`).

stdin/stdout carry the JSON-lines protocol (they are moved to private descriptors at
once; stdout then goes to stderr, which the engine logs). The first line is the
setup: the security_context, module, params, workspace.

This process (the *keeper*) joins the workload's cgroups, unshares the namespaces
and forks the *sandboxed* process, pid 1 of the new pid namespace, which sets up
mounts, hostname, loopback, rlimits, user, capabilities, no_new_privs and seccomp,
and only then imports and runs the module (:mod:`.child`). The keeper waits and
exits with its status (128 + signal when killed). Any setup failure is reported as
an ``error`` message and nothing of the module runs: fail closed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from typing import Any, NoReturn

# asyncio and the exec module's helpers are imported before a user switch: the
# interpreter's files may not be readable by that user.
PREIMPORT = (
    "asyncio",
    "asyncio.subprocess",
    "concurrent.futures.thread",
    "subprocess",
    "encodings.idna",
    "gxo.modules.system._proctree",
    "gxo.modules.system._pdeathsig",
)


def _fork() -> int:
    """``os.fork``; under coverage (the tests) the child measures as a process of its own."""
    pid = os.fork()
    if pid == 0 and "coverage" in sys.modules:
        with contextlib.suppress(Exception):
            from coverage.control import _after_fork_in_child

            _after_fork_in_child()
    return pid


def _coverage_dir() -> list[str]:
    """Under coverage (the tests only: never imported otherwise) the folder of its data
    files stays writable, so a read-only sandbox still reports what it ran."""
    if "coverage" not in sys.modules:
        return []
    with contextlib.suppress(Exception):
        import coverage

        current = coverage.Coverage.current()
        if current is not None:
            return [os.path.dirname(os.path.abspath(current.config.data_file))]
    return []


def _exit(code: int) -> NoReturn:
    """``os._exit`` (no atexit, no buffers of the parent flushed twice); under coverage
    (the tests) the measurement is saved first."""
    if "coverage" in sys.modules:
        with contextlib.suppress(Exception):
            import coverage

            current = coverage.Coverage.current()
            if current is not None:
                current.save()
    os._exit(code)


def _read_line(fd: int) -> tuple[bytes, bytes]:
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            raise SystemExit(3)
        data += chunk
    line, _, rest = data.partition(b"\n")
    return line, rest


def _send(fd: int, message: dict[str, Any]) -> None:
    data = (json.dumps(message, default=str) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


def _fail(fd: int, message: str) -> None:
    _send(fd, {"t": "error", "kind": "SandboxSetupError", "message": message})
    _exit(70)


def keeper() -> None:
    """One sandbox: fds 0/1/2 are the engine's pipes (protocol in, protocol out, stderr)."""
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    line, rest = _read_line(proto_in)
    init = json.loads(line)
    os.environ.clear()  # the engine's environment now, not the zygote's at its start
    os.environ.update(init.get("env", {}))
    from gxo.engine.sandbox import confine

    namespaces: list[str] = init["namespaces"]
    try:
        for procs in init.get("cgroups", []):
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        confine.unshare([n for n in namespaces if n != "user"])
    except confine.SandboxSetupError as exc:
        _fail(proto_out, str(exc))
    except OSError as exc:
        _fail(proto_out, f"limits: cannot join the cgroup: {exc}")
    # The host's /proc, held open: the sandboxed process mounts its own over it (the
    # mount namespace is shared) before the keeper writes its uid map.
    host_proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY) if "user" in namespaces else -1
    sync = os.pipe() if "user" in namespaces else None
    back = os.pipe() if "user" in namespaces else None
    pid = _fork()
    if pid == 0:
        if host_proc >= 0:  # the host's /proc stays out of the sandbox
            os.close(host_proc)
        try:
            _sandboxed(init, rest, proto_in, proto_out, sync, back)
        except confine.SandboxSetupError as exc:
            _fail(proto_out, str(exc))
        except BaseException as exc:  # never return into the keeper's code
            _send(proto_out, {"t": "error", "kind": "SandboxError", "message": f"{exc!r}"})
            _exit(70)
        _exit(0)
    os.close(proto_in)
    # The engine stops a sandbox with SIGTERM to this keeper: SIGKILL to the pid
    # namespace's init, whose exit the kernel completes only once every process in
    # the namespace is gone; then the keeper reports and exits, closing the pipe.
    signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGKILL))
    if sync is not None and back is not None:
        os.close(sync[1])
        os.close(back[0])
        if os.read(sync[0], 1) == b"u":
            for name in ("uid_map", "gid_map"):
                fd = os.open(f"{pid}/{name}", os.O_WRONLY, dir_fd=host_proc)
                try:
                    os.write(fd, b"0 0 4294967295\n")
                finally:
                    os.close(fd)
            os.write(back[1], b"k")
        os.close(host_proc)
    _, status = os.waitpid(pid, 0)
    code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    try:
        _send(proto_out, {"t": "exit", "code": code})
    finally:
        _exit(code)


def _warm_up() -> None:
    """One subprocess through asyncio: what its first use sets up lazily is set up here,
    once, instead of in every sandbox. The zygote stays single-threaded afterwards."""
    import asyncio

    async def spawn() -> None:
        proc = await asyncio.create_subprocess_exec(
            "/bin/true", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        await proc.communicate()

    with contextlib.suppress(OSError):
        asyncio.run(spawn())
    import threading

    for thread in threading.enumerate():  # the child watcher's thread: fork needs one thread
        if thread is not threading.main_thread():
            thread.join(1.0)


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def zygote(control: int) -> None:
    """Forks a keeper per request, with everything heavy imported once (docs/sandbox.md).

    ``control``: a SOCK_SEQPACKET socket to the engine. A request carries the three
    pipe ends (SCM_RIGHTS) and the module to preload; the reply is the keeper's pid.
    EOF on the socket (the engine closed it or died) ends the zygote.
    """
    import socket

    ctl = socket.socket(fileno=control)
    from gxo.engine.sandbox import child, confine  # noqa: F401  (jinja2, pydantic, gxo)
    from gxo.modules.base import REGISTRY

    with contextlib.suppress(ImportError):
        import pyseccomp  # noqa: F401
    for name in PREIMPORT:  # what modules import lazily: each fork would pay it again
        with contextlib.suppress(ImportError):
            __import__(name)
    _warm_up()
    import gc

    gc.freeze()  # what is imported now stays shared with the forks (no GC writes to it)
    while True:
        _reap()  # finished keepers (their CPU time then counts in the zygote's children)
        try:
            data, fds, _, _ = socket.recv_fds(ctl, 1 << 16, 3)
        except OSError:
            _exit(0)
        if not data:
            _reap()
            _exit(0)
        request = json.loads(data)
        spec = REGISTRY.get(request.get("module", ""))
        if spec is not None:
            with contextlib.suppress(Exception):  # the sandbox reports a bad module itself
                spec.params_model  # noqa: B018  (imports the module: forks start warm)
        pid = _fork()
        if pid == 0:
            ctl.close()
            confine.set_pdeathsig(signal.SIGKILL)  # the engine gone, the zygote goes, then this
            if os.getppid() == 1:
                _exit(70)
            with contextlib.suppress(OSError):  # its own group: the engine kills it whole
                os.setpgid(0, 0)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            try:
                keeper()
            finally:
                _exit(70)
        with contextlib.suppress(OSError):  # before the engine has the pid: no race
            os.setpgid(pid, pid)
        for fd in fds:
            os.close(fd)
        ctl.send(json.dumps({"pid": pid}).encode())


def _sandboxed(
    init: dict[str, Any],
    rest: bytes,
    proto_in: int,
    proto_out: int,
    sync: tuple[int, int] | None,
    back: tuple[int, int] | None,
) -> None:
    from gxo.engine.sandbox import confine

    confine.set_pdeathsig(signal.SIGKILL)
    sc = init["sc"]
    namespaces = init["namespaces"]
    workspace = init["workspace"]
    if "mount" in namespaces:
        confine.private_mounts()
    if "pid" in namespaces:
        confine.mount_proc()
    if sc["read_only_root"]:
        writable = [os.path.realpath(os.path.join(workspace, p)) for p in sc["writable_paths"]]
        confine.read_only_root(writable + _coverage_dir())
    if sc["hidden_paths"]:
        confine.hide_paths(sc["hidden_paths"])
    if "uts" in namespaces:
        import socket

        socket.sethostname("gxo-sandbox")
    if "net" in namespaces:
        confine.loopback_up()
    if sync is not None and back is not None:
        os.close(sync[0])
        os.close(back[1])
        confine.unshare(["user"])
        os.write(sync[1], b"u")
        if os.read(back[0], 1) != b"k":
            raise confine.SandboxSetupError("namespaces: 'user': the uid map was not written")
        os.close(sync[1])
        os.close(back[0])
        os.setresuid(0, 0, 0)
    if sc.get("limits"):
        confine.apply_rlimits(sc["limits"])
    os.chdir(workspace)
    from gxo.engine.sandbox import child

    try:  # imports the module while every file is readable
        runner = child.prepare(init)
    except Exception as exc:
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        _send(proto_out, {"t": "error", "kind": "ModuleParamsError", "message": message})
        _exit(1)
    if sc["user"] is not None:
        for name in PREIMPORT:
            __import__(name)
        if sc["seccomp"] != "unconfined":
            import pyseccomp  # noqa: F401  (imports ctypes.util)
    nnp = sc["no_new_privileges"]
    if not nnp:  # a filter needs no_new_privs or CAP_SYS_ADMIN: load it while we have it
        confine.apply_seccomp(sc["seccomp"], no_new_privs=False)
    caps = sc.get("capabilities")
    if caps is not None:
        confine.drop_bounding(caps["drop"], caps["add"])
    if sc["user"] is not None:
        uid, gid = confine.resolve_user(sc["user"])
        confine.switch_user(uid, gid)
    if caps is not None:
        confine.apply_capabilities(caps["drop"], caps["add"])
    if nnp:
        confine.no_new_privs()
        confine.apply_seccomp(sc["seccomp"])
    code = child.run(runner, rest, proto_in, proto_out)
    sys.stdout.flush()
    _exit(code)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--zygote"]:
        zygote(int(sys.argv[2]))
    else:
        keeper()
