"""``data:map``: reshape each record with templates."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

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
from gxo.state.store import copy_record
from gxo.template.engine import is_template


@register("data:map", layer="data")
class Map(Module):
    """Transform each record of the input stream with templates.

    With ``fields``, each output field is a template over ``record`` (a single
    ``{{ expression }}`` keeps its type: number, list, ...); values that are not
    templates are constants. ``keep: true`` starts from a copy of the input
    record, so ``fields`` add or replace fields; otherwise the output holds only
    ``fields``. With ``template``, one template renders the whole output record:
    a mapping, or a JSON object string (``| tojson``) parsed back to a mapping.
    A template that fails on a record makes it a bad record (see ``on_error``).

    Example:
        - name: shaped
          process:
            module: data:map
            params:
              fields:
                name: "{{ record.name | upper }}"
                n: "{{ record.n * 2 }}"
                source: api
              keep: false
          stream_inputs: [users]
        - name: reshaped
          process:
            module: data:map
            params: { template: "{{ {'id': record.id, 'tags': record.tags | join(',')} | tojson }}" }
          stream_inputs: [users]
    """

    class Params(RecordErrorParams):
        fields: dict[str, Any] | None = raw_template(
            None,
            description="Output field → template over `record` (non-template values are constants)",
        )
        keep: bool = Field(
            False,
            description="Start from the input record: fields add or replace (default: only fields)",
        )
        template: str | None = raw_template(
            None,
            description="One template producing the whole output record: a mapping or a JSON object string",
        )
        on_error: OnError = on_error_field()
        dead_letter: DeadLetter | None = dead_letter_field()

        @model_validator(mode="after")
        def _one_shape(self) -> Map.Params:
            if (self.fields is None) == (self.template is None):
                raise ValueError("give exactly one of 'fields' or 'template'")
            if self.keep and self.template is not None:
                raise ValueError("'keep' applies to 'fields' only")
            return self

    consumes = StreamRole.required
    produces = True
    summary = {
        "records_mapped": "records emitted",
        "bad_records": "records skipped or dead-lettered under on_error",
    }

    path_params = ("dead_letter.path",)

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        build = (
            _fields_builder(ctx, params.fields, params.keep)
            if params.fields is not None
            else _template_builder(ctx, params.template or "")
        )
        send = ctx.output.send
        emitted = index = 0
        async with BadRecords(ctx, params) as bad:
            async for batch in ctx.batches():
                for record in batch:
                    index += 1
                    try:
                        out = build(record)
                    except (GxoError, _BadShape) as exc:
                        bad(index, record, exc)
                        continue
                    await send(out)
                    emitted += 1
                await bad.maybe_flush()
            return {"records_mapped": emitted, "bad_records": bad.count}


class _BadShape(Exception):
    pass


def _value_builder(ctx: ModuleContext, value: Any, path: str) -> Callable[[dict[str, Any]], Any]:
    """A function of the record rendering ``value`` (a template, a constant, or a nest of them)."""
    if isinstance(value, str):
        if not is_template(value):
            return lambda record: value
        render = ctx.compile(value)
        return lambda record: render(path, record=record)
    if isinstance(value, dict):
        parts = [(k, _value_builder(ctx, v, f"{path}.{k}")) for k, v in value.items()]
        return lambda record: {k: fn(record) for k, fn in parts}
    if isinstance(value, list):
        items = [_value_builder(ctx, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return lambda record: [fn(record) for fn in items]
    return lambda record: copy_record(value)


def _fields_builder(
    ctx: ModuleContext, fields: dict[str, Any], keep: bool
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    # The per-record hot path: a top-level template field calls its renderer
    # directly; constants and nested values go through their builder.
    direct: list[tuple[str, Callable[..., Any], str]] = []
    built: list[tuple[str, Callable[[dict[str, Any]], Any]]] = []
    for name, value in fields.items():
        path = f"fields.{name}"
        if isinstance(value, str) and is_template(value):
            direct.append((name, ctx.compile(value), path))
        else:
            built.append((name, _value_builder(ctx, value, path)))
    order = list(fields)

    def build(record: dict[str, Any]) -> dict[str, Any]:
        out = dict(record) if keep else {}
        for name, render, path in direct:
            out[name] = render(path, record=record)
        for name, fn in built:
            out[name] = fn(record)
        return out

    if not built or not direct:
        return build  # one kind of field: already in the declared order

    def build_in_order(record: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, render, path in direct:
            values[name] = render(path, record=record)
        for name, fn in built:
            values[name] = fn(record)
        out = dict(record) if keep else {}
        for name in order:
            out[name] = values[name]
        return out

    return build_in_order


def _template_builder(
    ctx: ModuleContext, template: str
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    render = ctx.compile(template)

    def build(record: dict[str, Any]) -> dict[str, Any]:
        value = render("template", record=record)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise _BadShape(f"template output is not JSON ({exc}): {value[:100]!r}") from None
        if not isinstance(value, dict):
            raise _BadShape(
                f"template must produce a mapping (or a JSON object string), got {type(value).__name__}"
            )
        return value

    return build
