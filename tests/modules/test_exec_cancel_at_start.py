"""exec cancelled while its process is still being started (the fork already ran, the
await not yet back): the process is stopped and reaped, never left running."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from pathlib import Path

import pytest

from gxo.modules.testkit import run_module

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


def _children() -> list[int]:
    me = str(os.getpid())
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            data = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2 :].split()
        if fields[1].decode() == me and fields[0] != b"Z":
            found.append(int(name))
    return found


async def test_a_cancel_at_any_moment_of_the_start_leaves_no_process() -> None:
    before = set(_children())
    for i in range(30):
        task = asyncio.ensure_future(
            run_module("exec", {"command": "sleep", "args": ["31.27"]}, workspace="/tmp")
        )
        # from "before the fork" to "running": a few loop turns and a few ms
        for _ in range(i % 6):
            await asyncio.sleep(0)
        if i >= 6:
            await asyncio.sleep((i % 5) * 0.002)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
    gc.collect()  # a Process left behind would warn "subprocess still running" here
    leftover = set(_children()) - before
    assert not leftover, f"processes left running: {leftover}"


async def test_a_cancel_arriving_as_the_start_returns_still_stops_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race itself: the process exists, and the task running the module is
    cancelled in the loop turn where the start returns (asyncio throws CancelledError at
    that await, and the Process object it carried is lost)."""
    from gxo.modules.system.exec import Exec

    real_start, real_perform = asyncio.create_subprocess_exec, Exec.perform
    performer: list[asyncio.Task] = []
    started: list[int] = []

    async def perform(self, ctx, params):
        performer.append(asyncio.current_task())
        return await real_perform(self, ctx, params)

    async def start_then_cancel(*args, **kwargs):
        proc = await real_start(*args, **kwargs)
        started.append(proc.pid)
        performer[0].cancel()
        await asyncio.sleep(0)  # the cancel lands while the start is being returned
        return proc

    monkeypatch.setattr(Exec, "perform", perform)
    monkeypatch.setattr(asyncio, "create_subprocess_exec", start_then_cancel)
    before = set(_children())
    task = asyncio.ensure_future(
        run_module("exec", {"command": "sleep", "args": ["31.28"]}, workspace="/tmp")
    )
    try:
        run = await task
    except asyncio.CancelledError:  # the module ran in this task (the test kit's way)
        pass
    else:
        assert run.status == "Failed" and "cancel" in (run.error or "").lower(), run.error
    monkeypatch.undo()
    gc.collect()
    assert started, "the process was started"
    left = set(_children()) - before
    assert not left, [Path(f"/proc/{p}/cmdline").read_bytes() for p in left]
