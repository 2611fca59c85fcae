"""Finding test files (``*.test.gxo.yaml``) and selecting them with ``--run``.

Like pytest: directories are searched recursively in sorted order, skipping
hidden directories, virtualenvs and caches; a file named explicitly on the
command line is run whatever its name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from gxo.errors import UsageError

__all__ = [
    "PATTERN",
    "TEST_VAR",
    "TestFile",
    "compile_selector",
    "discover",
    "display_path",
    "is_test_file",
    "selected",
]

PATTERN = "*.test.gxo.yaml"
SUFFIX = ".test.gxo.yaml"
# The variable a test file gets (file, dir, tmp_dir, python): a test file is valid with it.
TEST_VAR = "gxo_test"
_SKIP_DIRS = frozenset({"node_modules", "__pycache__", "venv", "site-packages", "build", "dist"})


@dataclass(frozen=True)
class TestFile:
    """A test file: its resolved path and how output shows it."""

    path: Path  # absolute
    display: str  # relative to the cwd when below it, else absolute

    __test__ = False  # not a pytest class, despite its name


def display_path(path: Path) -> str:
    """``path`` relative to the current directory when it is below it (posix separators)."""
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def is_test_file(path: Path) -> bool:
    return path.name.endswith(SUFFIX)


def _skip_dir(directory: Path) -> bool:
    name = directory.name
    return name.startswith(".") or name in _SKIP_DIRS or (directory / "pyvenv.cfg").exists()


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    for current, dirs, files in os.walk(root):
        here = Path(current)
        dirs[:] = [d for d in dirs if not _skip_dir(here / d)]
        found.extend(here / f for f in files if f.endswith(SUFFIX))
    return sorted(found, key=lambda p: p.parts)


def discover(paths: list[Path]) -> list[TestFile]:
    """Test files under each of ``paths`` (in the order given, each sorted), each once.

    A missing path is a usage error.
    """
    seen: set[Path] = set()
    out: list[TestFile] = []
    for given in paths:
        if not given.exists():
            raise UsageError(f"no such file or directory: {given}")
        candidates = [given] if given.is_file() else _walk(given)
        for candidate in candidates:
            resolved = candidate.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            out.append(TestFile(resolved, display_path(resolved)))
    return out


def compile_selector(regex: str | None) -> re.Pattern[str] | None:
    """The ``--run`` pattern; a bad one is a usage error naming the problem."""
    if regex is None:
        return None
    try:
        return re.compile(regex)
    except re.error as exc:
        raise UsageError(f"--run: invalid regular expression {regex!r}: {exc}") from None


def selected(selector: re.Pattern[str] | None, test: TestFile, playbook_name: str | None) -> bool:
    """``--run`` matches (re.search) the file's path, or its playbook name."""
    if selector is None:
        return True
    if selector.search(test.display) or selector.search(test.path.as_posix()):
        return True
    return playbook_name is not None and selector.search(playbook_name) is not None
