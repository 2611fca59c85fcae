"""Finding and stopping what a command left behind (Linux ``/proc``; a no-op elsewhere).

A command may start processes that outlive it: ``cmd &`` in a script, a daemon that
double-forks, ``setsid`` to leave the process group. ``exec`` kills its own process
group, which misses the last two. So:

* GXO makes itself a *child subreaper* (``PR_SET_CHILD_SUBREAPER``): an orphaned
  descendant is re-parented to GXO instead of init, so it cannot vanish from view
  and GXO can (and must) reap it.
* Every command gets a unique ``GXO_EXEC_ID`` in its environment. The environment is
  inherited through ``fork``/``exec`` and survives ``setsid``, so a process carrying
  the mark belongs to that command wherever it moved (the way Jenkins finds a build's
  leftovers). Children of marked processes count too (``env -i`` drops the mark).
* The tree is observed while the command runs, so a leftover that exits on its own
  before the end is still known and its zombie reaped.

Only processes that carried the mark are ever signalled or reaped: a process of
another workload, or of the program embedding GXO, is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
import uuid

__all__ = ["ENV_VAR", "ProcessTree", "become_subreaper"]

ENV_VAR = "GXO_EXEC_ID"
PR_SET_CHILD_SUBREAPER = 36
WATCH_INTERVAL = 0.5  # seconds between two observations of a running command's tree
SNAPSHOT_TTL = 0.2  # a /proc scan is shared by the trees observed within this time

_subreaper_lock = threading.Lock()
_subreaper_done = False


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (once; Linux only)."""
    global _subreaper_done
    if not sys.platform.startswith("linux"):
        return False
    with _subreaper_lock:
        if not _subreaper_done:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                _subreaper_done = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
            except (OSError, AttributeError):
                _subreaper_done = False
        return _subreaper_done


# pid -> (ppid, state, starttime, pgid, sid); starttime tells a reused pid from the one we saw.
Snapshot = dict[int, tuple[int, str, int, int, int]]
_snapshot: tuple[float, Snapshot] = (0.0, {})
_snapshot_lock = threading.Lock()


def _ticks_since_boot() -> float:
    try:
        with open("/proc/uptime") as fh:
            return float(fh.read().split()[0]) * os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _scan(since: float) -> Snapshot:
    """All processes; a scan taken after ``since`` and less than SNAPSHOT_TTL ago is reused."""
    global _snapshot
    with _snapshot_lock:
        taken, snap = _snapshot
        if taken >= since and time.monotonic() - taken < SNAPSHOT_TTL:
            return snap
        snap = {}
        try:
            names = os.listdir("/proc")
        except OSError:
            names = []
        for name in names:
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    data = fh.read()
            except OSError:
                continue
            # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
            fields = data[data.rfind(b")") + 2 :].split()
            with contextlib.suppress(IndexError, ValueError):
                snap[int(name)] = (
                    int(fields[1]),
                    fields[0].decode(),
                    int(fields[19]),
                    int(fields[2]),
                    int(fields[3]),
                )
        _snapshot = (time.monotonic(), snap)
        return snap


