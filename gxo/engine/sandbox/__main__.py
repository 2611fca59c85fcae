"""``python -m gxo.engine.sandbox --zygote FD``: the sandbox processes (see :mod:`.zygote`).

The zygote imports everything once and keeps, for each recently used set of
namespaces, one sandbox *pre-forked* and waiting (a warm pool of one per set, refilled
right after it is handed out; never used for two workloads): a *keeper* that has
unshared the namespaces, and its child, the *sandboxed* process (pid 1 of the new pid
namespace), which has mounted its /proc, set the hostname, brought ``lo`` up and made
its event loop. A workload's request hands both the engine's pipes (SCM_RIGHTS); the
sandboxed process reads the setup line (the security_context, module, params,
workspace), joins the workload's cgroups, sets up the rest (read-only root, writable
and hidden paths, user namespace, rlimits, user, capabilities, no_new_privs, seccomp)
and only then imports and runs the module (:mod:`.child`). The keeper waits for it and
reports its exit status (128 + signal when killed). Any setup failure is reported as an
``error`` message and nothing of the module runs: fail closed.

For ``exec``'s command (:mod:`.command`) the sandboxed process makes no event loop and,
but with a user namespace, has no keeper: the zygote forks it into a new pid namespace
itself (:class:`_Warm`); once set up it starts the command and waits for it
(:func:`_run_command`).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
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


def _stdio(err: int) -> None:
    """fd 0 is /dev/null, fds 1 and 2 the engine's stderr pipe (logged there)."""
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(err, 1)
    os.dup2(err, 2)
    os.close(devnull)
    os.close(err)


def _receive(sock: socket.socket, *counts: int) -> list[int] | None:
    """Wait for the workload: the engine's pipe ends (close-on-exec here), as many as
    one of ``counts``; None when the zygote is gone. From then on this process runs at
    the engine's priority (it waited at IDLE_NICE)."""
    try:
        data, fds, _, _ = socket.recv_fds(sock, 64, max(counts))
    except OSError:
        data, fds = b"", []
    sock.close()
    for fd in fds:
        os.set_inheritable(fd, False)
    if len(fds) not in counts or not data:
        for fd in fds:
            os.close(fd)
        return None
    nice = json.loads(data).get("nice")
    if nice is not None:  # raised back by the zygote too; a fork may have missed that
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    return fds


def keeper(namespaces: list[str], own: socket.socket, child_sock: socket.socket) -> None:
    """A pre-forked sandbox: unshares ``namespaces``, forks the sandboxed process, waits
    for it and reports its exit status on the pipe the workload's request gave it (on
    ``own``: the engine's stdout and stderr pipes, or a command's report pipe)."""
    from gxo.engine.sandbox import confine

    problem = None
    try:
        confine.unshare([n for n in namespaces if n != "user"])
    except confine.SandboxSetupError as exc:
        problem = str(exc)
    pid, host_proc, sync, back = 0, -1, None, None
    command = False  # known once the workload came: a command's or a module's sandbox
    if problem is None:
        # The host's /proc, held open: the sandboxed process mounts its own over it (the
        # mount namespace is shared) before the keeper writes its uid map.
        host_proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY) if "user" in namespaces else -1
        sync = os.pipe() if "user" in namespaces else None
        back = os.pipe() if "user" in namespaces else None
        pid = _fork()
        if pid == 0:
            own.close()
            if host_proc >= 0:  # the host's /proc stays out of the sandbox
                os.close(host_proc)
            try:
                _waiting(namespaces, child_sock, sync, back)
            finally:
                _exit(70)  # never return into the keeper's code

        # The engine stops a sandbox with SIGTERM to this keeper: SIGKILL to the pid
        # namespace's init, whose exit the kernel completes only once every process in
        # the namespace is gone; then the keeper reports and exits, closing the pipe.
        # Without a pid namespace a command's init gets the SIGTERM: it kills what the
        # command started first (_run_command), which SIGKILL would leave running.
        def stop(*_: object) -> None:
            pid_namespace = "pid" in namespaces
            os.kill(pid, signal.SIGTERM if command and not pid_namespace else signal.SIGKILL)

        signal.signal(signal.SIGTERM, stop)
    child_sock.close()
    status = None
    if problem is None and sync is None:
        # Nothing to do before the sandboxed process ends: the workload's pipes are taken
        # afterwards (they wait on the socket), so handing a sandbox out wakes one process.
        _, status = os.waitpid(pid, 0)
    fds = _receive(own, 1, 2)
    if fds is None:  # the zygote ended or dropped this sandbox: its process dies with us
        _exit(0)
    # A module's: the engine's stdout and stderr. A command's (.command): its status
    # pipe only, to say why it could not start (the engine watches this process's end).
    proto_out, command = fds[0], len(fds) == 1
    _stdio(fds[1] if len(fds) == 2 else os.open(os.devnull, os.O_RDWR))
    if problem is not None:
        _fail(proto_out, problem)
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
    if status is None:
        _, status = os.waitpid(pid, 0)
    code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    if command:
        _exit(code)
    try:
        signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        _send(proto_out, {"t": "exit", "code": code, "signal": signum})
    finally:
        _exit(code)


