"""``filesystem:write``: write content or the input stream to a file, atomically."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
import filecmp
import functools
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, StreamRole, raw_template, register
from gxo.modules.system._diff import ContentProbe, content_diff, file_digest
from gxo.modules.system._fsutil import (
    OctalMode,
    describe_os_error,
    format_mode,
    non_directory_parent,
)

DEFAULT_MODE = 0o644


@register("filesystem:write", layer="system")
class FilesystemWrite(Module):
    """Write text, or the records of the input stream, to a file atomically.

    Without ``stream_inputs`` it writes ``content`` (a non-string value, such as a
    mapping from a template, is written as indented JSON). With ``stream_inputs``
    it writes every input record as it arrives, in ``format``: ``json_lines``
    (default, one JSON object per line), ``json`` (one array), ``csv`` (header
    from the first record's keys; nested values as JSON) or ``text`` (one line
    per record from ``line_template``, which sees ``record``).

    The data goes to a temporary file next to the target, which is flushed to
    disk and renamed over the target only when complete: readers see the old
    file or the new one, never a partial file, and a failure leaves the target
    untouched. ``append: true`` copies the current file first, so appending is
    atomic too. A symlink is followed and its target is replaced. Parent
    directories are created unless ``create_parents: false``. When the result is
    byte-for-byte what is already there (and the mode matches), nothing is
    replaced and the summary says ``changed: false``.

    ``gxo run --check`` writes nothing: the summary says whether the file would
    change, and ``--diff`` shows how (a unified diff, also of real writes).

    ``mode`` is a quoted octal string (``"0600"``). Without it a new file gets
    0644 and an existing file keeps its mode (and, when allowed, its owner).

    Example:
        - name: save_report
          process:
            module: filesystem:write
            params:
              path: out/report.txt
              content: "checked {{ hosts | length }} hosts"
              mode: "0600"
        - name: save_users
          process:
            module: filesystem:write
            params: { path: out/users.csv, format: csv }
          stream_inputs: [users]
    """

    class Params(ModuleParams):
        path: str = Field(
            ..., min_length=1, description="File to write (relative to the workspace)"
        )
        content: Any = Field(
            None,
            description="What to write; non-strings are written as JSON. Omit it to write the input stream instead",
        )
        binary: bool = Field(False, description="content is base64: decode it and write the bytes")
        encoding: str = Field(
            "utf-8", min_length=1, description="Text encoding of the written file"
        )
        mode: OctalMode | None = Field(
            None, description='Permissions as a quoted octal string, e.g. "0600"'
        )
        append: bool = Field(
            False, description="Add to the end of the file instead of replacing it"
        )
        create_parents: bool = Field(True, description="Create missing parent directories")
        format: Literal["json_lines", "json", "csv", "text"] | None = Field(
            None,
            description="How input records are written: json_lines (default), json, csv, text (with line_template)",
        )
        line_template: str | None = raw_template(
            None, description="format text: template of one output line per record (sees `record`)"
        )

        @model_validator(mode="after")
        def _consistent(self) -> FilesystemWrite.Params:
            if self.line_template is not None and self.format not in (None, "text"):
                raise ValueError(
                    f"line_template is only used with format: text (format is {self.format})"
                )
            if self.format == "text" and self.line_template is None:
                raise ValueError('format: text needs a line_template, e.g. "{{ record.name }}"')
            if self.append and self.format == "json":
                raise ValueError("append cannot extend a JSON array: use format: json_lines")
            if self.binary and self.content is not None and not isinstance(self.content, str):
                raise ValueError("binary: true needs content as a base64 string")
            return self

    consumes = StreamRole.optional
    summary = {
        "path": "absolute path of the written file",
        "bytes_written": "bytes written by this run (appended bytes with append: true)",
        "changed": "false when the file already had exactly this content and mode",
        "records_written": "input records written (stream input only)",
        "mode": "permissions of the file afterwards, e.g. 0644",
    }

    path_params = ("path",)
    check_mode = CheckMode.predict

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        path = ctx.resolve_path(params.path)
        from_stream = _check_params(ctx, params)
        mode = int(params.mode, 8) if params.mode else None
        before = await _Before.read(ctx, params, path) if ctx.diff else None
        try:
            target = await ctx.to_thread(
                _AtomicFile.open,
                path,
                append=params.append,
                parents=params.create_parents,
                opened=functools.partial(
                    ctx.run.paths.check_opened, text=params.path, workload=ctx.workload
                ),
            )
        except _Refused as exc:
            raise ctx.fail(str(exc)) from None
        except OSError as exc:
            raise ctx.fail(describe_os_error(exc, "write", path)) from None
        try:
            records = None
            if from_stream:
                records = await _write_records(ctx, params, target)
            else:
                await ctx.to_thread(target.write, _content_bytes(ctx, params))
            changed, final_mode = await ctx.to_thread(target.commit, mode)
        except OSError as exc:
            await _abort(ctx, target)
            raise ctx.fail(describe_os_error(exc, "write", path)) from None
        except BaseException:
            await _abort(ctx, target)
            raise
        summary: dict[str, Any] = {
            "path": str(target.path),
            "bytes_written": target.written,
            "changed": changed,
            "mode": final_mode,
        }
        if records is not None:
            summary["records_written"] = records
            ctx.log(f"wrote {records} records ({target.written} bytes) to {target.path}")
        if before is not None and changed:
            after = await _Before.read(ctx, params, target.path)
            ctx.add_diff(before.diff_to(target.path, params.encoding, after))
        return summary

    async def check(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        """What ``perform`` would write, compared with the file: nothing is written."""
        path = ctx.resolve_path(params.path)
        from_stream = _check_params(ctx, params)
        mode = int(params.mode, 8) if params.mode else None
        try:
            preview = await ctx.to_thread(
                _Preview.open,
                path,
                append=params.append,
                parents=params.create_parents,
                opened=functools.partial(
                    ctx.run.paths.check_opened, text=params.path, workload=ctx.workload
                ),
            )
        except _Refused as exc:
            raise ctx.fail(str(exc)) from None
        except OSError as exc:
            raise ctx.fail(describe_os_error(exc, "write", path)) from None
        records = None
        if from_stream:
            records = await _write_records(ctx, params, preview)  # type: ignore[arg-type]
        else:
            preview.write(_content_bytes(ctx, params))
        changed, final_mode = preview.outcome(mode)
        if ctx.diff and changed:
            ctx.add_diff(preview.diff(params.encoding, final_mode))
        summary: dict[str, Any] = {
            "path": str(preview.path),
            "bytes_written": preview.written,
            "changed": changed,
            "mode": final_mode,
        }
        if records is not None:
            summary["records_written"] = records
        return summary


def _check_params(ctx: ModuleContext, params: FilesystemWrite.Params) -> bool:
    """Whether the input stream is written; raises for contradictory params."""
    from_stream = ctx.has_input
    if from_stream and params.content is not None:
        raise ctx.fail("give either content or stream_inputs, not both")
    if not from_stream and params.content is None:
        raise ctx.fail("nothing to write: give content, or stream_inputs to write records")
    if not from_stream and (params.format is not None or params.line_template is not None):
        raise ctx.fail(
            "format and line_template apply to stream input; content is written as it is"
        )
    try:
        "".encode(params.encoding)
    except LookupError:
        raise ctx.fail(f"unknown encoding '{params.encoding}'") from None
    return from_stream


class _Before:
    """A file's content and mode before a real write (``--diff`` without ``--check``)."""

    def __init__(self, digest: tuple[str, int, bytes | None] | None, mode: str | None) -> None:
        self.digest = digest
        self.mode = mode

    @classmethod
    async def read(cls, ctx: ModuleContext, params: FilesystemWrite.Params, path: Path) -> _Before:
        def blocking() -> _Before:
            try:
                st = os.stat(path)
            except OSError:
                return cls(None, None)
            if not stat.S_ISREG(st.st_mode):
                return cls(None, None)
            opened = functools.partial(
                ctx.run.paths.check_opened, text=params.path, workload=ctx.workload
            )
            try:
                return cls(file_digest(path, opened), format_mode(st.st_mode))
            except OSError:
                return cls(None, None)

        return await ctx.to_thread(blocking)

    def diff_to(self, path: Path, encoding: str, after: _Before) -> str:
        old, new = self.digest, after.digest
        return content_diff(
            path,
            old[2] if old else b"",
            new[2] if new else None,
            encoding=encoding,
            existed=old is not None,
            size_before=old[1] if old else 0,
            size_after=new[1] if new else 0,
            mode_before=self.mode,
            mode_after=after.mode,
        )


