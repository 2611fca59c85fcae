"""Run a check as an unprivileged user, even when the test suite runs as root (CI).

Root reads every directory and may change every owner, so a test of what happens
*without* those rights would never run in CI. As root, the check runs in a forked
child that drops to ``nobody`` (65534). It forks rather than starting a new
interpreter: the interpreter and its standard library live under ``/root``, which
``nobody`` cannot read — so everything the check needs must be imported before
(``warm_up``), and the check works in a directory ``nobody`` owns.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

NOBODY = 65534


def run_unprivileged(
    check: Callable[[Path], Awaitable[None]], warm_up: Callable[[Path], Awaitable[None]]
) -> None:
    """``await check(workdir)`` without root's rights; an assertion in it fails the test."""
    workdir = Path(tempfile.mkdtemp(prefix="gxo-unpriv-"))
    try:
        if os.geteuid() != 0:
            asyncio.run(check(workdir))
            return
        # As root: import whatever the check touches while we still can read /root.
        warm = workdir / "warm"
        warm.mkdir()
        asyncio.run(warm_up(warm))
        shutil.rmtree(warm)
        os.chown(workdir, NOBODY, NOBODY)
        _in_child_as_nobody(check, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _in_child_as_nobody(check: Callable[[Path], Awaitable[None]], workdir: Path) -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            assert os.geteuid() == NOBODY
            os.environ["HOME"] = str(workdir)
            os.chdir(workdir)
            asyncio.run(check(workdir))
            code = 0
        except BaseException:
            os.write(write_end, traceback.format_exc().encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"the check as nobody failed:\n{report}"
