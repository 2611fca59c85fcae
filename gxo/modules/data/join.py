"""``data:join``: SQL-like hash join of two input streams."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, StreamRole, raw_template, register
from gxo.modules.data._records import MISSING, field_getter, hashable


class JoinSide(ModuleParams):
    stream: str = Field(..., description="Name of the producer (one of stream_inputs)")
    role: Literal["build", "probe"] | None = Field(
        None,
        description="build: read fully into memory; probe: streamed. Default: first is build, second probe",
    )
    field: str | None = Field(None, description="Join key field (dotted path, e.g. user.id)")
    template: str | None = Field(
        None, description="Join key as a template over `record` (instead of field)"
    )

    @model_validator(mode="after")
    def _key(self) -> JoinSide:
        if (self.field is None) == (self.template is None):
            raise ValueError("give exactly one of 'field' or 'template'")
        return self


class JoinOutput(ModuleParams):
    merge_strategy: Literal["merge", "nest"] = Field(
        "merge",
        description="merge: one flat record (right side wins on clashes); nest: {left_key: ..., right_key: ...}",
    )
    nesting_keys: dict[str, str] | None = Field(
        None, description="nest only: stream name → key (default: the stream name)"
    )


class JoinLimits(ModuleParams):
    max_build_records: int | None = Field(
        None, ge=1, description="Fail if the build side holds more records"
    )


@register("data:join", layer="data", aliases=("stream:join",))
class Join(Module):
    """Join two input streams on a key, like SQL.

    The first entry of ``on`` is the *left* side, the second the *right* side.
    ``inner`` emits matching pairs; ``left``/``right`` also emit the unmatched
    records of that side; ``outer`` emits unmatched records of both. The build
    side is read fully into a hash table; the probe side streams through it.
    Records with a missing or null key never match. (v0.1.2a named the outer
    side by role — ``left`` kept unmatched *probe* records — and called the merge
    strategies ``flat``/``nested``; ``gxo run`` and ``gxo migrate`` translate
    legacy playbooks to the meaning here.)

    Example:
        - name: users_with_orders
          process:
            module: data:join
            params:
              join_type: left
              on:
                - { stream: users, field: id }
                - { stream: orders, field: user_id }
          stream_inputs: [users, orders]
    """

    class Params(ModuleParams):
        join_type: Literal["inner", "left", "right", "outer"] = Field(
            "inner", description="inner | left | right | outer"
        )
        # Module-rendered: a side's `template` key is evaluated per record.
        on: list[JoinSide] = raw_template(
            ...,
            min_length=2,
            max_length=2,
            description="The left and right sides, each with its key",
        )
        output: JoinOutput = Field(
            default_factory=JoinOutput, description="Shape of joined records"
        )
        limits: JoinLimits = Field(default_factory=JoinLimits, description="Safety limits")

        @model_validator(mode="after")
        def _roles(self) -> Join.Params:
            left, right = self.on
            if left.stream == right.stream:
                raise ValueError("the two sides must name different streams")
            roles = [left.role, right.role]
            if roles[0] is None and roles[1] is None:
                left.role, right.role = "build", "probe"
            elif roles[0] is None:
                left.role = "probe" if roles[1] == "build" else "build"
            elif roles[1] is None:
                right.role = "probe" if roles[0] == "build" else "build"
            if left.role == right.role:
                raise ValueError("one side must be 'build' and the other 'probe'")
            return self

    consumes = StreamRole.required
    produces = True
    summary = {
        "records_joined": "records emitted",
        "build_records": "records read from the build side",
        "probe_records": "records read from the probe side",
        "unmatched_left": "left records without a match",
        "unmatched_right": "right records without a match",
    }

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        left, right = params.on
        build, probe = (left, right) if left.role == "build" else (right, left)
        build_is_left = build is left
        keep_left = params.join_type in ("left", "outer")
        keep_right = params.join_type in ("right", "outer")
        keep_build, keep_probe = (
            (keep_left, keep_right) if build_is_left else (keep_right, keep_left)
        )
        build_key = _key_fn(ctx, build)
        probe_key = _key_fn(ctx, probe)
        limit = params.limits.max_build_records

        table: dict[Any, list[dict[str, Any]]] = {}
        unkeyed_build: list[dict[str, Any]] = []
        n_build = 0
        async for batch in ctx.input_from(build.stream).batches():
            for record in batch:
                n_build += 1
                if limit is not None and n_build > limit:
                    raise ctx.fail(
                        f"build side '{build.stream}' has more than max_build_records={limit} records"
                    )
                key = build_key(record)
                if key is MISSING:
                    unkeyed_build.append(record)
                else:
                    table.setdefault(key, []).append(record)

        matched: set[Any] = set()
        n_probe = n_out = unmatched_probe = 0
        combine = _combiner(params.output, left.stream, right.stream)
        async for batch in ctx.input_from(probe.stream).batches():
            for record in batch:
                n_probe += 1
                key = probe_key(record)
                rows = table.get(key) if key is not MISSING else None
                if rows:
                    matched.add(key)
                    for row in rows:
                        pair = (row, record) if build_is_left else (record, row)
                        await ctx.emit(combine(*pair))
                        n_out += 1
                else:
                    unmatched_probe += 1
                    if keep_probe:
                        await ctx.emit(
                            combine(None, record) if build_is_left else combine(record, None)
                        )
                        n_out += 1

        unmatched_build = len(unkeyed_build) + sum(
            len(v) for k, v in table.items() if k not in matched
        )
        if keep_build:
            leftovers = unkeyed_build + [
                r for k, rows in table.items() if k not in matched for r in rows
            ]
            for row in leftovers:
                await ctx.emit(combine(row, None) if build_is_left else combine(None, row))
                n_out += 1
        return {
            "records_joined": n_out,
            "build_records": n_build,
            "probe_records": n_probe,
            "unmatched_left": unmatched_build if build_is_left else unmatched_probe,
            "unmatched_right": unmatched_probe if build_is_left else unmatched_build,
        }


def _key_fn(ctx: ModuleContext, side: JoinSide) -> Any:
    if side.template is not None:
        render = ctx.compile(side.template)

        def by_template(record: dict[str, Any]) -> Any:
            value = render(path=f"on.{side.stream}.template", record=record)
            return MISSING if value is None else hashable(value)

        return by_template
    get = field_getter(side.field or "")

    def by_field(record: dict[str, Any]) -> Any:
        value = get(record)
        return MISSING if value is None or value is MISSING else hashable(value)

    return by_field


def _combiner(output: JoinOutput, left_name: str, right_name: str) -> Any:
    if output.merge_strategy == "nest":
        keys = output.nesting_keys or {}
        lk, rk = keys.get(left_name, left_name), keys.get(right_name, right_name)

        def nest(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
            return {lk: left, rk: right}

        return nest

    def merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
        out = dict(left) if left else {}
        if right:
            out.update(right)
        return out

    return merge
