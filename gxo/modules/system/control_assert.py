"""``control:assert``: fail the workload unless a condition holds."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, raw_template, register
from gxo.template.filters import is_truthy


@register("control:assert", layer="system")
class Assert(Module):
    """Fail the workload unless ``condition`` is truthy.

    ``condition`` is an expression, braced (``{{ x > 1 }}``) or bare
    (``x > 1``). Falsy: false, 0, "", "false", "0", none, empty list/dict.

    Example:
        - name: api_is_up
          process:
            module: control:assert
            params:
              condition: "resp.status_code == 200"
              fail_message: "API did not answer 200"
    """

    class Params(ModuleParams):
        condition: Any = raw_template(
            ..., expression=True, description="Expression that must be truthy (braced or bare)"
        )
        fail_message: str | None = Field(
            None, description="Message of the failure when the condition is falsy"
        )

    summary = {
        "condition_met": "always true on success",
        "evaluated_value": "what the condition evaluated to",
    }

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        value = ctx.evaluate(params.condition, path="condition")
        if not is_truthy(value):
            message = (
                params.fail_message
                or f"assertion failed: {params.condition!r} evaluated to {value!r}"
            )
            raise ctx.fail(message, summary={"condition_met": False, "evaluated_value": value})
        return {"condition_met": True, "evaluated_value": value}
