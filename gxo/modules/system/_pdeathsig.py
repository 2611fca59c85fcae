"""Opt-in: an ``exec`` command dies with GXO, even when GXO is killed with SIGKILL.

``gxo daemon`` turns it on (:func:`set_parent_death_signal` or ``GXO_PDEATHSIG=1``)
so that a daemon restarted after ``kill -9`` never finds a second copy of a
supervised service still running. ``gxo run`` leaves it off: a command outliving
an interrupted run is then cleaned up by the run itself (process group, subreaper).

How: Linux's ``PR_SET_PDEATHSIG(SIGKILL)``, armed in the child between ``fork``
and the command's ``exec`` (the setting survives ``exec``). Two ways, measured
(bench/RESULTS.md, "exec with parent-death signal"):

* Preferred: the command is started through util-linux's ``setpriv --pdeathsig
  KILL --`` (same pid: setpriv ``exec``s the command). ``subprocess`` keeps its
  ``vfork`` fast path and runs no Python in the child; the extra ``exec`` costs
  about 1 ms whatever GXO's size.
* Fallback (no ``setpriv``, or one older than 2.33): a ``preexec_fn`` calling a
  ``prctl`` resolved beforehand through ctypes. It forces a full ``fork``, whose
  cost grows with GXO's heap (~10 ms at 100 MB, ~45 ms at 500 MB, all of it on
  the event loop), and runs a little Python in the child (no import, no lock a
  thread could hold). If GXO died before the ``prctl``, the child sees its parent
  changed and exits instead of running orphaned (setpriv has a ~1 ms window
  without that check).

Limits:

* The signal fires when the *thread* that forked the child ends, not only the
  process. asyncio starts subprocesses from the event loop's thread, so a command
  lives as long as the loop's thread: a daemon that runs an engine on a
  short-lived worker thread's loop would see its commands killed when that
  thread exits.
* Only the process ``exec`` started (the process group leader) gets it; it is not
  inherited through ``fork``. A command's own children die with it only if it
  takes them down (``sh -c 'cmd'`` ``exec``s its last command, so has none left).
  Stopping the whole group on a graceful stop stays the engine's job.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable

__all__ = [
    "ENV_VAR",
    "parent_death_preexec",
    "parent_death_signal",
    "parent_death_spawn",
    "set_parent_death_signal",
]

ENV_VAR = "GXO_PDEATHSIG"
PR_SET_PDEATHSIG = 1

_enabled: bool | None = None  # None: the environment variable decides
_prctl: Callable[..., int] | None = None
_setpriv_path: str | None = None  # "" when there is none that can do it


def set_parent_death_signal(enabled: bool | None) -> None:
    """Turn the parent-death signal of exec's commands on or off (None: back to ``GXO_PDEATHSIG``)."""
    global _enabled
    _enabled = enabled
    if enabled:
        _setpriv()  # looked up now (at daemon start), not on the first command's spawn


def parent_death_signal() -> bool:
    """Whether exec arms the parent-death signal (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    if _enabled is not None:
        return _enabled
    return os.environ.get(ENV_VAR, "") == "1"


def parent_death_spawn(
    argv: list[str], cwd: str | None = None
) -> tuple[list[str], Callable[[], None] | None]:
    """``(argv to start, preexec_fn)`` arming the signal for the command ``argv``.

    Unchanged (``argv, None``) when off; ``argv[0]`` must be the resolved command
    (relative paths are relative to ``cwd``, where it will start).
    """
    if not parent_death_signal():
        return argv, None
    wrapper = _setpriv()
    command = os.path.join(cwd, argv[0]) if cwd else argv[0]
    # A command that cannot be started is left to fail as usual (not found, not
    # executable), rather than through setpriv's exit code 127.
    if wrapper and os.access(command, os.X_OK) and not os.path.isdir(command):
        return [wrapper, "--pdeathsig", "KILL", "--", *argv], None
    return argv, parent_death_preexec()


def _setpriv() -> str:
    """setpriv's path if it has ``--pdeathsig`` (util-linux 2.33+), else ""; looked up once."""
    global _setpriv_path
    if _setpriv_path is None:
        found = shutil.which("setpriv") or ""
        if found:
            try:
                helptext = subprocess.run(
                    [found, "--help"], capture_output=True, text=True, timeout=5, check=False
                ).stdout
            except (OSError, subprocess.SubprocessError):
                helptext = ""
            found = found if "--pdeathsig" in helptext else ""
        _setpriv_path = found
    return _setpriv_path


def parent_death_preexec() -> Callable[[], None] | None:
    """The ``preexec_fn`` arming it in the next child (the fallback), or None when off."""
    global _prctl
    if not parent_death_signal():
        return None
    if _prctl is None:
        try:
            fn = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            return None
        fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        fn.restype = ctypes.c_int
        _prctl = fn
    prctl = _prctl
    parent = os.getpid()
    kill = int(signal.SIGKILL)

    def arm() -> None:  # runs in the child, after fork, before exec
        prctl(PR_SET_PDEATHSIG, kill, 0, 0, 0)
        if os.getppid() != parent:  # GXO is already gone: do not start orphaned
            os._exit(1)

    return arm
