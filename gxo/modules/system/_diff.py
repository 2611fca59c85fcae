"""Unified diffs of file contents and states, for ``--diff`` (docs/check-mode.md).

The leading underscore keeps the registry from importing this file as a module.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["DIFF_LIMIT", "ContentProbe", "content_diff", "file_digest", "lines_diff"]

DIFF_LIMIT = 256 * 1024  # bytes of a file a diff is shown for (beyond: sizes only)
_CHUNK = 1024 * 1024


def file_digest(
    path: Path, opened: Callable[[int], None] | None = None
) -> tuple[str, int, bytes | None]:
    """Blocking: ``(sha256, size, content or None when over DIFF_LIMIT)`` of a regular
    file; ``opened(fd)`` checks the file really opened (a confined run)."""
    import hashlib

    digest = hashlib.sha256()
    kept = bytearray()
    size = 0
    with path.open("rb") as fh:
        if opened is not None:
            opened(fh.fileno())
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if size <= DIFF_LIMIT:
                kept += chunk
    return digest.hexdigest(), size, bytes(kept) if size <= DIFF_LIMIT else None


class ContentProbe:
    """What a write would put in a file, without writing it: a digest, a size, and
    the bytes themselves while they fit in DIFF_LIMIT (memory stays bounded)."""

    def __init__(self) -> None:
        import hashlib

        self._digest = hashlib.sha256()
        self._kept: bytearray | None = bytearray()
        self.size = 0
        self.written = 0

    def _add(self, data: bytes) -> None:
        self._digest.update(data)
        self.size += len(data)
        if self._kept is not None:
            if self.size <= DIFF_LIMIT:
                self._kept += data
            else:
                self._kept = None

    def write(self, data: bytes) -> None:
        self._add(data)
        self.written += len(data)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    @property
    def content(self) -> bytes | None:
        return bytes(self._kept) if self._kept is not None else None


def _text(data: bytes, encoding: str) -> str | None:
    if b"\0" in data:
        return None
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def lines_diff(before: Iterable[str], after: Iterable[str], fromfile: str, tofile: str) -> str:
    """A unified diff of two sequences of lines (``keepends``), ``\\ No newline`` marked."""
    import difflib

    out = []
    for line in difflib.unified_diff(list(before), list(after), fromfile, tofile):
        if line.endswith("\n"):
            out.append(line)
        else:
            out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out)


def content_diff(
    path: Path | str,
    before: bytes | None,
    after: bytes | None,
    *,
    encoding: str = "utf-8",
    existed: bool = True,
    size_before: int = 0,
    size_after: int = 0,
    mode_before: str | None = None,
    mode_after: str | None = None,
) -> str:
    """The diff of ``path`` from ``before`` to ``after`` (None: too large to show).

    Modes are shown git-style (``old mode``/``new mode``); a binary or large file
    is summarised in one line. Empty when nothing differs.
    """
    name = os.fspath(path)
    head = ""
    if existed and mode_before and mode_after and mode_before != mode_after:
        head = f"old mode {mode_before}\nnew mode {mode_after}\n"
    elif not existed and mode_after:
        head = f"new file mode {mode_after}\n"
    if existed and before is not None and after is not None and before == after:
        return f"--- {name}\n+++ {name}\n{head}" if head else ""
    if before is None or after is None:
        return f"{head}{name}: content differs ({size_before} -> {size_after} bytes; too large to show)\n"
    old_text = _text(before, encoding) if existed else ""
    new_text = _text(after, encoding)
    if old_text is None or new_text is None:
        return f"{head}Binary file {name} differs ({len(before)} -> {len(after)} bytes)\n"
    body = lines_diff(
        old_text.splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        name if existed else "/dev/null",
        name,
    )
    if not body:  # a new, empty file
        return f"--- /dev/null\n+++ {name}\n{head}"
    return head + body
