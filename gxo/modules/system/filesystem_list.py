"""``filesystem:list``: stream the entries of a directory."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from gxo.engine.confine import PathResolver
from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, register
from gxo.modules.system._fsutil import describe_os_error, non_directory_parent, stat_record

SUMMARY_ENTRIES = 1000  # entries kept in the summary; the stream carries all of them


@register("filesystem:list", layer="system")
class FilesystemList(Module):
    """List a directory, streaming one record per entry.

    Each record has the fields of the ``filesystem:stat`` summary (``path``,
    ``name``, ``type``, ``size``, ``mode``, ``owner``, ``mtime``, ...) plus
    ``relative_path`` (from the listed directory, with ``/``). ``pattern`` is a
    glob (``*.log``, ``report-??.csv``) matched against the entry name, or
    against ``relative_path`` when it contains a ``/``. With ``recursive: true``
    subdirectories are listed too (after their parent's entries, in name
    order), down to ``max_depth``; symlinked directories are not entered
    unless ``follow_symlinks: true``. Hidden entries (names starting with
    ``.``) are skipped unless ``include_hidden: true``. An unreadable
    subdirectory is logged, counted as ``unreadable_dirs`` and skipped.

    Records are emitted directory by directory as they are read, so a large
    tree flows into the consumers with back-pressure. The summary holds the
    count and the first 1000 entries.

    Example:
        - name: logs
          process:
            module: filesystem:list
            params: { path: /var/log, pattern: "*.log", recursive: true, type: file }
        - name: big_logs
          process: { module: data:filter, params: { condition: "record.size > 1048576" } }
          stream_inputs: [logs]
    """

    class Params(ModuleParams):
        path: str = Field(
            ".", min_length=1, description="Directory to list (relative to the workspace)"
        )
        pattern: str | None = Field(
            None,
            min_length=1,
            description="Glob over the entry name (or relative_path when it contains '/')",
        )
        recursive: bool = Field(False, description="Also list the contents of subdirectories")
        max_depth: int | None = Field(
            None,
            ge=1,
            description="recursive: deepest level listed (1 = only the directory itself)",
        )
        type: Literal["any", "file", "directory", "symlink"] = Field(
            "any", description="Only entries of this type"
        )
        include_hidden: bool = Field(
            False, description="Include entries whose name starts with '.'"
        )
        follow_symlinks: bool = Field(
            False, description="Describe symlink targets and enter symlinked directories"
        )

    produces = True
    summary = {
        "path": "absolute path of the listed directory",
        "count": "entries emitted",
        "entries": f"the first {SUMMARY_ENTRIES} entries (same fields as the records)",
        "truncated": f"true when there were more than {SUMMARY_ENTRIES} entries",
    }

    path_params = ("path",)

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        root = ctx.resolve_path(params.path)
        try:
            is_dir = await ctx.to_thread(os.path.isdir, root)
            if not is_dir:
                exists = await ctx.to_thread(os.path.lexists, root)
                blocked = None if exists else await ctx.to_thread(non_directory_parent, root)
                reason = "not a directory" if exists else blocked or "does not exist"
                raise ctx.fail(f"cannot list {root}: {reason}")
            first = await ctx.to_thread(_scan, root, root, params, ctx.run.paths)
        except OSError as exc:
            raise ctx.fail(describe_os_error(exc, "list", root)) from None
        entries: list[dict[str, Any]] = []
        count = 0
        # Depth-first over directories; each directory is read in one thread call.
        stack: list[tuple[list[_Entry], int]] = [(first, 1)]
        while stack:
            listing, depth = stack.pop()
            subdirs = []
            for record, matched, descend in listing:
                if matched:
                    count += 1
                    if len(entries) < SUMMARY_ENTRIES:
                        entries.append(dict(record))  # consumers may change the emitted one
                    await ctx.emit(record)
                if (
                    descend
                    and params.recursive
                    and (params.max_depth is None or depth < params.max_depth)
                ):
                    subdirs.append(record["path"])
            for sub in reversed(subdirs):
                try:
                    stack.append(
                        (
                            await ctx.to_thread(_scan, Path(sub), root, params, ctx.run.paths),
                            depth + 1,
                        )
                    )
                except OSError as exc:
                    ctx.count("unreadable_dirs")
                    ctx.log(describe_os_error(exc, "list", sub), level="warning")
        return {
            "path": str(root),
            "count": count,
            "entries": entries,
            "truncated": count > len(entries),
        }


_Entry = tuple[dict[str, Any], bool, bool]  # record, matches the filters, is a directory to enter


def _scan(
    directory: Path, root: Path, params: FilesystemList.Params, paths: PathResolver
) -> list[_Entry]:
    """The entries of one directory, in name order.

    A confined run does not enter a symlinked directory that leads outside its roots.
    """
    out = []
    with os.scandir(directory) as it:
        items = sorted(it, key=lambda e: e.name)
    for entry in items:
        if not params.include_hidden and entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            try:
                record = stat_record(
                    path,
                    follow_symlinks=params.follow_symlinks,
                    st=entry.stat(follow_symlinks=params.follow_symlinks),
                )
            except FileNotFoundError:
                if not params.follow_symlinks:
                    raise
                record = stat_record(
                    path, follow_symlinks=False
                )  # a dangling link: describe the link
        except FileNotFoundError:  # removed while listing
            continue
        relative = path.relative_to(root).as_posix()
        record["relative_path"] = relative
        matched = params.type in ("any", record["type"]) or (
            params.type == "symlink" and record["is_symlink"]
        )
        if matched and params.pattern is not None:
            subject = relative if "/" in params.pattern else entry.name
            matched = fnmatch.fnmatchcase(subject, params.pattern)
        descend = record["type"] == "directory"
        if descend and record["is_symlink"] and not paths.contains(path):
            descend = False
        out.append((record, matched, descend))
    return out
