"""``data:filter``: keep the records for which a condition holds."""

from __future__ import annotations

from typing import Any

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
from gxo.template.filters import is_truthy


@register("data:filter", layer="data")
class Filter(Module):
    """Pass on the records for which ``condition`` is truthy; drop the others.

    ``condition`` is an expression over ``record`` (and the playbook's names),
    braced (``{{ record.n > 2 }}``) or bare (``record.n > 2``). Falsy: false,
    0, "", "false", "0", none, empty list/dict. Records pass unchanged. A
    condition that fails on a record (a missing field, a type error) makes it a
    bad record (see ``on_error``); guard optional fields with
    ``record.x is defined`` or ``record.get('x')``.

    Example:
        - name: big_orders
          process:
            module: data:filter
            params: { condition: "record.total > min_total and record.status == 'paid'" }
          stream_inputs: [orders]
    """

    class Params(RecordErrorParams):
        condition: Any = raw_template(
            ...,
            expression=True,
            description="Expression over `record` that must be truthy to keep it (braced or bare)",
        )
        on_error: OnError = on_error_field()
        dead_letter: DeadLetter | None = dead_letter_field()

    consumes = StreamRole.required
    produces = True
    summary = {
        "records_passed": "records that met the condition",
        "records_filtered": "records dropped because the condition was falsy",
        "bad_records": "records skipped or dead-lettered under on_error",
    }

    path_params = ("dead_letter.path",)

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        condition = params.condition
        if isinstance(condition, str) and condition.strip():
            test = ctx.compile(condition, bare=True)
        else:
            constant = is_truthy(condition)

            def test(path: str = "", **_: Any) -> bool:
                return constant

        send = ctx.output.send
        passed = index = 0
        async with BadRecords(ctx, params) as bad:
            async for batch in ctx.batches():
                for record in batch:
                    index += 1
                    try:
                        keep = is_truthy(test("condition", record=record))
                    except GxoError as exc:
                        bad(index, record, exc)
                        continue
                    if keep:
                        await send(record)
                        passed += 1
                await bad.maybe_flush()
            return {
                "records_passed": passed,
                "records_filtered": index - passed - bad.count,
                "bad_records": bad.count,
            }
