"""Instances: the sub-DAG the daemon runs for one tick of a long-running workload.

An instance of a ``supervise`` / ``scheduled`` / ``event_driven`` workload (its
*root*) runs the root and the ``run_once`` workloads downstream of it, through
state references, ``depends_on`` or streams (SPEC §7). A downstream workload that
is itself long-running is not part of it: it is the root of its own instances,
and nothing past it is reached through it.

The instance runs on the one engine::

    names = instance_workloads(loaded, "ticker")
    engine = Engine(
        loaded,
        only=set(names),
        initial_results={},  # marks an instance run; upstream results come from:
        results_store=state.results(playbook),  # the daemon's stored results
        allow_lifecycles=True,
    )

``initial_results`` may also carry upstream results explicitly (they are read
when the run's store has no value under the key). At apply, the run_once
workloads that belong to no instance are :func:`standalone_workloads`.

What is decided for the edges of an instance (see :class:`~gxo.engine.scheduler.Engine`):

* upstream register keys resolve from the run's store, else from
  ``initial_results``; ``_gxo.workloads.X`` of
  an upstream X reads ``Completed`` when X's register key has a value (in the
  store or in ``initial_results``), else ``Pending``;
* a dependency on an upstream workload is satisfied, unless the dependent reads
  that workload's register key and no result exists: the dependent then fails
  with an error naming the key and the producer;
* a ``run_once`` stream producer that a workload of the instance reads from is
  part of the instance (it runs again each time: records are not state); a
  long-running producer is not (it has its own instances), and the consumer's
  input from it is empty. Streams inside the instance, from the root to its
  consumers, flow as in any run.
"""

from __future__ import annotations

from gxo.config.loader import LoadedPlaybook
from gxo.config.models import Policy
from gxo.engine.dag import WorkloadGraph
from gxo.errors import GxoError

__all__ = ["instance_roots", "instance_workloads", "standalone_workloads"]


def instance_workloads(loaded: LoadedPlaybook, root: str) -> list[str]:
    """``root`` and every ``run_once`` workload downstream of it, in playbook order.

    Plus the ``run_once`` stream producers those workloads read from: a stream is
    not kept in the daemon's state, so a consumer in the instance would otherwise
    read nothing (see the module docstring).
    """
    playbook = loaded.playbook
    by_name = {w.name: w for w in playbook.workloads}
    if root not in by_name:
        raise GxoError(f"unknown workload '{root}' in playbook '{playbook.name}'")
    graph = _graph(loaded)
    selected = {root}
    frontier = [root]
    while frontier:
        name = frontier.pop()
        for nxt in (*graph.dependents[name], *graph.stream_consumers[name]):
            if nxt in selected or by_name[nxt].lifecycle.policy != Policy.run_once:
                continue  # a long-running dependent roots its own instances
            selected.add(nxt)
            frontier.append(nxt)
    producers = list(selected)
    while producers:
        for producer in graph.stream_deps[producers.pop()]:
            if producer not in selected and by_name[producer].lifecycle.policy == Policy.run_once:
                selected.add(producer)
                producers.append(producer)
    return [n for n in graph.names if n in selected]


def instance_roots(loaded: LoadedPlaybook) -> list[str]:
    """The workloads that have instances: every non-``run_once`` one, in playbook order."""
    return [w.name for w in loaded.playbook.workloads if w.lifecycle.policy != Policy.run_once]


def standalone_workloads(loaded: LoadedPlaybook) -> list[str]:
    """The ``run_once`` workloads in no instance (they run at apply)."""
    owned: set[str] = set()
    for root in instance_roots(loaded):
        owned.update(instance_workloads(loaded, root))
    return [
        w.name
        for w in loaded.playbook.workloads
        if w.lifecycle.policy == Policy.run_once and w.name not in owned
    ]


def _graph(loaded: LoadedPlaybook) -> WorkloadGraph:
    if loaded.graph is not None:
        return loaded.graph
    from gxo.config.validate import validate_playbook

    return validate_playbook(loaded)
