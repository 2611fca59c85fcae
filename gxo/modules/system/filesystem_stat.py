"""``filesystem:stat``: metadata of a file or directory."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, register
from gxo.modules.system._fsutil import describe_os_error, stat_record


@register("filesystem:stat", layer="system")
class FilesystemStat(Module):
    """Inspect a path: type, size, permissions, owner and modification time.

    Like the ``stat`` command, without reading the content. A missing path
    fails the workload unless ``must_exist: false``, which returns
    ``{exists: false, path: ...}`` instead, for use in a later ``when``.
    Symlinks are followed unless ``follow_symlinks: false``; ``is_symlink`` and
    ``link_target`` describe the link either way. The records of
    ``filesystem:list`` have the same fields.

    Example:
        - name: artifact
          process:
            module: filesystem:stat
            params: { path: dist/app.tar.gz, must_exist: false }
          register: artifact
        - name: build
          when: "not artifact.exists"
          process: { module: exec, params: { command: make, args: [dist] } }
    """

    class Params(ModuleParams):
        path: str = Field(
            ..., min_length=1, description="Path to inspect (relative to the workspace)"
        )
        follow_symlinks: bool = Field(
            True, description="Describe a symlink's target rather than the link itself"
        )
        must_exist: bool = Field(
            True, description="Fail when the path does not exist (false: report exists: false)"
        )

    summary = {
        "path": "absolute path",
        "name": "last path component",
        "exists": "whether the path exists",
        "type": "file | directory | symlink | other",
        "is_dir": "true for a directory",
        "is_file": "true for a regular file",
        "is_symlink": "true when the path is a symbolic link",
        "size": "size in bytes",
        "mode": "permissions as an octal string, e.g. 0644",
        "uid": "owner's user id",
        "gid": "group id",
        "owner": "owner's user name (the uid when it has no name)",
        "group": "group name (the gid when it has no name)",
        "mtime": "modification time, seconds since the epoch",
        "modified_time": "modification time, RFC 3339 in UTC",
        "link_target": "where a symlink points (null otherwise)",
    }

    path_params = ("path",)

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        path = ctx.resolve_path(params.path)
        try:
            return await ctx.to_thread(stat_record, path, follow_symlinks=params.follow_symlinks)
        except FileNotFoundError as exc:
            if not params.must_exist:
                return {"path": str(path), "name": path.name, "exists": False}
            raise ctx.fail(describe_os_error(exc, "stat", path)) from None
        except OSError as exc:
            raise ctx.fail(describe_os_error(exc, "stat", path)) from None
