"""Which workloads an apply touches: per-workload checksums and instance owners."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from gxo.config.loader import LoadedPlaybook
from gxo.engine.instances import instance_roots, instance_workloads

__all__ = ["owners", "workload_checksum"]


def workload_checksum(loaded: LoadedPlaybook, name: str, variables: dict[str, Any]) -> str:
    """A digest of the workload's canonical definition and of the variables it may see.

    Playbook vars and ``-e`` values are part of it: changing one may change what the
    workload does, so it counts as a change of every workload (the safe side).
    """
    index = loaded.workload_index(name)
    assert index is not None
    canonical = {
        "workload": loaded.playbook.workloads[index].model_dump(mode="json"),
        "vars": loaded.playbook.vars,
        "extra": variables,
    }
    text = json.dumps(canonical, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def owners(loaded: LoadedPlaybook) -> dict[str, list[str]]:
    """run_once workload → the long-running roots whose instances run it."""
    owners: dict[str, list[str]] = {}
    for root in instance_roots(loaded):
        for name in instance_workloads(loaded, root):
            if name != root:
                owners.setdefault(name, []).append(root)
    return owners
