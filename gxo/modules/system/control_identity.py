"""``control:identity``: return the params as the summary."""

from __future__ import annotations

from typing import Any

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, FreeParams, Module, register


@register("control:identity", layer="system")
class Identity(Module):
    """Return the (rendered) params unchanged as the summary.

    Builds structured values in state, reshapes data declaratively, and shows
    what templates render to while debugging.

    Example:
        - name: user
          process:
            module: control:identity
            params: { name: jdoe, uid: 1001, groups: [users, docker] }
          register: new_user
    """

    Params = FreeParams
    summary = {"*": "exactly the params given"}

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: FreeParams) -> dict[str, Any]:
        return dict(params.model_extra or {})
