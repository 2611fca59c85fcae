"""``gxo test --watch``: re-run the test files a change affects.

A test file is affected when it changed itself, or when it references a
changed file. References are found by scanning every string of the test
playbook for paths that exist, relative to the test file's directory (or
absolute): data files, vars files, ``cwd`` directories, and playbooks the test
runs — which are scanned in turn, so a test of ``examples/quickstart.gxo.yaml``
re-runs when the quickstart changes. A template prefix is ignored:
``"{{ gxo_test.dir }}/fixtures/users.json"`` references ``fixtures/users.json``.

Files a test run writes itself (outputs in its workspace) must not trigger
another run, or a test that writes a file it also reads would loop forever:
changes to non-test files whose modification time falls inside a run are
ignored.

The loop takes any async stream of watchfiles-style change sets, so tests can
drive it with real file changes (``watchfiles.awatch`` on a temp dir).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from gxo.testing.discovery import TestFile, discover, display_path, is_test_file

__all__ = ["Watcher", "find_references", "is_editor_temp"]

MAX_SCAN_BYTES = 2 * 1024 * 1024  # larger files are not scanned for references
MAX_PATH_CHARS = 1024
_FOLLOW_SUFFIXES = (".yaml", ".yml")
_RUN_WINDOW_SLACK = 0.05  # seconds around a run in which writes count as the run's own
_KEPT_WINDOWS = 8

_cache: dict[Path, tuple[int, frozenset[Path]]] = {}

# Files editors and tools write while saving, never worth a re-run (nor a mention):
# vim's write probe 4913 (and its numbered successors) and swap files, `sed -i`'s
# sedXXXXXX, backups (~, .bak, .orig), emacs lock and autosave files, GNOME's
# .goutputstream-*, JetBrains' safe-write copies, kate's swap, `*.tmp`.
_EDITOR_TEMP = re.compile(
    r"""(
        \d+                        # vim: 4913, 4914, ... (probes a directory is writable)
      | sed[A-Za-z0-9]{6}          # sed -i
      | .*~ | .*\.(bak|orig|tmp|swp|swo|swx|sw[a-n]|kate-swp)
      | \.\#.* | \#.*\#            # emacs lock / autosave
      | \.goutputstream-.*
      | .*___jb_(tmp|old)___
    )""",
    re.VERBOSE,
)


def is_editor_temp(path: Path) -> bool:
    """A file an editor or ``sed -i`` writes while saving (see ``_EDITOR_TEMP``)."""
    return _EDITOR_TEMP.fullmatch(path.name) is not None


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _candidates(text: str) -> Iterable[str]:
    if len(text) > MAX_PATH_CHARS * 8:
        return
    pieces = [text, *text.split()]
    for piece in pieces:
        piece = piece.strip().strip("'\",;()[]")
        if "}}" in piece:  # "{{ gxo_test.dir }}/data.csv" -> "data.csv"
            piece = piece.rsplit("}}", 1)[1].lstrip("/")
        if (
            piece
            and len(piece) <= MAX_PATH_CHARS
            and "{{" not in piece
            and "\n" not in piece
            and "\0" not in piece
        ):
            yield piece


def _direct_references(path: Path) -> frozenset[Path]:
    """Existing files and directories a YAML file's strings name (cached by mtime)."""
    from gxo.config.loader import parse_yaml
    from gxo.errors import GxoError

    try:
        stat = path.stat()
    except OSError:
        return frozenset()
    cached = _cache.get(path)
    if cached is not None and cached[0] == stat.st_mtime_ns:
        return cached[1]
    refs: set[Path] = set()
    if stat.st_size <= MAX_SCAN_BYTES:
        try:
            data, _ = parse_yaml(path.read_text(encoding="utf-8"), str(path))
        except (GxoError, OSError, UnicodeDecodeError):
            data = None  # a broken file references nothing we can know of
        base = path.parent
        own_dirs = {base, *base.parents}
        for text in _strings(data):
            for piece in _candidates(text):
                try:
                    candidate = Path(piece).expanduser()
                    candidate = (
                        candidate if candidate.is_absolute() else base / candidate
                    ).resolve()
                    exists = candidate.exists()
                except (OSError, RuntimeError, ValueError):
                    continue
                if exists and candidate != path and candidate not in own_dirs:
                    refs.add(candidate)
    result = frozenset(refs)
    _cache[path] = (stat.st_mtime_ns, result)
    return result


