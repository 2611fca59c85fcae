"""Atomic file writes shared by the integration modules (blocking: call them in a thread).

The leading underscore keeps the registry from importing this file as a module.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_target", "same_content", "write_atomic"]


@contextlib.contextmanager
def atomic_target(path: Path, *, mode: int | None = None) -> Iterator[tuple[BinaryIO, str]]:
    """A temporary file beside ``path``, renamed over it when the block ends without error.

    On an error the temporary file is removed and ``path`` is left as it was. Yields
    ``(file object, temporary path)``. Parent directories are created.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".gxo-tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh, temp
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(temp, mode)
        elif path.exists():
            os.chmod(temp, path.stat().st_mode & 0o7777)
        else:
            os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def same_content(path: Path, data: bytes, mode: int | None = None) -> bool:
    """Whether ``path`` is a regular file holding exactly ``data`` (and ``mode``, if given)."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    if not path.is_file() or st.st_size != len(data):
        return False
    if mode is not None and (st.st_mode & 0o7777) != mode:
        return False
    return path.read_bytes() == data


def write_atomic(path: Path, data: bytes, *, mode: int | None = None) -> bool:
    """Write ``data`` to ``path`` atomically; False (nothing written) when already identical."""
    if same_content(path, data, mode):
        return False
    with atomic_target(path, mode=mode) as (fh, _temp):
        fh.write(data)
    return True
