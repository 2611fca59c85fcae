"""Cost of starting a command with the parent-death signal (the daemon's exec option).

Times ``asyncio.create_subprocess_exec('/bin/true')`` as exec starts it (own
session, piped output) in a process holding a ballast heap of N MB: plain, through
``setpriv --pdeathsig KILL`` (what exec uses when setpriv can), and with the
ctypes ``preexec_fn`` fallback, which forces a full fork. The spawn runs on the
event loop, so its time is loop time.

    python bench/bench_pdeathsig.py [--heap 0 100 500] [--spawns 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from gxo.modules.system import _pdeathsig


async def spawn(n: int, mode: str) -> tuple[float, float]:
    times = []
    for _ in range(n):
        argv, preexec = ["/bin/true"], None
        if mode == "setpriv":
            argv = [_pdeathsig._setpriv(), "--pdeathsig", "KILL", "--", "/bin/true"]
        elif mode == "preexec":
            preexec = _pdeathsig.parent_death_preexec()
        t = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            start_new_session=True,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=preexec,
        )
        await proc.wait()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heap", type=int, nargs="+", default=[0, 100, 500])
    parser.add_argument("--spawns", type=int, default=200)
    args = parser.parse_args()
    _pdeathsig.set_parent_death_signal(True)
    modes = ["plain", "preexec"] + (["setpriv"] if _pdeathsig._setpriv() else [])
    for heap in args.heap:
        ballast = [bytearray(1024 * 1024) for _ in range(heap)]
        for block in ballast:  # touch every page: a fork copies the page tables of what is mapped
            block[::4096] = b"x" * len(block[::4096])
        await spawn(20, "plain")  # warm-up
        for mode in modes:
            median, p95 = await spawn(args.spawns, mode)
            print(f"heap {heap:4d} MB  {mode:8s} median {median:6.2f} ms  p95 {p95:6.2f} ms")
        del ballast


if __name__ == "__main__":
    asyncio.run(main())
