"""``data:generate_from_list``: turn a list into a stream of records."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, register


@register("data:generate_from_list", layer="data", aliases=("generate:from_list",))
class GenerateFromList(Module):
    """Emit each item of ``items`` as a record.

    Mappings are emitted as they are; any other item ``v`` becomes
    ``{"item": v}`` (or ``{<field>: v}`` with ``field``).

    Example:
        - name: numbers
          process:
            module: data:generate_from_list
            params: { items: [1, 2, 3] }
        - name: users
          process:
            module: data:generate_from_list
            params: { items: "{{ api.json_body.users }}" }
    """

    class Params(ModuleParams):
        items: list[Any] = Field(..., description="The items; scalars become {field: value}")
        field: str = Field(
            "item", min_length=1, description="Field name used for non-mapping items"
        )

    produces = True
    summary = {"records_generated": "number of records emitted"}

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        field = params.field
        await ctx.output.send_many(
            [item if isinstance(item, dict) else {field: item} for item in params.items]
        )
        return {"records_generated": len(params.items)}
