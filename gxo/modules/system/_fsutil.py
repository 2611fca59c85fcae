"""Helpers shared by the ``filesystem:*`` modules (blocking: call them in a thread).

The leading underscore keeps the registry from importing this file as a module.
"""

from __future__ import annotations

import datetime as dt
import errno
import functools
import os
import re
import stat
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

__all__ = [
    "OctalMode",
    "describe_os_error",
    "format_mode",
    "group_name",
    "non_directory_parent",
    "owner_name",
    "resolve_gid",
    "resolve_uid",
    "stat_record",
]

_MODE = re.compile(r"^(?:0o|0)?([0-7]{3,4})$")


def _check_mode(value: Any) -> str:
    # YAML 1.2 reads an unquoted 0644 as the decimal 644 and 0o644 as 420: an
    # integer cannot say which one the author meant, so only strings are taken.
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(
            f'mode must be a quoted octal string such as "0644", got {value!r} (unquoted YAML numbers are ambiguous)'
        )
    m = _MODE.match(value.strip())
    if not m:
        raise ValueError(
            f'mode must be an octal permission string such as "0644" or "0755", got {value!r}'
        )
    return "0" + m.group(1) if len(m.group(1)) == 3 else m.group(1)


OctalMode = Annotated[
    str,
    BeforeValidator(_check_mode),
    WithJsonSchema({"type": "string", "pattern": r"^(0o|0)?[0-7]{3,4}$"}),
]


def format_mode(st_mode: int) -> str:
    """Permission bits as a 4-digit octal string: ``0644``."""
    return f"{stat.S_IMODE(st_mode):04o}"


@functools.lru_cache(maxsize=256)
def owner_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@functools.lru_cache(maxsize=256)
def group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def resolve_uid(owner: str | int) -> int:
    """A user name or numeric id → uid; ValueError naming an unknown user."""
    import pwd

    if isinstance(owner, int) or owner.isdigit():
        return int(owner)
    try:
        return pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise ValueError(f"unknown user '{owner}'") from None


def resolve_gid(group: str | int) -> int:
    """A group name or numeric id → gid; ValueError naming an unknown group."""
    import grp

    if isinstance(group, int) or group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ValueError(f"unknown group '{group}'") from None


def _kind(st_mode: int) -> str:
    if stat.S_ISLNK(st_mode):
        return "symlink"
    if stat.S_ISDIR(st_mode):
        return "directory"
    if stat.S_ISREG(st_mode):
        return "file"
    return "other"


def stat_record(
    path: Path, *, follow_symlinks: bool = True, st: os.stat_result | None = None
) -> dict[str, Any]:
    """Metadata of ``path`` as a JSON-friendly record (the filesystem:stat summary)."""
    if st is None:
        st = os.stat(path, follow_symlinks=follow_symlinks)
    kind = _kind(st.st_mode)
    is_link = kind == "symlink" or (follow_symlinks and path.is_symlink())
    link_target = os.readlink(path) if is_link else None
    modified = dt.datetime.fromtimestamp(st.st_mtime, tz=dt.UTC)
    return {
        "path": str(path),
        "name": path.name,
        "exists": True,
        "type": kind,
        "is_dir": kind == "directory",
        "is_file": kind == "file",
        "is_symlink": is_link,
        "size": st.st_size,
        "mode": format_mode(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "owner": owner_name(st.st_uid),
        "group": group_name(st.st_gid),
        "mtime": st.st_mtime,
        "modified_time": modified.isoformat().replace("+00:00", "Z"),
        "link_target": link_target,
    }


_REASONS = {
    errno.ENOENT: "does not exist",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EISDIR: "is a directory",
    errno.ENOTDIR: "a parent is not a directory",
    errno.ENOTEMPTY: "directory not empty",
    errno.EEXIST: "already exists",
    errno.ENOSPC: "no space left on device",
    errno.EROFS: "read-only file system",
    errno.ELOOP: "too many levels of symbolic links",
}


def non_directory_parent(path: Path | str) -> str | None:
    """``"/x/a is a file, not a directory"`` when an ancestor of ``path`` is no directory."""
    for parent in reversed(Path(path).parents):
        try:
            st = parent.stat()
        except OSError:
            return None  # missing from here on: "does not exist" is the truth
        if not stat.S_ISDIR(st.st_mode):
            kind = "a file" if stat.S_ISREG(st.st_mode) else "a special file"
            return f"{parent} is {kind}, not a directory"
    return None


def describe_os_error(exc: OSError, action: str, path: Path | str) -> str:
    """``cannot read /x/y: permission denied`` — short, without errno noise.

    ENOENT, ENOTDIR and EEXIST also come from a *parent* that is a file (``mkdir``
    of the parents says "already exists"); the message then names that parent.
    """
    if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EEXIST):
        blocked = non_directory_parent(path)
        if blocked is not None:
            return f"cannot {action} {path}: {blocked}"
    reason = _REASONS.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()
    return f"cannot {action} {path}: {reason}"
