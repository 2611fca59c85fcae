"""Running an external CLI (terraform, ansible-playbook) with its output streamed line by line.

The leading underscore keeps the registry from importing this file as a module.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CliResult", "run_cli"]

KILL_GRACE = 5.0
MAX_KEPT = 2000  # stderr lines kept for error messages


@dataclass
class CliResult:
    returncode: int
    stderr: list[str] = field(default_factory=list)


async def _pump(
    stream: asyncio.StreamReader | None, on_line: Callable[[str], None], kept: list[str] | None
) -> None:
    if stream is None:
        return
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # a line longer than the limit: take what is buffered
            raw = await stream.read(1 << 20)
        if not raw:
            return
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if kept is not None and len(kept) < MAX_KEPT:
            kept.append(line)
        on_line(line)


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the process group, SIGKILL after a grace period; always reap."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), KILL_GRACE)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


async def run_cli(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    on_stdout: Callable[[str], None],
    on_stderr: Callable[[str], None],
) -> CliResult:
    """Run ``argv``; every output line goes to the callbacks as it arrives.

    The command runs in its own process group, which is stopped (TERM, then KILL)
    if the caller is cancelled; the child is always reaped and its pipes closed.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=str(cwd),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        limit=1 << 24,
    )
    kept: list[str] = []
    pumps = asyncio.gather(_pump(proc.stdout, on_stdout, None), _pump(proc.stderr, on_stderr, kept))
    try:
        await pumps
        code = await proc.wait()
    except BaseException:
        pumps.cancel()
        with contextlib.suppress(BaseException):
            await pumps
        await asyncio.shield(_terminate(proc))
        raise
    return CliResult(code, kept)


def find_binary(candidates: Sequence[str]) -> str | None:
    import shutil

    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    return None
