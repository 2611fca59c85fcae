"""Where in the playbook a workload's run-time failure comes from.

``gxo run`` and ``gxo test`` both print a failure as ``file:line:col: workload
'x' (module) failed: ...``. The line is that of the failing template when the
error names one (``param 'args[0]': undefined name ...``, the form the runner
gives every template error), else that of the workload.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gxo.config.loader import LoadedPlaybook
    from gxo.errors import Location

__all__ = ["failure_location"]

_PARAM = re.compile(r"\bparam '([^']+)':")
_WORKLOAD_FIELDS = ("when", "loop", "retry")  # rendered fields outside process.params


def failure_location(loaded: LoadedPlaybook, workload: str, error: str | None) -> Location:
    """The failing template's position if ``error`` names one, else the workload's."""
    from gxo.engine.dag import _split

    match = _PARAM.search(error or "")
    if match is None:
        return loaded.workload_location(workload)
    parts = _split(match.group(1))
    sub = (
        tuple(parts)
        if parts[:1] and parts[0] in _WORKLOAD_FIELDS
        else ("process", "params", *parts)
    )
    return loaded.workload_location(workload, *sub)