def _direct(namespaces: list[str], sock: socket.socket) -> None:
    """A command's sandbox without a keeper: this process is the sandbox's init (pid 1
    of the new pid namespace, into which the zygote forked it), unshares the other
    namespaces itself and waits for a workload. SIGTERM (the engine stopping it) ends
    it, and with it the namespace (once a command runs: see :func:`_run_command`)."""
    from gxo.engine.sandbox import confine

    signal.signal(signal.SIGTERM, lambda *_: _exit(128 + signal.SIGTERM))
    problem = None
    try:
        confine.unshare([n for n in namespaces if n not in ("pid", "user")])
    except confine.SandboxSetupError as exc:
        problem = str(exc)
    _waiting(namespaces, sock, None, None, problem, for_module=False)


_parent = -1  # the sandboxed process's parent (the zygote or the keeper) when it started


def _waiting(
    namespaces: list[str],
    sock: socket.socket,
    sync: tuple[int, int] | None,
    back: tuple[int, int] | None,
    problem: str | None = None,
    for_module: bool = True,
) -> None:
    """The sandboxed process: what every workload of these namespaces needs is set up
    before one comes (for a module: its event loop too); then the workload's own setup
    (:func:`_sandboxed`) and module or command."""
    from gxo.engine.sandbox import child, confine

    global _parent
    confine.set_pdeathsig(signal.SIGKILL)
    _parent = os.getppid()  # 0 as a pid namespace's init: its parent is outside
    if problem is None:  # else reported (and nothing run) once a workload comes
        try:
            if "mount" in namespaces:
                confine.private_mounts()
            if "pid" in namespaces:
                confine.mount_proc()
            if "uts" in namespaces:
                socket.sethostname("gxo-sandbox")
            if "net" in namespaces:
                confine.loopback_up()
        except confine.SandboxSetupError as exc:
            problem = str(exc)
        except OSError as exc:
            problem = f"namespaces: {exc}"
    loop = None
    if for_module:
        loop = child.new_loop()
        child.warm(loop)
    fds = _receive(sock, 3, 5)
    if fds is None:
        _exit(0)
    proto_in, proto_out, err = fds[:3]
    command = fds[3:]  # a command to exec: its stdout and stdin (see .command)
    _stdio(err)
    if problem is not None:
        _fail(proto_out, problem)
    try:
        line, rest = _read_line(proto_in)
        init = json.loads(line)
        if init["namespaces"] != namespaces:  # never a sandbox made for other namespaces
            _fail(proto_out, f"namespaces: this sandbox has {namespaces}, not {init['namespaces']}")
        os.environ.clear()  # the engine's environment, not the zygote's at its start
        os.environ.update(init.get("env", {}))
        try:
            for procs in init.get("cgroups", []):
                with open(procs, "w") as f:
                    f.write("0")  # this process (and so all it starts) joins the group
        except OSError as exc:
            _fail(proto_out, f"limits: cannot join the cgroup: {exc}")
        if bool(command) != ("exec" in init):  # never a module where a command was meant
            _fail(proto_out, "the request and the setup line disagree (command or module)")
        _sandboxed(init, rest, proto_in, proto_out, sync, back, loop, command)
    except confine.SandboxSetupError as exc:
        _fail(proto_out, str(exc))
    except BaseException as exc:
        _send(proto_out, {"t": "error", "kind": "SandboxError", "message": f"{exc!r}"})
        _exit(70)
    _exit(0)


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


def _reap_all(grace: float = 1.0) -> None:
    """Reap what is left (the dropped sandboxes' processes, killed), for up to ``grace``
    seconds; what still runs then (a workload's, the engine gone) dies with us."""
    import time

    deadline = time.monotonic() + grace
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.005)


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


POOL_SETS = 4  # sets of namespaces with a sandbox kept waiting (the most recently used)
IDLE_NICE = 19  # a waiting sandbox's nice value: its set-up yields to running workloads
CAP_SYS_NICE = 23
_nice: int | None = None  # the priority sandboxes run at; None: not changed (no CAP_SYS_NICE)