async def _abort(ctx: ModuleContext, target: _AtomicFile) -> None:
    """Remove the temporary file even when the run is being cancelled."""
    with contextlib.suppress(asyncio.CancelledError, OSError):
        await asyncio.shield(ctx.to_thread(target.abort))


def _content_bytes(ctx: ModuleContext, params: FilesystemWrite.Params) -> bytes:
    content = params.content
    if params.binary:
        try:
            return base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise ctx.fail("content is not valid base64 (binary: true)") from None
    if not isinstance(content, str):
        content = json.dumps(content, indent=2, ensure_ascii=False, default=str) + "\n"
    try:
        return content.encode(params.encoding)
    except UnicodeEncodeError as exc:
        raise ctx.fail(
            f"content cannot be encoded as {params.encoding} (character {exc.start})"
        ) from None


async def _write_records(
    ctx: ModuleContext, params: FilesystemWrite.Params, target: _AtomicFile
) -> int:
    encode = _record_encoder(ctx, params, append_to_existing=target.append and target.had_content)
    count = 0
    async for batch in ctx.batches():
        chunks = []
        for record in batch:
            count += 1
            chunks.append(encode(record, count))
        text = "".join(chunks)
        try:
            data = text.encode(params.encoding)
        except UnicodeEncodeError as exc:
            raise ctx.fail(
                f"a record cannot be encoded as {params.encoding}: {text[exc.start : exc.end]!r}"
            ) from None
        await ctx.to_thread(target.write, data)
    tail = encode(None, count)  # closing bracket of a JSON array; header of an empty CSV is skipped
    if tail:
        await ctx.to_thread(target.write, tail.encode(params.encoding))
    return count


