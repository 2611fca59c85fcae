"""``filesystem:manage``: make a path match a desired state, idempotently."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, ModuleParams, register
from gxo.modules.system._fsutil import (
    OctalMode,
    describe_os_error,
    format_mode,
    group_name,
    owner_name,
    resolve_gid,
    resolve_uid,
)

DEFAULT_FILE_MODE = 0o644
DEFAULT_DIR_MODE = 0o755


@register("filesystem:manage", layer="system")
class FilesystemManage(Module):
    """Ensure a file or directory exists (or not) with the given mode and owner.

    ``state`` is the desired state: ``present`` (a file exists; created empty if
    missing, content untouched otherwise), ``directory`` (a directory exists,
    with missing parents), ``absent`` (nothing at the path; a non-empty
    directory needs ``recursive: true``) or ``touch`` (like ``present``, and the
    access and modification times are set to now). ``mode`` (a quoted octal
    string), ``owner`` and ``group`` (names or numeric ids) are then enforced;
    with ``state: directory`` and ``recursive: true`` they are also enforced on
    everything inside (symlinks are never followed).

    Only what differs is changed, and the summary says what: ``changed`` is
    false when the path already was in the desired state, so a second run of
    the same workload reports ``changed: false`` (``touch`` always changes the
    times). New files get mode 0644 and new directories 0755 unless ``mode``
    says otherwise. Changing the owner needs privileges.

    Example:
        - name: app_dirs
          loop: [data, logs]
          process:
            module: filesystem:manage
            params: { path: "/srv/app/{{ item }}", state: directory, mode: "0750", owner: app, group: app }
        - name: no_stale_lock
          process:
            module: filesystem:manage
            params: { path: /srv/app/app.lock, state: absent }
    """

    class Params(ModuleParams):
        path: str = Field(
            ..., min_length=1, description="Path to manage (relative to the workspace)"
        )
        state: Literal["present", "directory", "absent", "touch"] = Field(
            ..., description="present (file) | directory | absent | touch (file, times set to now)"
        )
        mode: OctalMode | None = Field(
            None, description='Permissions as a quoted octal string, e.g. "0750"'
        )
        owner: str | int | None = Field(None, description="User name or uid that must own the path")
        group: str | int | None = Field(
            None, description="Group name or gid that must own the path"
        )
        recursive: bool = Field(
            False,
            description="absent: delete a directory with its contents; directory: apply mode/owner/group inside too",
        )

        @model_validator(mode="after")
        def _consistent(self) -> FilesystemManage.Params:
            if self.state == "absent" and (
                self.mode or self.owner is not None or self.group is not None
            ):
                raise ValueError("mode, owner and group cannot be enforced with state: absent")
            if self.recursive and self.state not in ("absent", "directory"):
                raise ValueError(
                    f"recursive applies to state: directory or absent, not {self.state}"
                )
            return self

    summary = {
        "path": "absolute path of the managed item",
        "state": "the state now reached",
        "changed": "true when anything was changed",
        "changes": "what was changed, e.g. ['created directory', 'mode 0755 -> 0750']",
        "exists": "whether the path exists now",
        "mode": "permissions now (when it exists)",
        "owner": "owner's user name now (when it exists)",
        "group": "group name now (when it exists)",
    }

    path_params = ("path",)

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        path = ctx.resolve_path(params.path)
        try:
            uid = resolve_uid(params.owner) if params.owner is not None else -1
            gid = resolve_gid(params.group) if params.group is not None else -1
        except ValueError as exc:
            raise ctx.fail(str(exc)) from None
        changes: list[str] = []
        try:
            await ctx.to_thread(_converge, path, params, uid, gid, changes)
            result = await ctx.to_thread(_describe, path)
        except _Refused as exc:
            raise ctx.fail(str(exc), summary=_partial(path, params, changes)) from None
        except OSError as exc:
            message = describe_os_error(exc, "manage", exc.filename or path)
            raise ctx.fail(message, summary=_partial(path, params, changes)) from None
        for change in changes:
            ctx.log(f"{path}: {change}")
        return {"path": str(path), "changed": bool(changes), "changes": changes, **result}


class _Refused(Exception):
    """The path is in a state this module will not change (a file where a directory is wanted)."""


def _partial(path: Path, params: FilesystemManage.Params, changes: list[str]) -> dict[str, Any]:
    return {
        "path": str(path),
        "state": params.state,
        "changed": bool(changes),
        "changes": list(changes),
    }


def _describe(path: Path) -> dict[str, Any]:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return {"state": "absent", "exists": False}
    reached = "directory" if stat.S_ISDIR(st.st_mode) else "present"  # touch leaves a present file
    return {
        "state": reached,
        "exists": True,
        "mode": format_mode(st.st_mode),
        "owner": owner_name(st.st_uid),
        "group": group_name(st.st_gid),
    }


def _converge(
    path: Path, params: FilesystemManage.Params, uid: int, gid: int, changes: list[str]
) -> None:
    """Blocking: bring ``path`` to the desired state, appending each change made."""
    state = params.state
    try:
        st: os.stat_result | None = path.lstat()
    except FileNotFoundError:
        st = None
    is_dir = st is not None and (
        stat.S_ISDIR(st.st_mode) or (stat.S_ISLNK(st.st_mode) and path.is_dir())
    )
    if state == "absent":
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            if params.recursive:
                shutil.rmtree(path)
            else:
                try:
                    path.rmdir()
                except OSError as exc:
                    if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                        raise _Refused(
                            f"{path} is a directory that is not empty: set recursive: true to delete it with its contents"
                        ) from None
                    raise
            changes.append("removed directory")
        else:
            path.unlink()
            changes.append("removed")
        return

    created = False
    if state == "directory":
        if st is not None and not is_dir:
            raise _Refused(f"{path} exists and is not a directory: remove it first (state: absent)")
        if st is None:
            path.mkdir(parents=True, mode=DEFAULT_DIR_MODE)
            os.chmod(
                path, int(params.mode, 8) if params.mode else DEFAULT_DIR_MODE
            )  # mkdir's mode is masked by umask
            changes.append("created directory")
            created = True
    else:  # present / touch
        if is_dir:
            raise _Refused(
                f"{path} is a directory: state {state} manages files (use state: directory)"
            )
        if st is None:
            if not path.parent.is_dir():
                raise _Refused(
                    f"cannot create {path}: directory {path.parent} does not exist (create it with state: directory)"
                )
            mode = int(params.mode, 8) if params.mode else DEFAULT_FILE_MODE
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            except FileNotFoundError:
                # The directory exists (checked above) but refuses new files: /proc, /sys.
                raise _Refused(
                    f"cannot create {path}: {path.parent} does not allow creating files"
                ) from None
            os.close(fd)
            os.chmod(path, mode)
            changes.append("created file")
            created = True
        elif state == "touch":
            os.utime(path)
            changes.append("touched")

    _enforce(path, params, uid, gid, changes, announce_mode=not created)
    if params.recursive and state == "directory":
        _enforce_inside(path, params, uid, gid, changes)


def _enforce(
    path: Path,
    params: FilesystemManage.Params,
    uid: int,
    gid: int,
    changes: list[str],
    *,
    announce_mode: bool = True,
) -> bool:
    """Set mode/owner/group on one path (never following a symlink for ownership); True if changed."""
    st = path.stat() if not path.is_symlink() else path.lstat()
    changed = False
    if params.mode and not stat.S_ISLNK(st.st_mode):
        wanted = int(params.mode, 8)
        if stat.S_IMODE(st.st_mode) != wanted:
            os.chmod(path, wanted)
            if announce_mode:
                changes.append(f"mode {format_mode(st.st_mode)} -> {format_mode(wanted)}")
            changed = True
    new_uid = uid if uid != -1 and st.st_uid != uid else -1
    new_gid = gid if gid != -1 and st.st_gid != gid else -1
    if new_uid != -1 or new_gid != -1:
        try:
            os.chown(path, new_uid, new_gid, follow_symlinks=False)
        except PermissionError:
            raise _Refused(
                f"cannot change {_owner_text(params)} of {path}: operation not permitted (needs privileges)"
            ) from None
        if new_uid != -1:
            changes.append(f"owner {owner_name(st.st_uid)} -> {owner_name(uid)}")
        if new_gid != -1:
            changes.append(f"group {group_name(st.st_gid)} -> {group_name(gid)}")
        changed = True
    return changed


def _owner_text(params: FilesystemManage.Params) -> str:
    parts = [
        f"owner {params.owner}" if params.owner is not None else "",
        f"group {params.group}" if params.group is not None else "",
    ]
    return " and ".join(p for p in parts if p)


def _enforce_inside(
    root: Path, params: FilesystemManage.Params, uid: int, gid: int, changes: list[str]
) -> None:
    quiet: list[str] = []  # per-path messages would flood the summary: count instead
    n = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            if _enforce(Path(dirpath) / name, params, uid, gid, quiet):
                n += 1
    if n:
        changes.append(f"mode/owner/group changed on {n} paths inside")
