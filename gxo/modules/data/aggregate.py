"""``data:aggregate``: group records and compute count/sum/avg/min/max/collect."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from gxo.config.durations import Duration
from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, StreamRole, register
from gxo.modules.data._records import (
    MISSING,
    BadRecords,
    DeadLetter,
    OnError,
    RecordErrorParams,
    dead_letter_field,
    field_getter,
    hashable,
    on_error_field,
)

Op = Literal["count", "sum", "avg", "min", "max", "collect"]


class AggregateField(ModuleParams):
    name: str = Field(..., min_length=1, description="Output field name")
    op: Op = Field(..., description="count | sum | avg | min | max | collect")
    source_field: str | None = Field(
        None,
        min_length=1,
        description="Input field (dotted path); required except for count (which then counts records)",
    )

    @model_validator(mode="after")
    def _needs_source(self) -> AggregateField:
        if self.op != "count" and self.source_field is None:
            raise ValueError(f"op '{self.op}' needs source_field")
        return self


@register("data:aggregate", layer="data")
class Aggregate(Module):
    """Group the input stream's records and aggregate their fields.

    Each output record holds the ``group_by_fields`` values and one field per
    ``aggregate_fields`` entry. Ops: ``count`` (records, or non-null values of
    ``source_field``), ``sum``, ``avg`` (numbers or numeric strings), ``min``,
    ``max``, ``collect`` (list of values). Missing and null values are ignored,
    as in SQL; a value that cannot be aggregated is a bad record.

    Windows are tumbling: ``count: N`` emits the groups after every N records,
    ``window: 5m`` every 5 minutes while the stream is open (those records also
    get ``window_start``/``window_end``, ISO 8601 UTC). Whatever is left is
    emitted when the stream ends. With neither, one flush at the end; then,
    without ``group_by_fields``, an empty stream still yields one record
    (count 0).

    Example:
        - name: per_team
          process:
            module: data:aggregate
            params:
              group_by_fields: [team]
              aggregate_fields:
                - { name: total, op: sum, source_field: n }
                - { name: rows, op: count }
                - { name: biggest, op: max, source_field: n }
          stream_inputs: [scores]
          register: totals
    """

    class Params(RecordErrorParams):
        group_by_fields: list[str] = Field(
            default_factory=list, description="Fields (dotted paths) whose values form a group"
        )
        aggregate_fields: list[AggregateField] = Field(
            ..., min_length=1, description="Aggregations: {name, op, source_field}"
        )
        window: Duration | None = Field(
            None, description="Tumbling time window (e.g. 30s, 5m): emit the groups this often"
        )
        count: int | None = Field(
            None, ge=1, description="Tumbling count window: emit the groups after this many records"
        )
        summary_limit: int = Field(
            100, ge=0, description="Aggregated records kept in the summary's `results`"
        )
        on_error: OnError = on_error_field()
        dead_letter: DeadLetter | None = dead_letter_field()

        @model_validator(mode="after")
        def _check(self) -> Aggregate.Params:
            if self.window is not None and self.count is not None:
                raise ValueError("give at most one of 'window' and 'count'")
            if self.window is not None and self.window <= 0:
                raise ValueError("window must be longer than 0s")
            names = [a.name for a in self.aggregate_fields]
            clash = sorted(
                {n for n in names if names.count(n) > 1} | (set(names) & set(self.group_by_fields))
            )
            if clash:
                raise ValueError(f"output field names must be unique: {', '.join(clash)}")
            return self

    consumes = StreamRole.required
    produces = True
    summary = {
        "results": "the aggregated records emitted (the first summary_limit)",
        "groups_emitted": "aggregated records emitted",
        "windows": "flushes that emitted records",
        "records_aggregated": "input records aggregated",
        "bad_records": "records skipped or dead-lettered under on_error",
    }

    path_params = ("dead_letter.path",)

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        agg = _Aggregator(ctx, params)
        timer: asyncio.Task[None] | None = None
        stop = asyncio.Event()
        if params.window is not None:
            timer = asyncio.create_task(
                agg.tick(params.window, stop), name=f"{ctx.workload}:window"
            )
        try:
            async with agg.bad:
                await agg.consume()
                if timer is not None:
                    stop.set()
                    await timer  # lets a flush in progress finish before the last one
                    timer = None
                await agg.flush(final=True)
        finally:
            if timer is not None:
                timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await timer
        return {
            "results": agg.results,
            "groups_emitted": agg.emitted,
            "windows": agg.windows,
            "records_aggregated": agg.aggregated,
            "bad_records": agg.bad.count,
        }


class _Aggregator:
    def __init__(self, ctx: ModuleContext, params: Aggregate.Params) -> None:
        self.ctx = ctx
        self.params = params
        self.bad = BadRecords(ctx, params)
        self.group_names = list(params.group_by_fields)
        self.group_getters = [field_getter(f) for f in params.group_by_fields]
        self.specs = [
            (a.name, a.op, field_getter(a.source_field) if a.source_field else None)
            for a in params.aggregate_fields
        ]
        self.compares = any(op in _ORDERED for _, op, _ in self.specs)
        self.count_all = [
            i for i, (_, op, get) in enumerate(self.specs) if op == "count" and get is None
        ]
        self.sourced = [
            (i, op, get, name) for i, (name, op, get) in enumerate(self.specs) if get is not None
        ]
        self.groups: dict[Any, tuple[list[Any], list[Any]]] = {}  # key → (group values, op states)
        self.in_window = 0
        self.window_started = time.time()
        self.results: list[dict[str, Any]] = []
        self.emitted = self.windows = self.aggregated = 0

    async def consume(self) -> None:
        count = self.params.count
        index = 0
        async for batch in self.ctx.batches():
            for record in batch:
                index += 1
                try:
                    self.add(record)
                except _BadValue as exc:
                    self.bad(index, record, str(exc))
                    continue
                if count is not None and self.in_window >= count:
                    await self.flush()
            await self.bad.maybe_flush()

    def add(self, record: dict[str, Any]) -> None:
        # The module's hot path: plain loops, no call per plain number, and a
        # group key made hashable only when it has to be.
        values = []
        for get in self.group_getters:
            v = get(record)
            values.append(None if v is MISSING else v)
        key = tuple(values)
        try:
            group = self.groups.get(key)
        except TypeError:  # a list or mapping among the group values
            key = tuple(hashable(v) for v in values)
            group = self.groups.get(key)
        # Read and check every source value first: a bad record changes no group.
        inputs = []
        for i, op, get, name in self.sourced:
            v = get(record)
            if v is MISSING or v is None:
                continue  # ignored, as in SQL
            if op in _NUMERIC:
                if type(v) is not int and type(v) is not float:
                    v = _number(v, name, op)
            elif op in _ORDERED and isinstance(v, dict | list):
                raise _BadValue(f"{name} ({op}): cannot compare a {type(v).__name__}")
            inputs.append((i, op, v))
        if group is None:
            group = self.groups[key] = (values, [_initial(op) for _, op, _ in self.specs])
        elif self.compares:
            _check_comparable(inputs, group[1], self.specs)
        states = group[1]
        for i in self.count_all:
            states[i] += 1
        for i, op, v in inputs:
            if op == "sum" or op == "count":
                states[i] += 1 if op == "count" else v
            elif op == "avg":
                states[i][0] += v
                states[i][1] += 1
            elif op == "min":
                if states[i] is None or v < states[i]:
                    states[i] = v
            elif op == "max":
                if states[i] is None or v > states[i]:
                    states[i] = v
            else:
                states[i].append(v)
        self.in_window += 1
        self.aggregated += 1

    async def flush(self, *, final: bool = False) -> None:
        groups, self.groups = self.groups, {}
        started, self.window_started = self.window_started, time.time()
        self.in_window = 0
        p = self.params
        if (
            not groups
            and final
            and not self.windows
            and not p.group_by_fields
            and p.window is None
            and p.count is None
        ):
            groups = {
                (): ([], [_initial(op) for _, op, _ in self.specs])
            }  # SQL: an aggregate of nothing is one row
        if not groups:
            return
        self.windows += 1
        bounds: dict[str, Any] = {}
        if p.window is not None:
            bounds = {"window_start": _iso(started), "window_end": _iso(self.window_started)}
        send = self.ctx.output.send
        for values, states in groups.values():
            out: dict[str, Any] = dict(zip(self.group_names, values, strict=True))
            for (name, op, _), state in zip(self.specs, states, strict=True):
                out[name] = _final(op, state)
            out.update(bounds)
            if len(self.results) < p.summary_limit:
                self.results.append(out)
            self.emitted += 1
            await send(out)

    async def tick(self, window: float, stop: asyncio.Event) -> None:
        """Flush every ``window`` seconds until ``stop`` is set."""
        deadline = time.monotonic() + window
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                deadline += window
                await self.flush()


class _BadValue(Exception):
    pass


_NUMERIC = frozenset({"sum", "avg"})
_ORDERED = frozenset({"min", "max"})


def _number(value: Any, name: str, op: str) -> int | float:
    """``value`` as a number for sum/avg (numeric strings too); raises _BadValue."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                pass
    raise _BadValue(f"{name} ({op}): {value!r} is not a number")


def _check_comparable(
    inputs: list[tuple[int, str, Any]], states: list[Any], specs: list[tuple[str, str, Any]]
) -> None:
    for i, op, value in inputs:
        state = states[i]
        if op in _ORDERED and state is not None:
            try:
                _ = value < state
            except TypeError:
                raise _BadValue(
                    f"{specs[i][0]} ({op}): cannot compare {type(value).__name__} {value!r}"
                    f" with {type(state).__name__} {state!r}"
                ) from None


def _initial(op: str) -> Any:
    if op in ("count", "sum"):
        return 0
    if op == "avg":
        return [0, 0]
    if op == "collect":
        return []
    return None


def _final(op: str, state: Any) -> Any:
    if op == "avg":
        total, n = state
        return total / n if n else None
    return state


def _iso(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
