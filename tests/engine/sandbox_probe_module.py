"""A module registered by a test, not built in: the sandbox imports it by name."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gxo.modules.base import Module, ModuleParams, register


@register("tests:sandbox_probe", layer="test")
class SandboxProbe(Module):
    """Reports where it runs and uses the context API across the boundary.

    Example:
        greeting: hi
    """

    class Params(ModuleParams):
        greeting: str = Field(..., description="echoed back")

    async def perform(self, ctx: Any, params: Params) -> dict[str, Any]:
        import os
        import socket

        ctx.log(f"{params.greeting} from {socket.gethostname()}")
        ctx.count("probes")
        ctx.publish({"stage": "half"})
        rendered = ctx.render("{{ factor * 2 }}")
        truthy = ctx.truthy("factor > 1")
        state = ctx.get_state("factor")
        await ctx.to_thread(os.getpid)
        deferred: list[str] = []

        async def later() -> None:
            deferred.append("ran")

        ctx.defer(later)
        try:
            ctx.input_from("nobody")
        except Exception as exc:
            refused = str(exc)
        else:  # pragma: no cover
            refused = ""
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "rendered": rendered,
            "truthy": truthy,
            "state": state,
            "refused": refused,
            "redacted": ctx.redact_excerpt("abc", 2),
            "workspace": str(ctx.workspace),
            "run_id": ctx.run_id,
        }
