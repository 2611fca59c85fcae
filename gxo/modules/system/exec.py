"""``exec``: run a local command."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from typing import Any

from pydantic import Field, field_validator

from gxo.engine.context import ModuleContext
from gxo.errors import ModuleError
from gxo.modules.base import Module, ModuleParams, register

MAX_CAPTURE = 16 * 1024 * 1024  # bytes kept per output stream
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL on cancellation
YIELD_EVERY = 200  # output lines read between two trips through the event loop


@register("exec", layer="system")
class Exec(Module):
    """Run a local command and capture its output.

    The command runs as a child process in its own process group, in the run's
    workspace unless ``cwd`` says otherwise. Each output line is logged live
    (``gxo run -v``, the TUI). A timeout or Ctrl-C terminates the whole process
    group (SIGTERM, then SIGKILL after 2 s). An exit code outside
    ``ok_exit_codes`` fails the workload, but stdout, stderr and exit_code are
    kept in the report and in the registered result.

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

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        env = _environment(params)
        cwd = ctx.resolve_path(params.cwd) if params.cwd else ctx.workspace
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
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=str(cwd),
                env=env,
                stdin=asyncio.subprocess.PIPE
                if params.stdin is not None
                else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # own process group: a kill reaches grandchildren
            )
        except FileNotFoundError:
            raise ctx.fail(f"command not found: {params.command}") from None
        except PermissionError:
            raise ctx.fail(f"permission denied: {params.command}") from None
        except OSError as exc:
            raise ctx.fail(f"cannot start {params.command}: {exc.strerror}") from None
        try:
            stdout, stderr = await _communicate(ctx, proc, params.stdin)
            code = await proc.wait()
        except BaseException:
            await _terminate(proc)
            raise
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
    ctx: ModuleContext, proc: asyncio.subprocess.Process, stdin: str | None
) -> tuple[str, str]:
    results = await asyncio.gather(
        _pump(ctx, proc.stdout, "stdout"),
        _pump(ctx, proc.stderr, "stderr"),
        _feed(proc, stdin),
    )
    return results[0], results[1]


async def _pump(ctx: ModuleContext, stream: asyncio.StreamReader | None, name: str) -> str:
    if stream is None:
        return ""
    chunks: list[bytes] = []
    size = 0
    truncated = False
    lines = 0
    while True:
        line = await stream.readline()
        if not line:
            break
        lines += 1
        if lines % YIELD_EVERY == 0:
            # readline() returns buffered lines without suspending: let others run.
            await asyncio.sleep(0)
        ctx.log(line.decode("utf-8", "replace").rstrip("\n"), stream=name)
        if size < MAX_CAPTURE:
            chunks.append(line)
            size += len(line)
        else:
            truncated = True
    text = b"".join(chunks).decode("utf-8", "replace")
    if truncated:
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