def _background_fork() -> int:
    """``_fork`` with the child at IDLE_NICE from its start (the zygote keeps its own)."""
    if _nice is None:
        return _fork()
    os.setpriority(os.PRIO_PROCESS, 0, IDLE_NICE)
    try:
        return _fork()
    finally:
        if os.getpid() == _zygote_pid:
            os.setpriority(os.PRIO_PROCESS, 0, _nice)


_zygote_pid = 0


class _Warm:
    """A pre-forked sandbox waiting for a workload: the pid of its first process and
    the zygote's ends of the sockets to it and to the sandboxed process.

    ``direct`` (a command's sandbox without a user namespace, :mod:`.command`): no
    keeper; the zygote forks the sandbox's init itself, into a new pid namespace
    (``unshare`` of the pid namespace for its next child, then ``setns`` back to its
    own), and gives the engine a pidfd of it: its end is the sandbox's end."""

    def __init__(self, namespaces: list[str], others: list[int], direct: bool) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        child_ours, child_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        unshared = False
        if direct and "pid" in namespaces:
            try:
                confine.unshare(["pid"])
                unshared = True
            except confine.SandboxSetupError:
                direct = False  # a keeper then tries, and reports why it cannot
        try:
            pid = _background_fork()
        finally:
            if unshared and os.getpid() == _zygote_pid:
                confine.setns(_own_pid_ns, "pid")  # the next forks stay in ours
        if pid == 0:
            for fd in (*others, _own_pid_ns, ours.detach(), child_ours.detach()):
                with contextlib.suppress(OSError):
                    os.close(fd)
            confine.set_pdeathsig(signal.SIGKILL)  # the engine gone, the zygote goes, then this
            if os.getppid() == 1:
                _exit(70)
            with contextlib.suppress(OSError):  # its own group: the engine kills it whole
                os.setpgid(0, 0)
            try:
                if direct:
                    child_theirs.close()
                    _direct(namespaces, theirs)
                else:
                    keeper(namespaces, theirs, child_theirs)
            finally:
                _exit(70)
        with contextlib.suppress(OSError):  # before the engine has the pid: no race
            os.setpgid(pid, pid)
        theirs.close()
        child_theirs.close()
        self.pid, self.sock, self.child_sock, self.direct = pid, ours, child_ours, direct
        self.pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else -1

    def fds(self) -> list[int]:
        return [self.sock.fileno(), self.child_sock.fileno(), self.pidfd]

    def hand(self, fds: list[int]) -> None:
        """The workload's pipes to the sandbox, which runs at the engine's priority from
        now on (its whole process group). ``fds``: the sandbox's ends of the setup,
        protocol and stderr pipes; for a command (:mod:`.command`) of its setup,
        status, stderr, stdout and stdin pipes."""
        if _nice is not None:
            os.setpriority(os.PRIO_PGRP, self.pid, _nice)
        go = json.dumps({"nice": _nice}).encode()
        if self.direct:
            socket.send_fds(self.sock, [go], fds)
        else:
            socket.send_fds(self.sock, [go], [fds[1]] if len(fds) == 5 else fds[1:])
            with contextlib.suppress(OSError):  # no sandboxed process: the keeper says why
                socket.send_fds(self.child_sock, [go], fds)
        self.sock.close()
        self.child_sock.close()

    def drop(self) -> None:
        """Not used: the keeper and its sandboxed process end (never reused)."""
        self.sock.close()
        self.child_sock.close()
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        if self.pidfd >= 0:
            os.close(self.pidfd)


confine: Any = None  # gxo.engine.sandbox.confine, imported by the zygote
_own_pid_ns = -1  # the zygote's pid namespace, open (for setns after an unshare)


