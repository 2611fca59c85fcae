"""``control:barrier``: wait until every input stream has ended."""

from __future__ import annotations

from typing import Any

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, ModuleParams, StreamRole, register


@register("control:barrier", layer="system")
class Barrier(Module):
    """Complete once every input stream has ended; records are read and discarded.

    A fan-in synchronisation point: workloads that depend on the barrier run only
    after all its producers completed.

    Example:
        - name: built
          process: { module: control:barrier }
          stream_inputs: [build_backend, build_frontend]
        - name: deploy
          when: "_gxo.workloads.built.status == 'Completed'"
          process: { module: exec, params: { command: ./deploy.sh } }
    """

    class Params(ModuleParams):
        pass

    consumes = StreamRole.required
    summary = {
        "synchronized_streams": "names of the producers waited for",
        "records_discarded": "records read and dropped",
    }

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        await ctx.input.drain()
        return {
            "synchronized_streams": [ch.producer for ch in ctx.input.channels],
            "records_discarded": ctx.input.records_in,
        }
