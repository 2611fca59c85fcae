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
from gxo.modules.base import CheckMode, Module, ModuleParams, register
from gxo.modules.system._diff import lines_diff
from gxo.modules.system._fsutil import (
    OctalMode,
    describe_os_error,
    format_mode,
    group_name,
    non_directory_parent,
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

    ``gxo run --check`` changes nothing: the summary lists the changes that
    would be made; ``--diff`` shows the path's state before and after.

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
    check_mode = CheckMode.predict

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        return await self._converge(ctx, params, dry=False)

    async def check(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        """The changes ``perform`` would make (``changes``), making none."""
        return await self._converge(ctx, params, dry=True)

    async def _converge(self, ctx: ModuleContext, params: Params, *, dry: bool) -> dict[str, Any]:
        path = ctx.resolve_path(params.path)
        try:
            uid = resolve_uid(params.owner) if params.owner is not None else -1
            gid = resolve_gid(params.group) if params.group is not None else -1
        except ValueError as exc:
            raise ctx.fail(str(exc)) from None
        changes: list[str] = []
        try:
            before = await ctx.to_thread(_describe, path) if ctx.diff else None
            await ctx.to_thread(_converge, path, params, uid, gid, changes, dry)
            if dry:
                result = await ctx.to_thread(_predict, path, params, uid, gid)
            else:
                result = await ctx.to_thread(_describe, path)
        except _Refused as exc:
            raise ctx.fail(str(exc), summary=_partial(path, params, changes)) from None
        except OSError as exc:
            message = describe_os_error(exc, "manage", exc.filename or path)
            raise ctx.fail(message, summary=_partial(path, params, changes)) from None
        for change in changes:
            ctx.log(f"{path}: {'would be ' if dry else ''}{change}")
        if before is not None and changes:
            ctx.add_diff(_state_diff(path, before, result, changes))
        return {"path": str(path), "changed": bool(changes), "changes": changes, **result}


def _state_text(path: Path, described: dict[str, Any]) -> list[str]:
    lines = [f"path: {path}\n", f"state: {described['state']}\n"]
    lines += [
        f"{key}: {described[key]}\n" for key in ("mode", "owner", "group") if key in described
    ]
    return lines


def _state_diff(
    path: Path, before: dict[str, Any], after: dict[str, Any], changes: list[str]
) -> str:
    """The path's state before and after as a unified diff (``state``, ``mode``, ...)."""
    diff = lines_diff(
        _state_text(path, before), _state_text(path, after), f"{path} (before)", f"{path} (after)"
    )
    inside = [c for c in changes if c.startswith(("mode/owner/group changed", "touched"))]
    return diff + "".join(f"# {c}\n" for c in inside)


def _predict(path: Path, params: FilesystemManage.Params, uid: int, gid: int) -> dict[str, Any]:
    """Blocking: what :func:`_describe` would say after the changes ``_converge`` listed."""
    if params.state == "absent":
        return {"state": "absent", "exists": False}
    current = _describe(path)
    if current["exists"]:
        result = current
    else:
        default = DEFAULT_DIR_MODE if params.state == "directory" else DEFAULT_FILE_MODE
        result = {
            "state": "directory" if params.state == "directory" else "present",
            "exists": True,
            "mode": format_mode(default),
            "owner": owner_name(os.geteuid()),
            "group": group_name(os.getegid()),
        }
    if params.mode:
        result["mode"] = format_mode(int(params.mode, 8))
    if uid != -1:
        result["owner"] = owner_name(uid)
    if gid != -1:
        result["group"] = group_name(gid)
    return result


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
    path: Path,
    params: FilesystemManage.Params,
    uid: int,
    gid: int,
    changes: list[str],
    dry: bool = False,
) -> None:
    """Blocking: bring ``path`` to the desired state, appending each change made
    (``dry``: appending each change that would be made, making none)."""
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
                if not dry:
                    shutil.rmtree(path)
            elif dry:
                if any(path.iterdir()):
                    raise _Refused(
                        f"{path} is a directory that is not empty: set recursive: true to delete it with its contents"
                    )
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
            if not dry:
                path.unlink()
            changes.append("removed")
        return

    created = False
    if state == "directory":
        if st is not None and not is_dir:
            raise _Refused(f"{path} exists and is not a directory: remove it first (state: absent)")
        if st is None:
            if dry:
                blocked = non_directory_parent(path)
                if blocked is not None:
                    raise _Refused(f"cannot manage {path}: {blocked}")  # as mkdir would
            else:
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
            if dry:
                if not os.access(path.parent, os.W_OK | os.X_OK):
                    raise PermissionError(errno.EACCES, "permission denied", str(path))
            else:
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
            if not dry:
                os.utime(path)
            changes.append("touched")

    if dry and created:
        # Nothing there to inspect: a new path is created with the wanted mode, owned
        # by this process; only a different owner or group would be one more change.
        if uid not in (-1, os.geteuid()):
            changes.append(f"owner {owner_name(os.geteuid())} -> {owner_name(uid)}")
        if gid not in (-1, os.getegid()):
            changes.append(f"group {group_name(os.getegid())} -> {group_name(gid)}")
        return
    _enforce(path, params, uid, gid, changes, announce_mode=not created, dry=dry)
    if params.recursive and state == "directory":
        _enforce_inside(path, params, uid, gid, changes, dry)


def _enforce(
    path: Path,
    params: FilesystemManage.Params,
    uid: int,
    gid: int,
    changes: list[str],
    *,
    announce_mode: bool = True,
    dry: bool = False,
) -> bool:
    """Set mode/owner/group on one path (never following a symlink for ownership); True if
    changed (``dry``: True if it would change; nothing is set)."""
    st = path.stat() if not path.is_symlink() else path.lstat()
    changed = False
    if params.mode and not stat.S_ISLNK(st.st_mode):
        wanted = int(params.mode, 8)
        if stat.S_IMODE(st.st_mode) != wanted:
            if not dry:
                os.chmod(path, wanted)
            if announce_mode:
                changes.append(f"mode {format_mode(st.st_mode)} -> {format_mode(wanted)}")
            changed = True
    new_uid = uid if uid != -1 and st.st_uid != uid else -1
    new_gid = gid if gid != -1 and st.st_gid != gid else -1
    if new_uid != -1 or new_gid != -1:
        try:
            if not dry:
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
    root: Path,
    params: FilesystemManage.Params,
    uid: int,
    gid: int,
    changes: list[str],
    dry: bool = False,
) -> None:
    quiet: list[str] = []  # per-path messages would flood the summary: count instead
    n = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            if _enforce(Path(dirpath) / name, params, uid, gid, quiet, dry=dry):
                n += 1
    if n:
        changes.append(f"mode/owner/group changed on {n} paths inside")
