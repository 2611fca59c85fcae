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

To consume the records of a long-running producer as they are emitted, the daemon
has the ``workload:NAME`` event source: each engine run of NAME gets extra links
(``Engine(stream_taps=...)``, :mod:`gxo.daemon.sources.workload`) read by the event
source, one event — one instance of the consumer — per record, with the links'
back-pressure.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from gxo.config.loader import LoadedPlaybook
from gxo.config.models import Playbook, Policy
from gxo.engine.context import Status
from gxo.engine.dag import WorkloadGraph
from gxo.errors import GxoError
from gxo.state.store import Store

__all__ = [
    "check_selection",
    "instance_roots",
    "instance_workloads",
    "missing_upstream",
    "outside_views",
    "scoped_shape",
    "standalone_workloads",
    "with_stream_producers",
]


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
    return with_stream_producers(loaded, selected)


def with_stream_producers(
    loaded: LoadedPlaybook, names: Iterable[str], exclude: AbstractSet[str] = frozenset()
) -> list[str]:
    """``names`` plus the ``run_once`` stream producers they read (transitively, none of
    ``exclude``), in playbook order: records are not kept in the state, so a consumer
    that runs needs its producers to run with it."""
    graph = _graph(loaded)
    by_name = {w.name: w for w in loaded.playbook.workloads}
    selected = set(names)
    todo = list(selected)
    while todo:
        for producer in graph.stream_deps[todo.pop()]:
            if (
                producer not in selected
                and producer not in exclude
                and by_name[producer].lifecycle.policy == Policy.run_once
            ):
                selected.add(producer)
                todo.append(producer)
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


# -- used by the Engine for an instance run ------------------------------------------


def check_selection(playbook: Playbook, only: set[str] | None, allow_lifecycles: bool) -> None:
    """Unknown names in ``only``, and non-run_once workloads unless allowed, are errors."""
    if only is not None:
        unknown = sorted(set(only) - {w.name for w in playbook.workloads})
        if unknown:
            raise GxoError(f"unknown workload(s) to run: {', '.join(unknown)}")
    if allow_lifecycles:
        return
    for w in playbook.workloads:
        if (only is None or w.name in only) and w.lifecycle.policy != Policy.run_once:
            raise GxoError(
                f"workload '{w.name}' has lifecycle '{w.lifecycle.policy.value}': the engine "
                "runs it only for the daemon (allow_lifecycles=True)"
            )


def scoped_shape(graph: WorkloadGraph, inside: Container[str]) -> dict[str, Any]:
    """The graph's edges and levels limited to ``inside`` (RUN_STARTED of an instance)."""
    edges = [list(e) for e in graph.edges() if e[0] in inside and e[1] in inside]
    levels = [[n for n in level if n in inside] for level in graph.levels()]
    return {"edges": edges, "levels": [level for level in levels if level]}


def outside_views(
    playbook: Playbook,
    inside: Container[str],
    store: Store | None,
    initial_results: Mapping[str, Any] | None,
) -> dict[str, dict[str, Any]]:
    """``_gxo.workloads.X`` for each workload outside the run: Completed if X has a result."""
    results = initial_results or {}
    views: dict[str, dict[str, Any]] = {}
    for w in playbook.workloads:
        if w.name in inside:
            continue
        key = w.register_key
        summary, ran = None, False
        if key and store is not None and key in store:
            summary, ran = store.get(key), True
        elif key and key in results:
            summary, ran = results[key], True
        views[w.name] = {
            "status": Status.COMPLETED.value if ran else Status.PENDING.value,
            "reason": "ran outside this instance" if ran else "outside this instance",
            "error": None,
            "attempts": 0,
            "summary": summary,
            "records_in": 0,
            "records_out": 0,
        }
    return views


def missing_upstream(
    playbook: Playbook,
    graph: WorkloadGraph,
    name: str,
    dep: str,
    store: Store | None,
    initial_results: Mapping[str, Any] | None,
) -> str | None:
    """Why ``name`` cannot run without ``dep`` (outside the run), or None if it can.

    Only a read of ``dep``'s register key with no result anywhere stops it (a
    ``depends_on``, a ``_gxo.workloads`` read or a guarded read does not).
    """
    key = playbook.workload(dep).register_key
    if not key or key in (initial_results or {}):
        return None
    if store is not None and key in store:
        return None
    for ref in graph.refs[name]:
        if key in ref.roots and key not in ref.optional:
            return (
                f"reads '{key}', registered by '{dep}', which is outside this instance and "
                f"has no result yet (it must complete before '{name}' can run)"
            )
    return None
