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
        initial_results=upstream_results,  # registered results from the daemon's state
        results_store=state.results(playbook),
        allow_lifecycles=True,
    )

What is decided for the edges of an instance (see :class:`~gxo.engine.scheduler.Engine`):

* upstream register keys resolve from ``initial_results``; ``_gxo.workloads.X`` of
  an upstream X reads ``Completed`` when X's register key is there, else ``Pending``;
* a dependency on an upstream workload is satisfied, unless the dependent reads
  that workload's register key and no result exists: the dependent then fails
  with an error naming the key and the producer;
* a stream from an upstream producer is not replayed: the consumer's input from
  it is empty (streams are not state). Streams inside the instance, from the root
  to its consumers, flow as in any run.
"""

from __future__ import annotations

from gxo.config.loader import LoadedPlaybook
from gxo.config.models import Policy
from gxo.engine.dag import WorkloadGraph
from gxo.errors import GxoError

__all__ = ["instance_workloads"]


def instance_workloads(loaded: LoadedPlaybook, root: str) -> list[str]:
    """``root`` and every ``run_once`` workload downstream of it, in playbook order."""
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
    return [n for n in graph.names if n in selected]


def _graph(loaded: LoadedPlaybook) -> WorkloadGraph:
    if loaded.graph is not None:
        return loaded.graph
    from gxo.config.validate import validate_playbook

    return validate_playbook(loaded)
