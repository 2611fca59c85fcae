"""``exec`` in a sandbox: only the command runs sandboxed.

The ``exec`` module then runs in the engine, as without a sandbox (output captured and
logged line by line, secrets redacted, exit codes, timeouts, leftovers), and only the
command runs in the sandbox: the sandboxed process (pid 1 of the pid namespace, if
there is one: the sandbox's *init*) sets everything up as for any module
(:mod:`.__main__`), then starts the command with ``posix_spawn`` and waits for it,
reaping orphans as an init does. No event loop, no module and no JSON relay in the
sandbox; the command's stdin, stdout and stderr are pipes to the engine. When it exits,
the init reports its status and exits. With a pid namespace the kernel then ends every
process left in it (nothing the command started outlives it); without one, the init is
a child subreaper (every orphaned descendant comes to it) and kills what is left before
it exits (where /proc cannot list its children: ``exec`` finds and stops them as it
does outside a sandbox). The same when it is stopped (SIGTERM) or when GXO is killed:
its parent-death signal (from the zygote, or the keeper) is a SIGTERM it handles that
way; a pid namespace's init gets SIGKILL.

No keeper either (but with a user namespace, whose uid map a process outside must
write): the zygote forks the init itself, into a new pid namespace, and hands the
engine a pidfd of it.

:func:`spawn_command` returns a :class:`SandboxedCommand`, the part of
:class:`asyncio.subprocess.Process` the ``exec`` module uses: its ``pid`` is the
sandbox's first process (the init, or the keeper), whose SIGTERM ends the sandbox;
``wait()`` returns when the command's status is known and that process ended (the
init of a pid namespace ends only once every process in it is gone).
A setup failure (a mount, a filter) or a command that cannot be started is raised by
:func:`spawn_command`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from typing import Any

from gxo.engine.sandbox.zygote import ask, prewrite
from gxo.errors import ModuleError, ModuleParamsError

__all__ = ["SandboxedCommand", "spawn_command"]

STOP_GRACE = 2.0  # seconds for the keeper to empty the sandbox before SIGKILL to all


class SandboxedCommand:
    """A command running as pid 1 of a sandbox (see the module's docstring)."""

    def __init__(
        self,
        pid: int,
        stdin: asyncio.StreamWriter | None,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
        status: asyncio.StreamReader,
        pidfd: int,
        contained: bool,
    ) -> None:
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None
        self.contained = contained  # a pid namespace ends with it: no leftovers to look for
        self._status = status
        self._pidfd = pidfd
        self._waiter: asyncio.Future[int] | None = None

    async def wait(self) -> int:
        if self._waiter is None:
            self._waiter = asyncio.ensure_future(self._read_status())
        return await asyncio.shield(self._waiter)

    async def _read_status(self) -> int:
        """The command's status (from the sandbox's init, which then exits), then the
        end of the sandbox's first process (its pidfd): the init (a pid namespace's
        ends only once every process in it is gone) or the keeper (which waited for
        the init). Killed before it said: -9."""
        code: int | None = None
        with contextlib.suppress(Exception):
            for line in (await self._status.read()).splitlines():
                message = json.loads(line)
                if message.get("t") == "exit" and code is None:
                    code = message["code"]
        _close(self._status)
        await self._ended()
        self.returncode = -signal.SIGKILL if code is None else code
        return self.returncode

    async def _ended(self) -> None:
        if self._pidfd < 0:
            return
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not ended.done():
                ended.set_result(None)

        loop.add_reader(self._pidfd, readable)
        try:
            await ended
        finally:
            loop.remove_reader(self._pidfd)

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            if self._pidfd >= 0:
                signal.pidfd_send_signal(self._pidfd, signum)
            else:
                os.kill(self.pid, signum)

    async def close(self) -> None:
        """Make sure the sandbox is gone (SIGTERM to the keeper, then SIGKILL to its
        whole group) and its status read; close our pipe ends."""
        waiter = asyncio.ensure_future(self.wait())
        if self.returncode is None:
            self._signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(waiter), STOP_GRACE)
            except (TimeoutError, asyncio.CancelledError):
                self._signal(signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await waiter
        if self.stdin is not None:
            self.stdin.close()
        for reader in (self.stdout, self.stderr, self._status):
            _close(reader)
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1


def _close(reader: asyncio.StreamReader) -> None:
    transport = getattr(reader, "_transport", None)
    if transport is not None:
        transport.close()


async def _reader(loop: asyncio.AbstractEventLoop, fd: int) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=1 << 26, loop=loop)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd, "rb", 0)
    )
    return reader


async def _writer(loop: asyncio.AbstractEventLoop, fd: int) -> asyncio.StreamWriter:
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.streams.FlowControlMixin(loop=loop), os.fdopen(fd, "wb", 0)
    )
    return asyncio.StreamWriter(transport, protocol, None, loop)


def _raise(message: dict[str, Any]) -> None:
    """The sandbox's report of why the command did not start."""
    kind, text = message.get("kind"), str(message.get("message", ""))
    if kind == "ExecError":  # exec maps it: command not found, permission denied ...
        raise OSError(int(message.get("errno", 0)), text)
    if kind == "SandboxSetupError":
        raise ModuleParamsError(f"sandbox: security_context.{text}")
    if kind == "ConfinementError":
        raise ModuleParamsError(text)
    raise ModuleError(f"sandbox: {text}")


async def spawn_command(init: dict[str, Any], started: list[SandboxedCommand]) -> SandboxedCommand:
    """Start ``init["exec"]`` (argv, cwd, env, stdin) in a sandbox set up as ``init`` asks.

    The command is appended to ``started`` as soon as its sandbox exists, so the caller
    can stop it whatever happens next.
    """
    loop = asyncio.get_running_loop()
    pipes = [os.pipe() for _ in range(5)]  # setup, status, stderr, stdout, stdin
    ends = [pipes[0][0], pipes[1][1], pipes[2][1], pipes[3][1], pipes[4][0]]
    ours = [pipes[0][1], pipes[1][0], pipes[2][0], pipes[3][0], pipes[4][1]]
    line = (json.dumps(init, separators=(",", ":"), default=str) + "\n").encode()
    rest = prewrite(pipes[0][1], line)
    try:
        pid, pidfd = await ask("exec", init["namespaces"], ends)
    except BaseException:
        for fd in (*ends, *ours):
            os.close(fd)
        raise
    for fd in ends:
        os.close(fd)
    setup_w, status_r, err_r, out_r, in_w = ours
    stdin: asyncio.StreamWriter | None = None
    if not init["exec"]["stdin"]:
        os.close(in_w)  # the command's stdin is /dev/null
    command = SandboxedCommand(
        pid,
        None,
        await _reader(loop, out_r),
        await _reader(loop, err_r),
        await _reader(loop, status_r),
        pidfd,
        "pid" in init["namespaces"],
    )
    started.append(command)
    if init["exec"]["stdin"]:
        stdin = await _writer(loop, in_w)
        command.stdin = stdin
    setup = await _writer(loop, setup_w)
    setup.write(rest)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it says why
        await setup.drain()
    setup.close()
    first = await command._status.readline()  # started, or why not (or EOF: killed)
    message = json.loads(first) if first.strip() else {"t": "error", "message": "killed"}
    if message.get("t") != "started":
        _raise(message)
    # Without a pid namespace too, when the init could make itself the subreaper of all
    # the command starts (and kill what is left): nothing for exec to look for.
    command.contained = bool(message.get("contained", command.contained))
    return command
