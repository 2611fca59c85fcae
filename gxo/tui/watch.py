"""``gxo ui --watch``: run again when the playbook, or a file it reads, is saved.

The files that count are found as ``gxo test --watch`` finds them
(:func:`gxo.testing.watch.find_references`): every string of the playbook that
names an existing path — data files, vars files, ``cwd`` directories — and the
YAML files those name in turn. Editors' temporary files (vim's ``4913``,
``sed -i``'s ``sedXXXXXX``, backups, swap files) never count, nor a referenced
file written while a run is in progress: a playbook that writes a file it also
reads must not re-run itself forever.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from gxo.testing.watch import find_references, is_editor_temp

__all__ = ["PlaybookWatch", "watch_loop"]

_SLACK = 0.05  # seconds around a run in which a write counts as the run's own
_KEPT_WINDOWS = 8


class PlaybookWatch:
    """Which directories to watch for ``playbook``, and which change sets matter."""

    def __init__(self, playbook: Path) -> None:
        self.playbook = playbook.resolve()
        self.windows: list[tuple[float, float]] = []
        self._running_since: float | None = None

    # -- what to watch -------------------------------------------------------------

    def files(self) -> frozenset[Path]:
        """The playbook and everything it references (followed through YAML files)."""
        return frozenset({self.playbook, *find_references(self.playbook)})

    def roots(self) -> list[Path]:
        """Directories to watch: a file's directory (editors replace files, which a
        watch on the file itself would lose), or a referenced directory itself."""
        roots: list[Path] = []
        for path in sorted(self.files()):
            directory = path if path.is_dir() else path.parent
            if any(directory == r or r in directory.parents for r in roots):
                continue
            roots = [r for r in roots if directory not in r.parents]
            roots.append(directory)
        return roots

    # -- run windows ---------------------------------------------------------------

    def run_started(self) -> None:
        self._running_since = time.time()

    def run_ended(self) -> None:
        if self._running_since is not None:
            self.windows.append((self._running_since - _SLACK, time.time() + _SLACK))
            del self.windows[:-_KEPT_WINDOWS]
        self._running_since = None

    def _written_by_a_run(self, path: Path) -> bool:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return False  # deleted: the user's doing
        if self._running_since is not None and mtime >= self._running_since - _SLACK:
            return True
        return any(lo <= mtime <= hi for lo, hi in self.windows)

    # -- what matters ------------------------------------------------------------------

    def relevant(self, raw: Iterable[tuple[Any, str]]) -> list[Path]:
        """The changed paths that should start a new run (sorted), from a watchfiles set."""
        files = self.files()
        directories = [f for f in files if f.is_dir()]
        out: set[Path] = set()
        for _, name in raw:
            path = Path(name).resolve()
            if is_editor_temp(path):
                continue
            if path != self.playbook:
                referenced = path in files or any(d in path.parents for d in directories)
                if not referenced or self._written_by_a_run(path):
                    continue
            out.add(path)
        return sorted(out)


async def watch_loop(
    watch: PlaybookWatch,
    stop: Any,
    on_change: Callable[[list[Path]], Awaitable[None]],
    *,
    debounce: int = 1600,
    step: int = 50,
) -> None:
    """Call ``on_change`` with each relevant change list until ``stop`` is set. The
    watched directories follow the playbook: a newly referenced file counts from the
    next change on. ``stop`` makes the watching thread return within ``step`` ms."""
    import watchfiles

    while not stop.is_set():
        roots = watch.roots()
        async with contextlib.aclosing(
            watchfiles.awatch(*roots, stop_event=stop, debounce=debounce, step=step)
        ) as sets:
            async for raw in sets:
                changed = watch.relevant(raw)
                if changed:
                    await on_change(changed)
                if watch.roots() != roots:
                    break  # watch the new set of directories