def zygote(control: int) -> None:
    """Hands out pre-forked sandboxes, with everything heavy imported once (docs/sandbox.md).

    ``control``: a SOCK_SEQPACKET socket to the engine. A request carries the three
    pipe ends (SCM_RIGHTS), the module to preload and the namespaces; the reply is the
    keeper's pid. EOF on the socket (the engine closed it or died), or the engine's end
    (its pidfd), ends the zygote, the sandboxes still waiting and those still running.
    """
    global confine, _nice, _zygote_pid, _own_pid_ns
    ctl = socket.socket(fileno=control)
    from gxo.engine.sandbox import child  # noqa: F401  (jinja2, pydantic, gxo)
    from gxo.engine.sandbox import confine as _confine
    from gxo.modules.base import REGISTRY

    confine = _confine
    from gxo.engine.sandbox.host import has_cap

    _zygote_pid = os.getpid()
    # A waiting sandbox dropped (its keeper killed) leaves its process to us, to reap.
    confine.become_subreaper()
    _own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY)
    if has_cap(CAP_SYS_NICE):  # it can give a waiting sandbox its priority back
        _nice = os.getpriority(os.PRIO_PROCESS, 0)
    with contextlib.suppress(ImportError):
        import pyseccomp  # noqa: F401

        confine.precompile_seccomp()  # once: each sandbox loads the BPF program
    for name in PREIMPORT:  # what modules import lazily: each fork would pay it again
        with contextlib.suppress(ImportError):
            __import__(name)
    _warm_up()
    import gc

    gc.freeze()  # what is imported now stays shared with the forks (no GC writes to it)
    pool: dict[tuple[tuple[str, ...], bool], _Warm] = {}  # oldest first

    # The engine's end, watched as well as the socket's: the socket stays open while
    # any other process holds the engine's end of it; the engine's pidfd does not.
    engine = _engine_pidfd()
    watch = select.poll()
    watch.register(ctl.fileno(), select.POLLIN)
    if engine >= 0:
        watch.register(engine, select.POLLIN)

    def others() -> list[int]:
        own = [ctl.fileno()] + ([engine] if engine >= 0 else [])
        return own + [fd for warm in pool.values() for fd in warm.fds()]

    try:
        while True:
            _reap()  # finished keepers (their CPU time then counts in the zygote's children)
            ready = {fd for fd, _ in watch.poll()}
            if engine in ready and ctl.fileno() not in ready:
                return  # the engine is gone (a request it sent first is still read)
            try:
                data, fds, _, _ = socket.recv_fds(ctl, 1 << 16, 6)
            except OSError:
                return
            if not data:
                return
            request = json.loads(data)
            spec = REGISTRY.get(request.get("module", ""))
            if spec is not None:
                with contextlib.suppress(Exception):  # the sandbox reports a bad module itself
                    spec.params_model  # noqa: B018  (imports the module: forks start warm)
            namespaces = list(request.get("namespaces", []))
            command = len(fds) == 5  # a command's sandbox (.command), else a module's
            direct = command and "user" not in namespaces  # no keeper (_Warm)
            key = (tuple(namespaces), direct)
            # A sandbox forked now must not inherit the request's pipes (nor the others').
            warm = pool.pop(key, None) or _Warm(namespaces, others() + fds, direct)
            try:
                warm.hand(fds)
            except OSError:  # it died meanwhile: a fresh one
                warm.drop()
                warm = _Warm(namespaces, others() + fds, direct)
                warm.hand(fds)
            finally:
                for fd in fds:  # closed before the next fork: only the sandbox holds them
                    os.close(fd)
            reply = json.dumps({"pid": warm.pid}).encode()
            try:  # a command's engine side watches the sandbox's end through a pidfd
                if command and warm.pidfd >= 0:
                    socket.send_fds(ctl, [reply], [warm.pidfd])
                else:
                    ctl.send(reply)
            finally:
                if warm.pidfd >= 0:
                    os.close(warm.pidfd)
            pool[key] = _Warm(namespaces, others(), direct)  # the next one, meanwhile
            while len(pool) > POOL_SETS:
                pool.pop(next(iter(pool))).drop()
    finally:
        for warm in pool.values():
            warm.drop()
        _stop_sandboxes()
        _reap_all()
        _exit(0)


def _engine_pidfd() -> int:
    """A pidfd of the engine (the zygote's parent); -1 without pidfds. The engine
    already gone: the zygote goes too."""
    parent = os.getppid()
    if not hasattr(os, "pidfd_open") or parent <= 0:
        return -1
    try:
        fd = os.pidfd_open(parent)
    except OSError:
        return -1
    if os.getppid() != parent:  # it died meanwhile (and the pid may be another's)
        os.close(fd)
        raise SystemExit(0)
    return fd


def _stop_sandboxes() -> None:
    """The engine gone (or done): SIGTERM to every sandbox still running, which ends it
    as the engine's stop does (a command's init kills what the command started), now
    rather than by the parent-death signal once the zygote has waited for them."""
    try:
        with open(f"/proc/self/task/{os.getpid()}/children") as f:
            children = [int(pid) for pid in f.read().split()]
    except OSError:
        return
    for pid in children:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)