class ProcessTree:
    """The processes of one command, found by its environment mark and by parentage."""

    def __init__(self) -> None:
        self.mark = uuid.uuid4().hex
        self._needle = f"{ENV_VAR}={self.mark}".encode()
        self.root: int | None = None
        self.members: dict[int, int] = {}  # pid -> starttime of processes known to be ours
        self._checked: set[tuple[int, int]] = set()  # (pid, starttime) already looked at
        self._lock = threading.Lock()  # observe() runs in worker threads
        self._since = time.monotonic()
        # Only processes started since (in clock ticks after boot, as /proc says) can
        # be the command's: the environments of older ones are never read.
        self._born_after = _ticks_since_boot() - 2

    def environment(self, env: dict[str, str] | None) -> dict[str, str]:
        return {**(os.environ if env is None else env), ENV_VAR: self.mark}

    def _marked(self, pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                data = fh.read()
        except OSError:
            return False
        return any(entry == self._needle for entry in data.split(b"\0"))

    def observe(self, *, fresh: bool = False) -> Snapshot:
        """Add the marked processes, and the children of known ones, to ``members`` (blocking)."""
        with self._lock:
            return self._observe(fresh)

    def _observe(self, fresh: bool) -> Snapshot:
        # A scan from before the last change we know of would miss new processes.
        snap = _scan(time.monotonic() if fresh else self._since)
        for pid, (_ppid, state, start, _pgid, _sid) in snap.items():
            key = (pid, start)
            if key in self._checked or state == "Z":
                continue
            self._checked.add(key)
            if start >= self._born_after and self._marked(pid):
                self.members[pid] = start
        grew = True
        while grew:  # children of members, even without the mark (``env -i``)
            grew = False
            for pid, (ppid, _state, start, _pgid, _sid) in snap.items():
                if (
                    pid not in self.members
                    and ppid in self.members
                    and ppid in snap
                    and self.members[ppid] == snap[ppid][2]
                ):
                    self.members[pid] = start
                    grew = True
        return snap

    async def watch(self) -> None:
        """Observe the tree now and then until cancelled."""
        if not sys.platform.startswith("linux"):
            return
        delay = 0.1
        while True:
            await asyncio.sleep(delay)
            await asyncio.to_thread(self.observe)
            delay = WATCH_INTERVAL

    def _leftovers(self, snap: Snapshot) -> list[int]:
        with self._lock:
            members = list(self.members.items())
        return [
            pid
            for pid, start in members
            if pid != self.root and pid in snap and snap[pid][2] == start and snap[pid][1] != "Z"
        ]

    def _signal(self, pids: list[int], sig: int) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def _reap(self, snap: Snapshot | None = None) -> None:
        """Collect the exit status of members re-parented to us (none is asyncio's child)."""
        me = os.getpid()
        if snap is None:
            snap = self.observe(fresh=True)
        with self._lock:
            self._reap_zombies(snap, me)

    def _reap_zombies(self, snap: Snapshot, me: int) -> None:
        # A zombie of the command's group or session, re-parented to us, died before
        # any observation saw it; it is ours to reap all the same (its pid is not the
        # root's, so it is none of asyncio's children).
        for pid, (ppid, state, _start, pgid, sid) in snap.items():
            if ppid == me and state == "Z" and pid != self.root and self.root in (pgid, sid):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
        for pid, start in list(self.members.items()):
            if pid == self.root:
                continue
            info = snap.get(pid)
            if info is None or info[2] != start:
                self.members.pop(pid, None)  # gone (reaped by its own parent)
            elif info[0] == me and info[1] == "Z":
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                self.members.pop(pid, None)

    async def stop_leftovers(self, grace: float) -> int:
        """SIGTERM the live members but the root, SIGKILL those still there after ``grace``.

        Returns how many there were. Zombies re-parented to us are reaped.
        """
        if not sys.platform.startswith("linux"):
            return 0
        snap = await asyncio.to_thread(self.observe, fresh=True)
        found = self._leftovers(snap)
        if not found:  # nothing signalled: that scan tells which zombies to reap
            await asyncio.to_thread(self._reap, snap)
            return 0
        self._signal(found, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while True:
            await asyncio.sleep(0.02)
            snap = await asyncio.to_thread(self.observe, fresh=True)
            alive = self._leftovers(snap)
            if not alive:
                break
            if time.monotonic() >= deadline:
                # Kill until nothing marked is left: a leftover may fork while dying.
                for _ in range(20):
                    self._signal(alive, signal.SIGKILL)
                    await asyncio.sleep(0.02)
                    snap = await asyncio.to_thread(self.observe, fresh=True)
                    alive = self._leftovers(snap)
                    if not alive:
                        break
                break
        await asyncio.to_thread(self._reap)
        return len(found)
