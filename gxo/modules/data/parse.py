"""``data:parse``: turn text into a stream of records."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator, Iterator
from itertools import islice
from typing import Any, Literal

from pydantic import Field, model_validator

from gxo.engine.context import ModuleContext
from gxo.errors import GxoError
from gxo.modules.base import CheckMode, Module, StreamRole, register
from gxo.modules.data._records import (
    MISSING,
    BadRecords,
    DeadLetter,
    OnError,
    RecordErrorParams,
    dead_letter_field,
    field_getter,
    on_error_field,
    to_jsonable,
)

_CHUNK_LINES = 2000  # lines parsed between two yields to the event loop (content mode)
_THREAD_DOC_SIZE = 256 * 1024  # documents larger than this are parsed in a worker thread


@register("data:parse", layer="data")
class Parse(Module):
    """Parse text (JSON, JSON lines, text lines, CSV, YAML) into a stream of records.

    The text comes from ``content``, or from the input stream: each input
    record's ``input_field`` (default ``line``) holds text. Records are emitted
    as they are parsed, so a large input streams through without being held
    in memory.

    - ``json_lines``: one JSON value per line (blank lines ignored).
    - ``text_lines``: one record ``{line, line_number}`` per line.
    - ``csv``: the first row names the columns (``header``) unless ``columns``
      does; values stay strings; a row with a different number of fields is a
      bad record. Quoted fields may span lines (and input records).
    - ``json`` / ``yaml``: whole documents (``content``, or one per input
      record; YAML may hold several ``---`` documents). A list becomes one
      record per item, a mapping one record; ``items_field`` picks the list
      inside a document (``data.items``).

    A value that is not a mapping becomes ``{"value": v}``. An input record
    boundary is a line boundary. Unparsable input is a bad record: see
    ``on_error``.

    Example:
        - name: events
          process:
            module: data:parse
            params: { format: json_lines, content: "{{ raw.stdout }}" }
        - name: users
          process:
            module: data:parse
            params:
              format: json
              content: "{{ api.body }}"
              items_field: data.users
              on_error: skip
    """

    class Params(RecordErrorParams):
        format: Literal["json", "json_lines", "text_lines", "csv", "yaml"] = Field(
            ..., description="json | json_lines | text_lines | csv | yaml"
        )
        content: str | None = Field(
            None, description="Text to parse; omit to parse the text of the input stream's records"
        )
        input_field: str = Field(
            "line",
            min_length=1,
            description="Field of each input record that holds its text (stream mode)",
        )
        items_field: str | None = Field(
            None,
            min_length=1,
            description="json/yaml: dotted path of the list of records inside each document (e.g. data.items)",
        )
        header: bool | None = Field(
            None,
            description="csv: the first row names the columns (default: true, false when columns is given)",
        )
        columns: list[str] | None = Field(
            None,
            min_length=1,
            description="csv: column names (otherwise from the header row, or col1, col2, ...)",
        )
        delimiter: str = Field(",", min_length=1, max_length=1, description="csv: field separator")
        quotechar: str = Field('"', min_length=1, max_length=1, description="csv: quote character")
        on_error: OnError = on_error_field()
        dead_letter: DeadLetter | None = dead_letter_field()

        @model_validator(mode="after")
        def _options_fit_format(self) -> Parse.Params:
            csv_only = [k for k in ("header", "columns") if getattr(self, k) is not None]
            if self.format != "csv" and csv_only:
                raise ValueError(f"{', '.join(csv_only)} only apply to format csv")
            if self.items_field is not None and self.format not in ("json", "yaml"):
                raise ValueError("items_field only applies to formats json and yaml")
            return self

    consumes = StreamRole.optional
    produces = True
    summary = {
        "records_parsed": "records emitted",
        "bad_records": "inputs skipped or dead-lettered under on_error",
        "format": "the format parsed",
    }

    path_params = ("dead_letter.path",)

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        if params.content is not None and ctx.has_input:
            raise ctx.fail("give either content or stream_inputs, not both")
        if params.content is None and not ctx.has_input:
            raise ctx.fail(
                "nothing to parse: give content, or stream_inputs whose records hold the text"
            )
        parser = _Parser(ctx, params)
        async with parser.bad:
            if params.format in ("json", "yaml"):
                await parser.documents()
            else:
                handle = {
                    "json_lines": parser.json_lines,
                    "text_lines": parser.text_lines,
                    "csv": parser.csv_rows,
                }
                await handle[params.format]()
        return {
            "records_parsed": parser.emitted,
            "bad_records": parser.bad.count,
            "format": params.format,
        }


class _Parser:
    def __init__(self, ctx: ModuleContext, params: Parse.Params) -> None:
        self.ctx = ctx
        self.params = params
        self.bad = BadRecords(ctx, params)
        self.emitted = 0
        self.records_read = 0
        self.field = params.input_field
        self.plain_field = "." not in self.field
        self.get_text = field_getter(self.field)

    # -- input -------------------------------------------------------------------

    def text_of(self, record: dict[str, Any]) -> str | None:
        """The text of the next input record; None (after applying on_error) if it has none."""
        self.records_read += 1
        text = record.get(self.field, MISSING) if self.plain_field else self.get_text(record)
        if type(text) is str:
            return text
        what = "has no field" if text is MISSING else f"has a {type(text).__name__}, not text, in"
        self.bad(self.records_read, record, f"input record {what} '{self.field}'")
        return None

    async def texts(self) -> AsyncIterator[list[tuple[int, str]]]:
        """Batches of ``(input record number, text)`` from the input stream."""
        async for batch in self.ctx.batches():
            out = []
            for record in batch:
                text = self.text_of(record)
                if text is not None:
                    out.append((self.records_read, text))
            yield out
            await self.bad.maybe_flush()

    async def lines(self, keepends: bool = False) -> AsyncIterator[list[str]]:
        """Batches of lines (without line ends unless ``keepends``; then every line ends with one)."""
        content = self.params.content
        if content is not None:
            it: Iterator[str] = iter(io.StringIO(content, newline=""))
            while chunk := list(islice(it, _CHUNK_LINES)):
                if keepends:
                    if not chunk[-1].endswith(("\n", "\r")):
                        chunk[-1] += "\n"
                    yield chunk
                else:
                    yield [line.rstrip("\r\n") for line in chunk]
                await asyncio.sleep(0)  # a long content must not starve the other workloads
            return
        text_of = self.text_of
        async for batch in self.ctx.batches():
            out: list[str] = []
            for record in batch:
                text = text_of(record)
                if text is None:
                    continue
                if "\n" in text or "\r" in text:
                    out.extend(text.splitlines(keepends))
                    if keepends and not out[-1].endswith(("\n", "\r")):
                        out[-1] += "\n"
                else:
                    out.append(text + "\n" if keepends else text)
            yield out
            await self.bad.maybe_flush()

    # -- formats -----------------------------------------------------------------

    async def json_lines(self) -> None:
        loads = json.JSONDecoder().decode  # json.loads without its per-call argument checks
        send = self.ctx.output.send
        bad = self.bad
        number = emitted = 0
        async for lines in self.lines():
            for line in lines:
                number += 1
                if not line or line.isspace():
                    continue
                try:
                    value = loads(line)
                except ValueError as exc:
                    bad(number, line, f"invalid JSON: {exc}", unit="line ")
                    continue
                await send(value if type(value) is dict else {"value": value})
                emitted += 1
            self.emitted = emitted

    async def text_lines(self) -> None:
        send = self.ctx.output.send
        number = 0
        async for lines in self.lines():
            for line in lines:
                number += 1
                await send({"line": line, "line_number": number})
            self.emitted = number

    async def csv_rows(self) -> None:
        p = self.params
        columns = list(p.columns) if p.columns else None
        header = p.header if p.header is not None else columns is None
        quote = p.quotechar
        send = self.ctx.output.send
        row_number = 0  # logical rows (a quoted field may span physical lines)
        pending: list[str] = []  # physical lines of a row whose quoted field is still open
        open_quotes = False
        async for lines in self.lines(keepends=True):
            rows: list[str] = []
            for line in lines:
                pending.append(line)
                if line.count(quote) % 2:
                    open_quotes = not open_quotes
                if not open_quotes:
                    rows.append("".join(pending) if len(pending) > 1 else line)
                    pending.clear()
            for fields in csv.reader(rows, delimiter=p.delimiter, quotechar=quote):
                row_number += 1
                if not fields:
                    continue  # blank line
                if header:
                    header = False
                    if columns is None:
                        columns = [name or f"col{i}" for i, name in enumerate(fields, 1)]
                    continue  # with `columns`, the file's own header row is dropped
                if columns is None:
                    columns = [f"col{i}" for i in range(1, len(fields) + 1)]
                if len(fields) != len(columns):
                    self.bad(
                        row_number,
                        fields,
                        f"row has {len(fields)} fields, expected {len(columns)} ({', '.join(columns)})",
                        unit="csv row ",
                    )
                    continue
                await send(dict(zip(columns, fields, strict=True)))
                self.emitted += 1
        if pending:
            self.bad(
                row_number + 1,
                "".join(pending)[:200],
                f"unterminated quoted field (missing closing {quote})",
                unit="csv row ",
            )

    async def documents(self) -> None:
        if self.params.content is not None:
            await self._document(1, self.params.content)
            return
        async for texts in self.texts():
            for index, text in texts:
                await self._document(index, text)

    async def _document(self, index: int, text: str) -> None:
        fmt = self.params.format
        try:
            if len(text) > _THREAD_DOC_SIZE:
                docs = await self.ctx.to_thread(_load_documents, fmt, text)
            else:
                docs = _load_documents(fmt, text)
        except _ParseError as exc:
            unit = "document #" if self.params.content is None else "document "
            self.bad(index, text, str(exc), unit=unit)
            return
        select = field_getter(self.params.items_field) if self.params.items_field else None
        send = self.ctx.output.send
        for doc in docs:
            if select is not None:
                items = select(doc)
                if items is MISSING:
                    self.bad(
                        index,
                        doc,
                        f"document has no field '{self.params.items_field}'",
                        unit="document #",
                    )
                    continue
            else:
                items = doc
            if items is None:
                continue
            for n, item in enumerate(items if isinstance(items, list) else [items], 1):
                await send(item if type(item) is dict else {"value": item})
                self.emitted += 1
                if n % _CHUNK_LINES == 0:
                    await asyncio.sleep(0)


class _ParseError(Exception):
    pass


def _load_documents(fmt: str, text: str) -> list[Any]:
    if fmt == "json":
        if not text.strip():
            return []
        try:
            return [json.loads(text)]
        except ValueError as exc:
            raise _ParseError(f"invalid JSON: {exc}") from None
    from gxo.config.yamlsafe import load_yaml_text

    try:
        # The hardened reader: alias bombs, deep nesting and huge integers are refused.
        docs = load_yaml_text(text, "yaml", all_documents=True)
    except GxoError as exc:
        raise _ParseError(f"invalid YAML: {_yaml_message(exc)}") from None
    # Non-string keys (``1: a``) are not JSON: records must be.
    return [to_jsonable(d) for d in docs if d is not None]


def _yaml_message(exc: GxoError) -> str:
    message = exc.message.removeprefix("YAML syntax error: ")
    loc = exc.location
    if loc is not None and loc.line is not None:
        return f"{message} at line {loc.line} column {loc.column}"
    return message
