"""``passthrough``: forward every input record unchanged."""

from __future__ import annotations

from typing import Any

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, StreamRole, register


@register("passthrough", layer="data")
class Passthrough(Module):
    """Forward every record of every input stream, unchanged, to the output stream.

    The simplest stream transformer: builds fan-in (several inputs) and fan-out
    (several consumers) topologies.

    Example:
        - name: merged
          process: { module: passthrough }
          stream_inputs: [source_a, source_b]
    """

    class Params(ModuleParams):
        pass

    consumes = StreamRole.required
    produces = True
    summary = {"records_processed": "records forwarded"}

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        count = 0
        send_many = ctx.output.send_many
        async for batch in ctx.batches():
            count += len(batch)
            await send_many(batch)
        return {"records_processed": count}
