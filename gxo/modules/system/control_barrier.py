"""``control:barrier``: wait until every input has ended."""

from __future__ import annotations

from typing import Any

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, StreamRole, register


@register("control:barrier", layer="system")
class Barrier(Module):
    """Complete once every input has ended; records are read and discarded.

    A fan-in synchronisation point: workloads that depend on the barrier run only
    after all its inputs completed. As in the upstream engine, ``stream_inputs``
    may name workloads that produce no stream (an ``exec`` build step): the
    barrier waits for those like ``depends_on``, so it is Skipped ("dependency
    failed") when one of them failed without ``ignore_errors``.

    Example:
        - name: build_backend
          process: { module: exec, params: { command: make, args: [backend] } }
        - name: build_frontend
          process: { module: exec, params: { command: make, args: [frontend] } }
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
    waits_for_any_input = True
    summary = {
        "synchronized_streams": "names of the inputs waited for (every stream_inputs entry)",
        "records_discarded": "records read and dropped",
    }

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        await ctx.input.drain()
        return {
            "synchronized_streams": list(ctx.state.workload.stream_inputs),
            "records_discarded": ctx.input.records_in,
        }