def _record_encoder(
    ctx: ModuleContext, params: FilesystemWrite.Params, *, append_to_existing: bool
) -> Callable[[Any, int], str]:
    """``encode(record, n) -> text``; ``encode(None, n)`` returns what ends the file."""
    fmt = params.format or "json_lines"

    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, default=str)

    if fmt == "json_lines":
        return lambda record, _n: "" if record is None else dumps(record) + "\n"
    if fmt == "json":
        return lambda record, n: (
            ("[]\n" if n == 0 else "\n]\n")
            if record is None
            else ("[\n" if n == 1 else ",\n") + dumps(record)
        )
    if fmt == "text":
        render = ctx.compile(params.line_template or "")

        def text(record: Any, _n: int) -> str:
            if record is None:
                return ""
            value = render(path="line_template", record=record)
            return (value if isinstance(value, str) else dumps(value)) + "\n"

        return text
    return _csv_encoder(ctx, header=not append_to_existing)


def _csv_encoder(ctx: ModuleContext, *, header: bool) -> Callable[[Any, int], str]:
    import csv
    import io

    fields: list[str] = []

    def cell(value: Any) -> Any:
        return (
            json.dumps(value, ensure_ascii=False, default=str)
            if isinstance(value, dict | list)
            else value
        )

    def encode(record: Any, n: int) -> str:
        if record is None:
            return ""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if n == 1:
            fields.extend(record)
            if header:
                writer.writerow(fields)
        extra = [k for k in record if k not in fields]
        if extra:
            raise ctx.fail(
                f"record {n} has fields not in the CSV header (taken from the first record): {', '.join(extra)}"
            )
        writer.writerow([cell(record.get(f, "")) for f in fields])
        return buf.getvalue()

    return encode


class _Refused(Exception):
    """A reason not to write, with a complete message."""


