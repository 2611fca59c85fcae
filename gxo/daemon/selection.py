"""Which workloads an apply touches: per-workload checksums, instance owners, stream producers."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from gxo.config.loader import LoadedPlaybook
from gxo.engine.instances import instance_roots, instance_workloads

__all__ = ["owners", "with_producers", "workload_checksum"]


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


def with_producers(loaded: LoadedPlaybook, names: list[str], exclude: set[str]) -> list[str]:
    """``names`` plus the run_once stream producers they read, in playbook order.

    Records are not kept in the state: a re-run consumer needs its producer to run too.
    """
    graph = loaded.graph
    selected = set(names)
    todo = list(names)
    while graph is not None and todo:
        for producer in graph.stream_deps.get(todo.pop(), ()):
            index = loaded.workload_index(producer)
            policy = (
                loaded.playbook.workloads[index].lifecycle.policy if index is not None else None
            )
            if producer not in selected and producer not in exclude and policy == "run_once":
                selected.add(producer)
                todo.append(producer)
    return [w.name for w in loaded.playbook.workloads if w.name in selected]
