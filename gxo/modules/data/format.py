"""``data:format``: turn the input stream into one string (and optionally a file)."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from gxo.engine.context import ModuleContext
from gxo.errors import GxoError
from gxo.modules.base import CheckMode, Module, StreamRole, raw_template, register
from gxo.modules.data._records import (
    BadRecords,
    DeadLetter,
    OnError,
    RecordErrorParams,
    dead_letter_field,
    on_error_field,
)

_SPILL = (
    1024 * 1024
)  # characters buffered before they are written to the file (include_content: false)


@register("data:format", layer="data")
class Format(Module):
    """Format the records of the input stream as JSON, JSON lines, CSV, YAML or text.

    The result is the summary's ``formatted_content``; with ``path`` it is
    also written to that file (relative to the workspace) atomically: a
    temporary file renamed into place, so readers never see half a file.

    - ``json``: one array (``indent`` spaces; 0 for one line); ``yaml``: one list.
    - ``json_lines``: one compact JSON object per line.
    - ``csv``: a header row, then one row per record. Columns are ``columns``
      or the union of the records' keys in first-seen order; missing values
      are empty, nested values are JSON, booleans ``true``/``false``.
    - ``text``: ``template`` rendered per record (it sees ``record``), one line each.

    ``json_lines``, ``text`` and ``csv`` with ``columns`` stream: with
    ``include_content: false`` and a ``path`` they write as they read, without
    holding the output in memory.

    Example:
        - name: report_csv
          process:
            module: data:format
            params: { format: csv, path: out/report.csv, columns: [team, total] }
          stream_inputs: [per_team]
        - name: report_text
          process:
            module: data:format
            params: { format: text, template: "{{ record.team }}: {{ record.total }}" }
          stream_inputs: [per_team]
          register: report
    """

    class Params(RecordErrorParams):
        format: Literal["json", "json_lines", "csv", "yaml", "text"] = Field(
            ..., description="json | json_lines | csv | yaml | text"
        )
        path: str | None = Field(
            None,
            min_length=1,
            description="Also write the result to this file (relative to the workspace)",
        )
        columns: list[str] | None = Field(
            None, min_length=1, description="csv: the columns, in order (default: every key seen)"
        )
        header: bool = Field(True, description="csv: write a header row")
        delimiter: str = Field(",", min_length=1, max_length=1, description="csv: field separator")
        indent: int = Field(2, ge=0, le=16, description="json: indentation (0: one line)")
        template: str | None = raw_template(
            None, description="text: template rendered per record (sees `record`)"
        )
        include_content: bool = Field(
            True,
            description="Put the result in the summary's formatted_content (false needs path; the file is then written as it streams)",
        )
        on_error: OnError = on_error_field()
        dead_letter: DeadLetter | None = dead_letter_field()

        @model_validator(mode="after")
        def _check(self) -> Format.Params:
            if self.format == "text" and self.template is None:
                raise ValueError("format text needs a template")
            if self.template is not None and self.format != "text":
                raise ValueError("template only applies to format text")
            if self.columns is not None and self.format != "csv":
                raise ValueError("columns only applies to format csv")
            if not self.include_content and self.path is None:
                raise ValueError(
                    "include_content: false needs a path (otherwise the result goes nowhere)"
                )
            return self

    consumes = StreamRole.required
    summary = {
        "formatted_content": "the formatted text (null with include_content: false)",
        "path": "absolute path of the written file, or null",
        "records_formatted": "records in the output",
        "bytes": "size of the output in bytes (UTF-8)",
        "bad_records": "records skipped or dead-lettered under on_error",
    }

    path_params = ("path", "dead_letter.path")

    check_mode = CheckMode.safe  # read-only unless it writes `path` (gxo run --check)
    check_hint = "it writes path"

    def check_mode_for(self, params: Params) -> CheckMode:
        return CheckMode.safe if params.path is None else CheckMode.unsupported

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        target = ctx.resolve_path(params.path) if params.path else None
        out = _Output(ctx, target, keep=params.include_content)
        try:
            async with BadRecords(ctx, params) as bad:
                count = await _FORMATTERS[params.format](ctx, params, out, bad)
            await out.commit()
        finally:
            await out.discard()
        return {
            "formatted_content": out.content if params.include_content else None,
            "path": str(target) if target else None,
            "records_formatted": count,
            "bytes": out.size,
            "bad_records": bad.count,
        }


class _Output:
    """Collects the text, then writes it to a temporary file renamed onto ``target``.

    Without ``keep`` the text is written to the temporary file as it grows
    instead of being held in memory.
    """

    def __init__(self, ctx: ModuleContext, target: Path | None, *, keep: bool) -> None:
        self.ctx = ctx
        self.target = target
        self.keep = keep
        self.parts: list[str] = []  # kept text, or text not yet written (without keep)
        self.buffered = 0
        self.size = 0
        self.tmp: Path | None = None

    @property
    def content(self) -> str:
        return "".join(self.parts)

    async def write(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text) if text.isascii() else len(text.encode("utf-8"))
        self.buffered += len(text)
        if not self.keep and self.buffered >= _SPILL:
            chunk, self.parts, self.buffered = self.content, [], 0
            await self._write(chunk)

    async def commit(self) -> None:
        if self.target is None:
            return
        await self._write(self.content)
        try:
            await self.ctx.to_thread(os.replace, self.tmp, self.target)  # type: ignore[arg-type]
        except OSError as exc:
            raise self.ctx.fail(f"cannot write {self.target}: {exc.strerror or exc}") from None
        self.tmp = None

    async def discard(self) -> None:
        """Remove the temporary file of an output that was not committed."""
        if self.tmp is not None:
            tmp, self.tmp = self.tmp, None
            await self.ctx.to_thread(tmp.unlink, missing_ok=True)

    async def _write(self, chunk: str) -> None:
        try:
            if self.tmp is None:
                self.tmp = await self.ctx.to_thread(_temp_next_to, self.target)
            await self.ctx.to_thread(_append, self.tmp, chunk)
        except OSError as exc:
            raise self.ctx.fail(f"cannot write {self.target}: {exc.strerror or exc}") from None


def _temp_next_to(target: Path | None) -> Path:
    assert target is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    return Path(name)


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8", newline="") as fh:
        fh.write(text)


# -- formatters: each reads the stream, writes to `out`, returns the record count ------


async def _json(ctx: ModuleContext, params: Format.Params, out: _Output, bad: BadRecords) -> int:
    records = await _collect(ctx)
    text = await ctx.to_thread(
        json.dumps, records, indent=params.indent or None, ensure_ascii=False, default=str
    )
    await out.write(text + "\n")
    return len(records)


async def _yaml(ctx: ModuleContext, params: Format.Params, out: _Output, bad: BadRecords) -> int:
    from gxo.template.filters import FILTERS

    records = await _collect(ctx)
    await out.write(await ctx.to_thread(FILTERS["to_yaml"], records) if records else "[]\n")
    return len(records)


async def _json_lines(
    ctx: ModuleContext, params: Format.Params, out: _Output, bad: BadRecords
) -> int:
    dumps = json.dumps
    count = 0
    async for batch in ctx.batches():
        lines = []
        for record in batch:
            lines.append(dumps(record, ensure_ascii=False, default=str))
        count += len(lines)
        if lines:
            await out.write("\n".join(lines) + "\n")
    return count


async def _text(ctx: ModuleContext, params: Format.Params, out: _Output, bad: BadRecords) -> int:
    render = ctx.compile(params.template or "")
    count = index = 0
    async for batch in ctx.batches():
        lines = []
        for record in batch:
            index += 1
            try:
                lines.append(str(render("template", record=record)))
            except GxoError as exc:
                bad(index, record, exc)
        count += len(lines)
        if lines:
            await out.write("\n".join(lines) + "\n")
        await bad.maybe_flush()
    return count


async def _csv(ctx: ModuleContext, params: Format.Params, out: _Output, bad: BadRecords) -> int:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=params.delimiter, lineterminator="\n")

    def rows_text(rows: list[list[str]]) -> str:
        buf.seek(0)
        buf.truncate()
        writer.writerows(rows)
        return buf.getvalue()

    if params.columns is not None:
        columns = list(params.columns)
        if params.header:
            await out.write(rows_text([columns]))
        count = 0
        async for batch in ctx.batches():
            await out.write(rows_text([_row(r, columns) for r in batch]))
            count += len(batch)
        return count
    records = await _collect(ctx)
    seen: dict[str, None] = {}
    for record in records:
        for key in record:
            seen.setdefault(key, None)
    columns = list(seen)
    rows = [columns] if params.header and columns else []
    rows.extend(_row(r, columns) for r in records)
    await out.write(rows_text(rows))
    return len(records)


def _row(record: dict[str, Any], columns: list[str]) -> list[str]:
    return [_cell(record.get(c)) for c in columns]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


async def _collect(ctx: ModuleContext) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    async for batch in ctx.batches():
        records.extend(batch)
    return records


_FORMATTERS = {"json": _json, "yaml": _yaml, "json_lines": _json_lines, "text": _text, "csv": _csv}