class _AtomicFile:
    """A temporary file beside ``path`` that replaces it on :meth:`commit`. Blocking."""

    def __init__(
        self, path: Path, fd: int, temp: str, *, existing: os.stat_result | None, had_content: bool
    ) -> None:
        self.path = path
        self.temp = temp
        self._fh = os.fdopen(fd, "wb")
        self.existing = existing
        self.had_content = had_content
        self.append = False
        self.written = 0

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        append: bool,
        parents: bool,
        opened: Callable[[int], None] | None = None,
    ) -> _AtomicFile:
        """``opened(fd)`` checks the temporary file (a confined run: it is where checked)."""
        path = Path(os.path.realpath(path)) if path.is_symlink() else path
        blocked = non_directory_parent(path)
        if blocked is not None:
            raise _Refused(f"cannot write {path}: {blocked}")
        if parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.parent.is_dir():
            raise _Refused(
                f"cannot write {path}: directory {path.parent} does not exist (create_parents is false)"
            )
        if path.is_dir():
            raise _Refused(f"cannot write {path}: it is a directory")
        try:
            existing = path.stat()
        except FileNotFoundError:
            existing = None
        try:
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".gxo-tmp")
        except (FileNotFoundError, PermissionError) as exc:
            if exc.errno == errno.EACCES or not path.parent.is_dir():
                raise
            # The directory is there, yet no file can be created in it: a special file
            # system such as /proc or /sys (whose files report size 0). "does not exist"
            # would be wrong about an existing target (/proc/version).
            what = "" if existing is None else f"; {path} is a special file, not replaceable"
            raise _Refused(
                f"cannot write {path}: {path.parent} does not allow creating files "
                f"(filesystem:write writes a temporary file beside the target{what})"
            ) from None
        had_content = bool(existing and existing.st_size)
        target = cls(path, fd, temp, existing=existing, had_content=had_content)
        target.append = append
        try:
            if opened is not None:
                opened(fd)
            if append and existing is not None:
                with path.open("rb") as src:
                    shutil.copyfileobj(src, target._fh)
        except BaseException:
            target.abort()
            raise
        return target

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self.written += len(data)

    def commit(self, mode: int | None) -> tuple[bool, str]:
        """Replace the target unless nothing would change; returns (changed, mode)."""
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        existing = self.existing
        wanted = (
            mode if mode is not None else (existing.st_mode & 0o7777 if existing else DEFAULT_MODE)
        )
        if (
            existing is not None
            and (not self.append or self.written == 0)
            and _same_bytes(self.temp, self.path, existing)
        ):
            os.unlink(self.temp)
            if existing.st_mode & 0o7777 == wanted:
                return False, format_mode(wanted)
            os.chmod(self.path, wanted)
            return True, format_mode(wanted)
        os.chmod(self.temp, wanted)
        if existing is not None and (existing.st_uid, existing.st_gid) != (
            os.getuid(),
            os.getgid(),
        ):
            with contextlib.suppress(PermissionError):  # keeping the owner needs privileges
                os.chown(self.temp, existing.st_uid, existing.st_gid)
        os.replace(self.temp, self.path)
        return True, format_mode(wanted)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp)


class _Preview:
    """What :class:`_AtomicFile` would write, compared with the file; writes nothing. Blocking."""

    def __init__(
        self,
        path: Path,
        existing: os.stat_result | None,
        old: tuple[str, int, bytes | None] | None,
        *,
        append: bool,
    ) -> None:
        self.path = path
        self.existing = existing
        self.old = old
        self.append = append
        self.had_content = bool(existing and existing.st_size)
        self.probe = ContentProbe()

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        append: bool,
        parents: bool,
        opened: Callable[[int], None] | None = None,
    ) -> _Preview:
        """The checks of :meth:`_AtomicFile.open`, and the current content's digest."""
        path = Path(os.path.realpath(path)) if path.is_symlink() else path
        blocked = non_directory_parent(path)
        if blocked is not None:
            raise _Refused(f"cannot write {path}: {blocked}")
        if not parents and not path.parent.is_dir():
            raise _Refused(
                f"cannot write {path}: directory {path.parent} does not exist (create_parents is false)"
            )
        if path.is_dir():
            raise _Refused(f"cannot write {path}: it is a directory")
        ancestor = path.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "permission denied", str(path))
        try:
            existing: os.stat_result | None = path.stat()
        except FileNotFoundError:
            existing = None
        old = None
        if existing is not None and stat.S_ISREG(existing.st_mode):
            old = file_digest(path, opened)
        return cls(path, existing, old, append=append)

    @property
    def written(self) -> int:
        return self.probe.written

    def write(self, data: bytes) -> None:
        self.probe.write(data)

    def outcome(self, mode: int | None) -> tuple[bool, str]:
        """``(changed, mode)`` as :meth:`_AtomicFile.commit` would return them."""
        existing = self.existing
        wanted = (
            mode if mode is not None else (existing.st_mode & 0o7777 if existing else DEFAULT_MODE)
        )
        if existing is None:
            return True, format_mode(wanted)
        if self.append:
            same = self.probe.written == 0
        else:
            same = self.old is not None and self.old[0] == self.probe.sha256
        return (not same or existing.st_mode & 0o7777 != wanted), format_mode(wanted)

    def diff(self, encoding: str, final_mode: str) -> str:
        old, new = self.old, self.probe.content
        before = old[2] if old else (b"" if self.existing is None else None)
        after = new
        size_after = self.probe.size
        if self.append and old is not None:
            size_after += old[1]
            after = old[2] + new if old[2] is not None and new is not None else None
        return content_diff(
            self.path,
            before,
            after,
            encoding=encoding,
            existed=self.existing is not None,
            size_before=old[1] if old else 0,
            size_after=size_after,
            mode_before=format_mode(self.existing.st_mode) if self.existing else None,
            mode_after=final_mode,
        )


def _same_bytes(temp: str, path: Path, existing: os.stat_result) -> bool:
    return os.stat(temp).st_size == existing.st_size and filecmp.cmp(temp, path, shallow=False)
