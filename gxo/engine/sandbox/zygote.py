"""The engine's handle on the sandbox zygote, and one sandbox as a process-like object.

Starting ``python -m gxo.engine.sandbox`` for each workload costs an interpreter and
the imports of pydantic, jinja2 and the module: 0.3-0.5 s. So the engine starts it
once, as a *zygote* (``--zygote``): it imports all that and then forks the sandboxes,
keeping one pre-forked and waiting per recently used set of namespaces (handed out to
one workload only, then replaced), so a workload's start costs no fork. The zygote is
single-threaded (fork-safe), holds no state of any run, and exits when the engine closes
its control socket or dies. Each sandbox gets the engine's environment in its setup line.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Any

__all__ = ["SandboxProcess", "spawn"]

_lock = threading.Lock()
_zygote: dict[str, Any] = {}  # "proc": Popen, "ctl": socket


def _start() -> tuple[subprocess.Popen[bytes], socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gxo.engine.sandbox", "--zygote", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            cwd="/",
            start_new_session=True,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return proc, ours


def _shutdown() -> None:
    """Close the control socket: the zygote exits; wait for it (no leaked process)."""
    with _lock:
        ctl, proc = _zygote.pop("ctl", None), _zygote.pop("proc", None)
    if ctl is not None:
        ctl.close()
    if proc is not None:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


atexit.register(_shutdown)


def request_sandbox(module: str, namespaces: list[str], fds: list[int]) -> tuple[int, int]:
    """Ask the zygote for a sandbox on ``fds`` (the sandbox's ends of the setup,
    protocol and stderr pipes; for a command: setup, status, stderr, stdout, stdin);
    the pid of its first process (its process group's) and, for a command, a pidfd of
    that process (else -1). Restarts a dead zygote once. Blocking."""
    message = json.dumps({"module": module, "namespaces": namespaces}).encode()
    with _lock:
        for attempt in (1, 2):
            if "ctl" not in _zygote:
                _zygote["proc"], _zygote["ctl"] = _start()
            ctl: socket.socket = _zygote["ctl"]
            try:
                socket.send_fds(ctl, [message], list(fds))
                reply, got, _, _ = socket.recv_fds(ctl, 4096, 1)
                if reply:
                    for fd in got[1:]:
                        os.close(fd)
                    return int(json.loads(reply)["pid"]), got[0] if got else -1
            except OSError:
                if attempt == 2:
                    raise
            ctl.close()  # a dead zygote: reap it and start another
            proc = _zygote.pop("proc")
            _zygote.pop("ctl")
            proc.kill()
            proc.wait()
    raise OSError("the sandbox zygote did not answer")


async def ask(module: str, namespaces: list[str], fds: list[int]) -> tuple[int, int]:
    """:func:`request_sandbox` in a thread. Cancelled meanwhile, the sandbox it made
    (which may have its setup line already) is killed, its whole process group, before
    the cancel goes on: a sandbox nobody waits for never runs a workload."""
    request = asyncio.ensure_future(_request(module, namespaces, fds))
    try:
        return await asyncio.shield(request)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            pid, pidfd = await request
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            if pidfd >= 0:
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                os.close(pidfd)
        raise


async def _request(module: str, namespaces: list[str], fds: list[int]) -> tuple[int, int]:
    """:func:`request_sandbox` on the event loop when the zygote runs and nobody else
    asks (no thread hop: the reply is awaited as the socket turns readable); else, or
    on any trouble (a dead zygote to restart), in a thread."""
    if "ctl" in _zygote and _lock.acquire(blocking=False):
        try:
            ctl = _zygote.get("ctl")
            if ctl is not None:
                message = json.dumps({"module": module, "namespaces": namespaces}).encode()
                socket.send_fds(ctl, [message], fds)  # a datagram: queued at once
                loop = asyncio.get_running_loop()
                readable: asyncio.Future[None] = loop.create_future()

                def ready() -> None:
                    if not readable.done():
                        readable.set_result(None)

                loop.add_reader(ctl.fileno(), ready)
                try:
                    await readable
                finally:
                    loop.remove_reader(ctl.fileno())
                reply, got, _, _ = socket.recv_fds(ctl, 4096, 1)
                if reply:
                    for fd in got[1:]:
                        os.close(fd)
                    return int(json.loads(reply)["pid"]), got[0] if got else -1
        except OSError:
            pass
        finally:
            _lock.release()
    return await asyncio.to_thread(request_sandbox, module, namespaces, fds)


PIPE_ROOM = 1 << 16  # what an empty pipe takes without blocking (Linux's default size)


def prewrite(fd: int, data: bytes) -> bytes:
    """Write the setup line into the sandbox's empty pipe before asking for the sandbox
    (it reads it at once when it wakes up); what does not fit is returned, for later."""
    if len(data) > PIPE_ROOM:
        return data
    written = 0
    while written < len(data):
        written += os.write(fd, data[written:])
    return b""


class SandboxProcess:
    """One sandbox's keeper: its pid and the engine's ends of its three pipes."""

    def __init__(
        self,
        pid: int,
        stdin: asyncio.StreamWriter,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
    ) -> None:
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None

    @property
    def running(self) -> bool:
        """Until the keeper closed its end of stdout (it holds it until it exits)."""
        return not self.stdout.at_eof()

    def signal(self, signum: int, *, group: bool = False) -> None:
        if self.running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                (os.killpg if group else os.kill)(self.pid, signum)

    async def finish(self) -> None:
        """Read stdout to its end (the keeper gone) and close our pipe ends."""
        with contextlib.suppress(Exception):
            while await self.stdout.read(1 << 16):
                pass
        self.stdin.close()
        with contextlib.suppress(Exception):
            await self.stdin.wait_closed()
        with contextlib.suppress(Exception):
            while await self.stderr.read(1 << 16):
                pass
        if self.returncode is None:
            self.returncode = 128 + signal.SIGKILL


async def spawn(
    module: str, namespaces: list[str], setup: bytes, limit: int = 1 << 26
) -> SandboxProcess:
    """A new sandbox (from the zygote) in ``namespaces``, with pipes for the protocol and
    its stderr; ``setup`` (the setup line) is written to it."""
    loop = asyncio.get_running_loop()
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    setup = prewrite(in_w, setup)
    try:
        pid, pidfd = await ask(module, namespaces, [in_r, out_w, err_w])
        if pidfd >= 0:  # a module's sandbox: its keeper reports the end
            os.close(pidfd)
    except BaseException:
        for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
            os.close(fd)
        raise
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    stdout = asyncio.StreamReader(limit=limit, loop=loop)
    stderr = asyncio.StreamReader(limit=limit, loop=loop)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stdout, loop=loop), os.fdopen(out_r, "rb", 0)
    )
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stderr, loop=loop), os.fdopen(err_r, "rb", 0)
    )
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.streams.FlowControlMixin(loop=loop), os.fdopen(in_w, "wb", 0)
    )
    stdin = asyncio.StreamWriter(transport, protocol, None, loop)
    stdin.write(setup)  # what did not fit in the pipe beforehand
    return SandboxProcess(pid, stdin, stdout, stderr)
