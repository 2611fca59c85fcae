"""``exec``: run a local command."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from gxo.engine.context import ModuleContext
from gxo.errors import ModuleError
from gxo.modules.base import CheckMode, Module, ModuleParams, register

if TYPE_CHECKING:
    from gxo.modules.system._proctree import ProcessTree

MAX_CAPTURE = 16 * 1024 * 1024  # bytes kept per output stream
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL on cancellation
YIELD_EVERY = 200  # output lines logged between two trips through the event loop
READ_CHUNK = 8192  # bytes read at a time (a line may be longer than any buffer)
LOG_LINE_CAP = 8192  # characters of one output line kept in the log (capture keeps all)
EXIT_POLL = 0.1  # seconds between two looks at a command whose pipes are still open
DRAIN_TIMEOUT = 2.0  # seconds to read what is left once the command exited


@register("exec", layer="system")
class Exec(Module):
    """Run a local command and capture its output.

    The command runs as a child process in its own process group, in the run's
    workspace unless ``cwd`` says otherwise. Each output line is logged live
    (``gxo run -v``, the TUI). A timeout or Ctrl-C terminates the whole process
    group (SIGTERM, then SIGKILL after 2 s). When the command ends, processes it
    left behind (``cmd &``, ``setsid``, daemons) are stopped the same way: on Linux
    GXO is their subreaper and finds them by the ``GXO_EXEC_ID`` variable each
    command gets in its environment. Output still held open by such a process is
    read for at most 2 s after the command exited. An exit code outside
    ``ok_exit_codes`` fails the workload, but stdout, stderr and exit_code are
    kept in the report and in the registered result.

    ``gxo run --check`` does not run a command, which could change anything,
    unless it declares ``check_mode: safe`` (a read-only command such as
    ``uname`` or ``git status``); workloads that need its result are skipped.

    Example:
        - name: kernel_version
          process:
            module: exec
            params: { command: uname, args: [-r] }
          register: kernel
        - name: build
          process:
            module: exec
            params:
              command: make
              args: [build]
              cwd: src
              environment: { CI: "true" }
              ok_exit_codes: [0, 2]
    """

    class Params(ModuleParams):
        command: str = Field(
            ...,
            min_length=1,
            description="Command name (looked up in PATH) or path; with shell: true, a shell command line",
        )
        args: list[str] = Field(
            default_factory=list, description="Arguments, one list item each (no shell splitting)"
        )
        environment: list[str] | dict[str, str] | None = Field(
            None,
            description="Environment as KEY=VALUE strings or a mapping; replaces the inherited environment unless inherit_environment is true",
        )
        inherit_environment: bool = Field(
            False, description="Add `environment` to GXO's own environment instead of replacing it"
        )
        cwd: str | None = Field(None, description="Working directory, relative to the workspace")
        stdin: str | None = Field(None, description="Text written to the command's standard input")
        shell: bool = Field(
            False, description="Run `command` through /bin/sh -c (args become $1, $2, ...)"
        )
        ok_exit_codes: list[int] = Field(
            default_factory=lambda: [0], description="Exit codes that count as success"
        )
        check_mode: Literal["safe", "unsupported"] = Field(
            "unsupported",
            description="gxo run --check: safe runs the command anyway (declare it only for a read-only command); unsupported skips it",
        )

        @field_validator("args", mode="before")
        @classmethod
        def _stringify_args(cls, value: Any) -> Any:
            if isinstance(value, list):
                return [v if isinstance(v, str) else _scalar(v) for v in value]
            return value

        @field_validator("environment", mode="before")
        @classmethod
        def _stringify_env(cls, value: Any) -> Any:
            if isinstance(value, dict):
                return {str(k): _scalar(v) for k, v in value.items()}
            return value

    summary = {
        "stdout": "standard output (one trailing newline removed)",
        "stderr": "standard error (one trailing newline removed)",
        "stdout_lines": "stdout split into lines",
        "exit_code": "the exit code (negative: killed by that signal)",
        "command": "the command line that ran",
    }

    path_params = ("cwd",)
    check_hint = "set check_mode: safe on a read-only command to run it under --check"

    def check_mode_for(self, params: Params) -> CheckMode:
        return CheckMode.safe if params.check_mode == "safe" else CheckMode.unsupported

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        env = _environment(params)
        cwd = ctx.resolve_path(params.cwd, param="cwd") if params.cwd else ctx.workspace
        if not cwd.is_dir():
            raise ctx.fail(f"working directory does not exist: {cwd}")
        if params.shell:
            argv = ["/bin/sh", "-c", params.command, "sh", *params.args]
        else:
            path = env.get("PATH") if env is not None and "PATH" in env else None
            resolved = shutil.which(params.command, path=path) or shutil.which(params.command)
            if resolved is None and os.sep not in params.command:
                raise ctx.fail(f"command not found: {params.command}")
            argv = [resolved or params.command, *params.args]
        # Imported here: resolving a module name loads that module's file only.
        from gxo.modules.system._pdeathsig import parent_death_spawn
        from gxo.modules.system._proctree import ProcessTree, become_subreaper

        tree = ProcessTree()
        become_subreaper()  # orphans of the command come to us, not to init
        # security_context: a sandbox starts it (gxo/engine/sandbox/command.py)
        sandboxed = getattr(ctx, "spawn_command", None)
        if sandboxed is not None:
            # Opted in (daemon): through setpriv, it dies with the sandbox's init, which dies
            # with GXO (without setpriv, a pid namespace's end still takes it along).
            spawn_argv, _ = parent_death_spawn(argv, str(cwd))
            spawn = asyncio.ensure_future(
                sandboxed(spawn_argv, str(cwd), tree.environment(env), params.stdin is not None)
            )
        else:
            # Unchanged unless the daemon opted in: then the command dies with GXO, even on SIGKILL.
            spawn_argv, preexec = parent_death_spawn(argv, str(cwd))
            spawn = asyncio.ensure_future(
                asyncio.create_subprocess_exec(
                    *spawn_argv,
                    cwd=str(cwd),
                    env=tree.environment(env),
                    stdin=asyncio.subprocess.PIPE
                    if params.stdin is not None
                    else asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,  # own process group: a kill reaches grandchildren
                    preexec_fn=preexec,
                )
            )
        try:
            proc = await _spawned(spawn, tree)
        except FileNotFoundError:
            raise ctx.fail(f"command not found: {params.command}") from None
        except PermissionError:
            raise ctx.fail(f"permission denied: {params.command}") from None
        except OSError as exc:
            raise ctx.fail(f"cannot start {params.command}: {exc.strerror}") from None
        tree.root = proc.pid
        # A sandbox's pid namespace holds all the command started: the kernel ends it with
        # the namespace, so there is nothing to look for (engine/sandbox/command.py).
        contained = getattr(proc, "contained", False)
        watcher = asyncio.create_task(tree.watch()) if not contained else None
        outputs = (_Output(ctx, "stdout"), _Output(ctx, "stderr"))
        try:
            code = await _communicate(proc, outputs, params.stdin, tree)
        finally:
            if watcher is not None:
                watcher.cancel()
            await _finish(asyncio.ensure_future(_cleanup(proc, tree)))
        stdout, stderr = outputs[0].text(), outputs[1].text()
        summary = {
            "stdout": _strip_nl(stdout),
            "stderr": _strip_nl(stderr),
            "stdout_lines": stdout.splitlines(),
            "exit_code": code,
            "command": " ".join(argv if not params.shell else [params.command, *params.args]),
        }
        if code not in params.ok_exit_codes:
            detail = (
                _strip_nl(stderr).strip().splitlines()[-1:]
                or _strip_nl(stdout).strip().splitlines()[-1:]
            )
            suffix = f": {ctx.redact_excerpt(detail[0], 300, '')}" if detail else ""
            raise ctx.fail(f"command exited with code {code}{suffix}", summary=summary)
        return summary


def set_parent_death_signal(enabled: bool | None) -> None:
    """Commands started from now on die with this process, even on SIGKILL (Linux;
    ``gxo daemon`` turns it on). None: back to the ``GXO_PDEATHSIG=1`` variable.
    See :mod:`gxo.modules.system._pdeathsig` for the cost and the limits."""
    from gxo.modules.system._pdeathsig import set_parent_death_signal as _set

    _set(enabled)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _environment(params: Exec.Params) -> dict[str, str] | None:
    if params.environment is None:
        return None
    if isinstance(params.environment, dict):
        given = dict(params.environment)
    else:
        given = {}
        for entry in params.environment:
            key, sep, value = entry.partition("=")
            if not sep or not key:
                raise ModuleError(f"environment entry {entry!r} is not KEY=VALUE")
            given[key] = value
    return {**os.environ, **given} if params.inherit_environment else given


def _strip_nl(text: str) -> str:
    return text[:-1] if text.endswith("\n") else text


async def _communicate(
    proc: asyncio.subprocess.Process,
    outputs: tuple[_Output, _Output],
    stdin: str | None,
    tree: ProcessTree,
) -> int:
    """Read both outputs until the command exited and its pipes closed (or a bounded drain)."""
    pumps = [
        asyncio.create_task(outputs[0].pump(proc.stdout)),
        asyncio.create_task(outputs[1].pump(proc.stderr)),
    ]
    feeder = asyncio.create_task(_feed(proc, stdin))
    try:
        code = await _exited(proc)
        _, pending = await asyncio.wait(pumps, timeout=DRAIN_TIMEOUT)
        if pending:
            # A background process still holds the pipes open; the command is over, so
            # stop what it left behind (which closes them) rather than wait for it.
            await tree.stop_leftovers(KILL_GRACE)
            await asyncio.wait(pending, timeout=0.5)
        for pump in pumps:
            if pump.done() and not pump.cancelled() and pump.exception() is not None:
                raise pump.exception()  # type: ignore[misc]
        return code
    finally:
        for task in (*pumps, feeder):
            task.cancel()
        await asyncio.gather(*pumps, feeder, return_exceptions=True)


async def _exited(proc: asyncio.subprocess.Process) -> int:
    """The exit code, as soon as the process exited.

    Before Python 3.12, ``proc.wait()`` also waits until the output pipes closed, which a
    background child may never do; ``returncode`` is set at exit, so poll it meanwhile.
    """
    waiter = asyncio.ensure_future(proc.wait())
    try:
        while proc.returncode is None:
            await asyncio.wait([waiter], timeout=EXIT_POLL)
        return proc.returncode
    finally:
        waiter.cancel()


class _Output:
    """One output stream: captured up to MAX_CAPTURE bytes, logged line by line.

    Read in chunks rather than with ``readline()``, which fails on a line longer than
    the stream's 64 KiB limit; a logged line is cut at LOG_LINE_CAP characters.
    """

    def __init__(self, ctx: ModuleContext, name: str) -> None:
        self.ctx, self.name = ctx, name
        self.parts: list[bytes] = []
        self.size = 0
        self.dropped = 0
        self.line = bytearray()  # the current line's head, for the log
        self.line_len = 0  # the current line's full length so far

    async def pump(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while True:
            data = await stream.read(READ_CHUNK)
            if not data:
                break
            self._capture(data)
            start = 0
            lines = 0
            while True:
                nl = data.find(b"\n", start)
                piece = data[start:] if nl < 0 else data[start:nl]
                room = LOG_LINE_CAP - len(self.line)
                if room > 0:
                    self.line += piece[:room]
                self.line_len += len(piece)
                if nl < 0:
                    break
                self._log_line()
                start = nl + 1
                lines += 1
                if lines % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # a burst of short lines: let others run
            # read() returns buffered data without suspending: let others run.
            await asyncio.sleep(0)
        if self.line_len:
            self._log_line()

    def _capture(self, data: bytes) -> None:
        room = MAX_CAPTURE - self.size
        if room <= 0:
            self.dropped += len(data)
            return
        self.parts.append(data[:room])
        self.size += min(room, len(data))
        self.dropped += max(0, len(data) - room)

    def _log_line(self) -> None:
        text = self.line.decode("utf-8", "replace")
        if self.line_len > len(self.line):  # cut: a secret cut in half there is masked
            text = self.ctx.run.secrets.mask_cut_edge(self.ctx.run.secrets.redact_str(text))
            text += f" [... {self.line_len - len(self.line)} more bytes]"
        self.ctx.log(text, stream=self.name)
        self.line.clear()
        self.line_len = 0

    def text(self) -> str:
        text = b"".join(self.parts).decode("utf-8", "replace")
        if self.dropped:  # cut at the cap: a secret cut in half there is masked
            text = self.ctx.run.secrets.mask_cut_edge(self.ctx.run.secrets.redact_str(text))
            text += f"\n[... output truncated at {MAX_CAPTURE} bytes]\n"
        return text


async def _feed(proc: asyncio.subprocess.Process, stdin: str | None) -> None:
    if stdin is None or proc.stdin is None:
        return
    try:
        proc.stdin.write(stdin.encode())
        await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        proc.stdin.close()


async def _cleanup(proc: asyncio.subprocess.Process, tree: ProcessTree) -> None:
    """Stop the command if it still runs, then whatever it left behind; close its pipes."""
    await _terminate(proc)
    if not getattr(proc, "contained", False):
        await tree.stop_leftovers(KILL_GRACE)
    transport = getattr(proc, "_transport", None)
    for fd in (0, 1, 2):
        pipe = transport.get_pipe_transport(fd) if transport is not None else None
        if pipe is not None and not pipe.is_closing():
            pipe.close()  # held open by a process we could not stop


async def _spawned(
    spawn: asyncio.Future[asyncio.subprocess.Process], tree: ProcessTree
) -> asyncio.subprocess.Process:
    """The started process. Cancelled while it was starting (the fork already ran): wait
    for the start to finish, stop the process and what it left behind, then re-raise the
    cancel — never a child left running (or unreaped) by an early cancel."""
    try:
        return await asyncio.shield(spawn)
    except asyncio.CancelledError:
        try:
            proc = await asyncio.wait_for(asyncio.shield(spawn), KILL_GRACE)
        except BaseException:  # it failed to start (or hangs): nothing of ours runs
            if spawn.done() and not spawn.cancelled():
                spawn.exception()  # retrieved: no "exception never retrieved"
            raise asyncio.CancelledError from None
        tree.root = proc.pid
        await _finish(asyncio.ensure_future(_cleanup(proc, tree)))
        raise


async def _finish(cleanup: asyncio.Future[None]) -> None:
    """Await ``cleanup`` to its end even if cancelled meanwhile, then re-raise the cancel."""
    cancelled = False
    while not cleanup.done():
        try:
            await asyncio.shield(cleanup)
        except asyncio.CancelledError:
            cancelled = True
    cleanup.result()
    if cancelled:
        raise asyncio.CancelledError


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    """Stop the process group: SIGTERM, then SIGKILL; always reap the child."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.shield(asyncio.wait_for(proc.wait(), KILL_GRACE))
    except (TimeoutError, asyncio.CancelledError):
        pass
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(proc.wait())