def _sandboxed(
    init: dict[str, Any],
    rest: bytes,
    proto_in: int,
    proto_out: int,
    sync: tuple[int, int] | None,
    back: tuple[int, int] | None,
    loop: Any,
    command: list[int],
) -> None:
    """The workload's own setup, in the sandboxed process (its namespaces' is done);
    then the module, or the ``exec`` of a command (``command``: its stdout and stdin)."""
    from gxo.engine.sandbox import child, confine

    sc = init["sc"]
    workspace = init["workspace"]
    if sc["read_only_root"]:
        writable = [os.path.realpath(os.path.join(workspace, p)) for p in sc["writable_paths"]]
        confine.read_only_root(writable + _coverage_dir())
    if sc["hidden_paths"]:
        confine.hide_paths(sc["hidden_paths"])
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
    if command:
        _confine(sc)
        _run_command(init["exec"], command, proto_out, "pid" in init["namespaces"])
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
    _confine(sc)
    code = child.run(runner, rest, proto_in, proto_out, loop)
    sys.stdout.flush()
    _exit(code)


def _confine(sc: dict[str, Any]) -> None:
    """Capabilities, user, no_new_privs and the seccomp filter: the last steps."""
    from gxo.engine.sandbox import confine

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


def _run_command(
    spec: dict[str, Any], fds: list[int], status: int, pid_namespace: bool
) -> NoReturn:
    """Start the command (``posix_spawn``: no copy of this process) with the engine's
    pipes as stdout and stdin (stderr already is), in a session of its own, and stay
    the sandbox's init: reap what is orphaned until the command exits, report its
    status on ``status``, exit. With a pid namespace the kernel then ends whatever of it
    is left; without one, this process is a child subreaper (every orphaned descendant
    comes to it, wherever it moved: ``setsid``, a double fork) and kills what is left
    before it exits, as the kernel would (when ``/proc`` lists its children). So does
    SIGTERM: the engine stopping the sandbox, or the parent-death signal (the zygote or
    the keeper gone: GXO killed)."""
    from gxo.engine.sandbox import confine

    out, stdin = fds
    own = f"/proc/self/task/{os.getpid()}/children"
    contained = pid_namespace or os.path.exists(own)
    if not pid_namespace and contained:
        confine.become_subreaper()
    pid = 0

    def stop(*_: object) -> None:
        """SIGTERM (the engine stopping the sandbox, or the parent-death signal: the
        zygote or keeper gone, GXO killed): what the command started dies first."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if pid:
            with contextlib.suppress(OSError):  # its session, whatever /proc can list
                os.killpg(pid, signal.SIGKILL)
        if not pid_namespace and contained:
            _kill_descendants(own)
        _exit(128 + signal.SIGTERM)

    # The user switch and capability drop cleared the parent-death signal: armed again,
    # now that the credentials are final. A pid namespace's init just dies (the kernel
    # ends the rest); else SIGTERM, so that it empties the sandbox first.
    signal.signal(signal.SIGTERM, stop)
    confine.set_pdeathsig(signal.SIGKILL if pid_namespace else signal.SIGTERM)
    if _parent > 0 and os.getppid() != _parent:  # it died before the signal was armed
        stop()
    try:
        os.chdir(spec["cwd"])
        actions = [(os.POSIX_SPAWN_DUP2, out, 1)]
        if spec["stdin"]:
            actions.append((os.POSIX_SPAWN_DUP2, stdin, 0))
        argv = spec["argv"]
        pid = os.posix_spawn(
            argv[0],
            argv,
            spec["env"],
            file_actions=actions,
            setsid=True,
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),  # as subprocess: the defaults
        )
    except OSError as exc:
        message = {"t": "error", "kind": "ExecError", "errno": exc.errno or 0}
        _send(status, {**message, "message": exc.strerror or str(exc)})
        _exit(127)
    os.close(out)
    os.close(stdin)
    _send(status, {"t": "started", "contained": contained})
    while True:
        try:
            done, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:  # cannot happen while the command runs
            _exit(70)
        if done == pid:
            break
    code = os.waitstatus_to_exitcode(wait_status)
    _send(status, {"t": "exit", "code": code})
    if not pid_namespace and contained:
        _kill_descendants(own)
    _exit(0)


def _kill_descendants(own: str) -> None:
    """SIGKILL our children and reap them until none is left (theirs come to us as they
    die: we are their subreaper). ``own``: the /proc file listing our children."""
    for _ in range(10_000):
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        try:
            with open(own) as f:
                children = [int(pid) for pid in f.read().split()]
        except OSError:
            return
        if not children:
            return
        for child in children:
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(-1, 0)


if __name__ == "__main__":
    if sys.argv[1:2] != ["--zygote"] or len(sys.argv) != 3:
        sys.exit("usage: python -m gxo.engine.sandbox --zygote FD (started by the engine)")
    zygote(int(sys.argv[2]))