def find_references(path: Path) -> frozenset[Path]:
    """Everything ``path`` references, following referenced YAML files transitively."""
    seen: set[Path] = {path}
    found: set[Path] = set()
    todo = [path]
    while todo:
        for ref in _direct_references(todo.pop()):
            if ref in found:
                continue
            found.add(ref)
            if ref.suffix in _FOLLOW_SUFFIXES and ref.is_file() and ref not in seen:
                seen.add(ref)
                todo.append(ref)
    return frozenset(found)


def _affected_by(test: TestFile, changed: set[Path]) -> bool:
    if test.path in changed:
        return True
    refs = find_references(test.path)
    if refs & changed:
        return True
    ref_dirs = [r for r in refs if r.is_dir()]
    return any(d in c.parents for c in changed for d in ref_dirs)


class Watcher:
    """Turns change sets into re-runs of the affected test files.

    ``run(tests)`` runs and reports tests; ``write`` prints. ``tty`` clears the
    screen before each re-run.
    """

    def __init__(
        self,
        paths: list[Path],
        run: Callable[[list[TestFile]], Awaitable[Any]],
        write: Callable[[str], None],
        *,
        tty: bool = False,
    ) -> None:
        self.paths = paths
        self._run = run
        self.write = write
        self.tty = tty
        self.windows: list[tuple[float, float]] = []

    def select(self, changed: set[Path]) -> list[TestFile]:
        """The test files (re-discovered, so new ones count) that ``changed`` affects."""
        try:
            tests = discover([p for p in self.paths if p.exists()])
        except Exception:  # a path vanished between exists() and the walk
            return []
        return [t for t in tests if _affected_by(t, changed)]

    async def run(self, tests: list[TestFile]) -> None:
        """Run ``tests``, remembering when, so the run's own writes are not changes."""
        start = time.time()
        try:
            await self._run(tests)
        finally:
            self.windows.append((start - _RUN_WINDOW_SLACK, time.time() + _RUN_WINDOW_SLACK))
            del self.windows[:-_KEPT_WINDOWS]

    def relevant(self, raw: Iterable[tuple[Any, str]]) -> set[Path]:
        """Changed paths, minus editors' temporary files and non-test files written
        during one of our own runs."""
        out: set[Path] = set()
        for _, name in raw:
            path = Path(name).resolve()
            if is_editor_temp(path):
                continue
            if not is_test_file(path):
                try:
                    mtime = path.stat().st_mtime
                except OSError:
                    mtime = None
                if mtime is not None and any(lo <= mtime <= hi for lo, hi in self.windows):
                    continue
            out.add(path)
        return out

    def watching_line(self) -> str:
        shown = ", ".join(display_path(p.resolve()) or "." for p in self.paths)
        return f"watching {shown} for changes (Ctrl-C to exit)\n"

    async def loop(self, changes: AsyncIterator[set[tuple[Any, str]]]) -> None:
        """Handle each change set until ``changes`` ends."""
        self.write(self.watching_line())
        async for raw in changes:
            changed = self.relevant(raw)
            if not changed:
                continue
            tests = self.select(changed)
            stamp = datetime.now().strftime("%H:%M:%S")
            names = sorted(display_path(p) for p in changed)
            shown = ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")
            if not tests:
                # Silent: a note here would itself be a change when output is
                # redirected into a watched directory, and loop forever.
                continue
            header = "\x1b[2J\x1b[H" if self.tty else "\n"
            plural = "s" if len(tests) != 1 else ""
            self.write(
                f"{header}[{stamp}] changed: {shown} — re-running {len(tests)} test file{plural}\n"
            )
            await self.run(tests)
            self.write(self.watching_line())
