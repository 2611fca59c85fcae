"""The daemon's long-lived objects, out of the cycle collector's way.

A daemon keeps its applied playbooks — models, graphs, compiled templates, reconcilers —
for its whole life, and CPython's full collections traverse every one of them: with
1,000 scheduled workloads each full collection took 65–145 ms (bench/RESULTS.md), longer
than the fire-lag goal, and 9–18 % of a core. After start-up and after each apply,
:func:`settle` collects once and moves everything alive into the permanent generation
(``gc.freeze``), so later collections traverse only what instances create. Reference
counting still frees frozen objects; only *cyclic* garbage among them waits for the
next settle, which unfreezes first (so a replaced playbook lingers at most until then).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

__all__ = ["cancel", "enable", "quiet", "quiet_soon", "request_settle", "settle"]

log = logging.getLogger("gxo.daemon")

SETTLE_DELAY = 1.0  # seconds after an apply: a burst of applies settles once
FULL_EVERY = 100  # middle collections between full ones, once frozen (CPython: 10)
# Net allocations of container objects between young collections, once frozen (CPython:
# 700). See settle().
YOUNG_EVERY = 500_000
# quiet(): a young collection when no instance is in flight and this many net
# allocations accumulated since the last one.
QUIET_YOUNG = 20_000
QUIET_DELAY = 0.05
_quiet: dict[asyncio.AbstractEventLoop, asyncio.TimerHandle] = {}
_pending: dict[asyncio.AbstractEventLoop, asyncio.TimerHandle] = {}
_ENABLED = [False]  # only a daemon process freezes its heap (not a test using Daemon in-process)


def enable() -> None:
    """This process is a daemon: settle after applies from now on."""
    _ENABLED[0] = True


def settle() -> float:
    """Collect everything, then freeze what is alive; returns the milliseconds it took."""
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    # A full collection runs when the objects promoted since the last one exceed a quarter
    # of the long-lived ones: with those frozen, nearly every tenth middle collection was
    # a full one, each walking every instance in flight (bench/RESULTS.md: 0.3 ms of CPU
    # per fire at 1,000 fires a second). An instance is no reference cycle (runs.py, the
    # engine; tests/daemon/test_fire_path.py), so the old generation holds no garbage
    # that waits for a full pass: one every FULL_EVERY middle ones (≈ 4 s at 1,000 fires
    # a second; 1,000 saved no more CPU) bounds what a module's own cycles may leave.
    #
    # The young threshold counts container objects allocated minus those freed. A burst
    # of 1,000 fires holds ≈ 175,000 of them in flight, all freed by reference counting
    # when the instances end; with CPython's 700 a young collection ran every ~4 fires,
    # each walking the instances in flight and promoting them, and the middle ones
    # walked them again: 0.06 ms of CPU per fire, ≈ 15 % of the daemon's (bench/RESULTS.md).
    # Above the burst (a margin of ≈ 3×), no collection runs in it and the count falls
    # back to ≈ 0 after it. What stays alive or is cyclic garbage (a module's own
    # cycles) is collected by quiet() when no instance is in flight, else every
    # YOUNG_EVERY net allocations.
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_EVERY), middle, FULL_EVERY)
    took = (time.perf_counter() - started) * 1000
    log.debug("heap settled in %.1f ms (%d objects frozen)", took, gc.get_freeze_count())
    return took


def quiet() -> None:
    """No instance in flight: collect the young generation if it grew by
    :data:`QUIET_YOUNG` since the last collection (cheap now: what an instance
    allocated is freed; in a burst it would walk every instance in flight)."""
    if not _ENABLED[0] or not gc.isenabled():
        return
    young, middle, full = gc.get_count()
    if young < QUIET_YOUNG:
        return
    # The older generations as an automatic collection would (these collections reset
    # the young count, so automatic ones may never come): the middle one every
    # `middle threshold` young ones, a full one every FULL_EVERY middle ones.
    _, every_middle, every_full = gc.get_threshold()
    generation = 0
    if middle + 1 >= every_middle:
        generation = 2 if full + 1 >= every_full else 1
    gc.collect(generation)


def quiet_soon(idle: Callable[[], bool]) -> None:
    """:func:`quiet` in :data:`QUIET_DELAY` seconds if ``idle()`` says so then (the last
    instance of a burst has ended, but its callers' frames still hold the others for a
    few loop steps); once for a burst of calls."""
    if not _ENABLED[0] or gc.get_count()[0] < QUIET_YOUNG:
        return
    loop = asyncio.get_running_loop()
    if loop in _quiet:
        return

    def run() -> None:
        _quiet.pop(loop, None)
        if idle():
            quiet()

    _quiet[loop] = loop.call_later(QUIET_DELAY, run)


def request_settle(delay: float = SETTLE_DELAY) -> None:
    """Settle ``delay`` seconds from now on the running loop (once for a burst of calls)."""
    if not _ENABLED[0]:
        return
    loop = asyncio.get_running_loop()
    if loop in _pending:
        return

    def run() -> None:
        _pending.pop(loop, None)
        settle()

    _pending[loop] = loop.call_later(delay, run)


def cancel() -> None:
    """Forget a pending settle of the running loop (daemon shutdown)."""
    loop = asyncio.get_running_loop()
    for pending in (_pending, _quiet):
        handle = pending.pop(loop, None)
        if handle is not None:
            handle.cancel()
