"""The workload graph: edges inferred from templates, ``stream_inputs`` and ``depends_on``.

Three kinds of edge, all producer → consumer:

* state: the consumer's templates read the producer's ``register`` key or
  ``_gxo.workloads.<producer>``; the consumer starts after the producer ends;
* order: ``depends_on`` (and a barrier's ``stream_inputs`` that produce no stream);
  same scheduling as a state edge;
* stream: ``stream_inputs``; both run at the same time, records flow between them.

Workloads joined by stream edges form a *pipeline* (a connected component over
stream edges). The scheduler starts a pipeline as one unit, once every state or
order dependency of its members has ended. A state edge inside a pipeline, or a
cycle between pipelines, could deadlock (a producer completes only after its
consumers drained it) and is rejected.

The hot path uses the standard library (``graphlib``); networkx, which costs
~0.3 s to import, is loaded only by :meth:`WorkloadGraph.to_networkx` for
analysis and display (levels for the TUI, ``gxo validate --graph``).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Hashable, Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import TYPE_CHECKING, Any, TypeVar

from gxo.template.engine import is_template
from gxo.template.references import find_references, iter_template_paths

if TYPE_CHECKING:
    import networkx as nx

    from gxo.config.models import Playbook

__all__ = ["Pipeline", "WorkloadGraph", "template_sources"]

# Names every template may use without a definition in the playbook.
BUILTIN_NAMES = frozenset(
    {
        "_gxo",
        "secret",
        "range",
        "dict",
        "lipsum",
        "cycler",
        "joiner",
        "namespace",
        "true",
        "false",
        "none",
    }
)


@dataclass
class Pipeline:
    """Workloads connected by streams; scheduled together as one unit."""

    index: int
    members: list[str]
    deps: set[int] = field(default_factory=set)  # pipelines this one waits for
    dependents: set[int] = field(default_factory=set)


@dataclass
class TemplateRef:
    """Where a workload reads a name: ``path`` is its field path (``process.params.url``)."""

    path: tuple[Any, ...]
    source: str
    roots: frozenset[str]
    workloads: frozenset[str]
    optional: frozenset[str] = frozenset()


def template_sources(
    workload: Any, expression_paths: frozenset[str] = frozenset()
) -> list[tuple[tuple[Any, ...], str, bool]]:
    """``(path, template, bare)`` for each template string a workload contains.

    ``expression_paths`` are module-rendered params that hold a condition which
    may be written bare (``data:filter`` ``condition``).
    """
    out: list[tuple[tuple[Any, ...], str, bool]] = []
    if isinstance(workload.when, str) and workload.when.strip():
        out.append((("when",), workload.when, True))
    if isinstance(workload.loop, str):
        out.append((("loop",), workload.loop, False))
    elif isinstance(workload.loop, list):
        for p, s in iter_template_paths(workload.loop, ("loop",)):
            out.append((p, s, False))
    for p, s in iter_template_paths(workload.process.params, ("process", "params")):
        out.append((p, s, False))
    # Module-rendered conditions written bare, e.g. data:filter condition: record.n > 2.
    for key in expression_paths:
        value = workload.process.params.get(key)
        if isinstance(value, str) and value.strip() and not is_template(value):
            out.append((("process", "params", key), value, True))
    return out


def _split(dotted: str) -> list[Any]:
    """``a.b[0].c`` as ``["a", "b", 0, "c"]``, for paths quoted in error messages.

    Best effort: a key may itself hold ``[`` (``a[ctual``), so a bracket that
    does not close on an integer index is kept as part of the key, never raised on.
    """
    parts: list[Any] = []
    for chunk in dotted.split("."):
        while "[" in chunk:
            head, rest = chunk.split("[", 1)
            idx, closed, tail = rest.partition("]")
            if not closed or not (idx.isascii() and idx.isdigit()):
                break
            if head:
                parts.append(head)
            parts.append(int(idx))
            chunk = tail
        if chunk:
            parts.append(chunk)
    return parts


_N = TypeVar("_N", bound=Hashable)


def has_cycle(deps: Mapping[_N, Collection[_N]]) -> bool:
    """Whether the graph ``node -> its dependencies`` has a cycle (Kahn's algorithm).

    A third of the cost of graphlib's ``prepare``, which also builds the cycle's
    path: validation asks this of every playbook and graphlib only when the
    answer is yes, for the path to print.
    """
    waiting = {n: len(ds) for n, ds in deps.items()}
    dependents: dict[_N, list[_N]] = {}
    for n, ds in deps.items():
        for d in ds:
            dependents.setdefault(d, []).append(n)
            if d not in waiting:
                waiting[d] = 0  # a dependency without an entry of its own
    ready = [n for n, count in waiting.items() if not count]
    done = 0
    while ready:
        n = ready.pop()
        done += 1
        for m in dependents.get(n, ()):
            waiting[m] -= 1
            if not waiting[m]:
                ready.append(m)
    return done < len(waiting)


class WorkloadGraph:
    """Dependencies of a playbook's workloads, and the pipelines they form."""

    def __init__(
        self,
        playbook: Playbook,
        expression_paths: dict[str, frozenset[str]] | None = None,
        order_inputs: dict[str, set[str]] | None = None,
    ) -> None:
        self.names: list[str] = [w.name for w in playbook.workloads]
        self.register_owner: dict[str, str] = {
            w.register_key: w.name for w in playbook.workloads if w.register_key
        }
        self.state_deps: dict[str, set[str]] = {n: set() for n in self.names}
        self.order_deps: dict[str, set[str]] = {n: set() for n in self.names}
        self.stream_deps: dict[str, list[str]] = {n: [] for n in self.names}
        self.stream_consumers: dict[str, list[str]] = {n: [] for n in self.names}
        self.refs: dict[str, list[TemplateRef]] = {n: [] for n in self.names}
        expression_paths = expression_paths or {}
        known = set(self.names)
        for w in playbook.workloads:
            for path, source, bare in template_sources(
                w, expression_paths.get(w.name, frozenset())
            ):
                roots, wrefs, optional = find_references(source, bare=bare)
                self.refs[w.name].append(TemplateRef(path, source, roots, wrefs, optional))
                for root in roots:
                    owner = self.register_owner.get(root)
                    if owner is not None:
                        self.state_deps[w.name].add(owner)
                for target in wrefs:
                    if target in known:
                        self.state_deps[w.name].add(target)
            self.order_deps[w.name].update(d for d in w.depends_on if d in known)
            # stream_inputs that produce no stream, waited for like depends_on
            # (control:barrier's upstream CI fan-in); validation decides which.
            waited = (order_inputs or {}).get(w.name, ())
            for producer in w.stream_inputs:
                if producer in waited:
                    self.order_deps[w.name].add(producer)
                elif producer in known:
                    self.stream_deps[w.name].append(producer)
                    self.stream_consumers[producer].append(w.name)
        self.dependents: dict[str, set[str]] = {n: set() for n in self.names}
        for n in self.names:
            for d in self.state_deps[n] | self.order_deps[n]:
                if d != n:
                    self.dependents[d].add(n)
        self.pipelines: list[Pipeline] = []
        self.pipeline_of: dict[str, int] = {}

    # -- analysis ------------------------------------------------------------------

    def all_deps(self, name: str) -> set[str]:
        """Every workload ``name`` waits for or reads from (state, order and stream)."""
        return self.state_deps[name] | self.order_deps[name] | set(self.stream_deps[name])

    def find_cycle(self) -> list[str] | None:
        """A dependency cycle as a closed path in data-flow order (``[a, b, a]``: a feeds b), or None."""
        deps = {n: self.all_deps(n) for n in self.names}
        if not has_cycle(deps):
            return None
        sorter: TopologicalSorter[str] = TopologicalSorter()
        for n, ds in deps.items():
            sorter.add(n, *ds)
        try:
            sorter.prepare()
        except CycleError as exc:
            # graphlib lists each node before the node that depends on it: data-flow order.
            return list(exc.args[1])
        return None

    def build_pipelines(self) -> list[str]:
        """Group workloads into pipelines; returns deadlock problems (empty if none)."""
        parent = {n: n for n in self.names}

        def find(x: str) -> str:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for consumer, producers in self.stream_deps.items():
            for p in producers:
                parent[find(consumer)] = find(p)
        groups: dict[str, list[str]] = {}
        for n in self.names:  # playbook order inside each pipeline
            groups.setdefault(find(n), []).append(n)
        self.pipelines = [Pipeline(i, members) for i, members in enumerate(groups.values())]
        self.pipeline_of = {m: p.index for p in self.pipelines for m in p.members}
        problems: list[str] = []
        for n in self.names:
            for d in sorted(self.state_deps[n] | self.order_deps[n]):
                a, b = self.pipeline_of[d], self.pipeline_of[n]
                if a == b and d != n:
                    problems.append(
                        f"workload '{n}' waits for '{d}' (state or depends_on) while both are in the same "
                        f"stream pipeline ({', '.join(self.pipelines[a].members)}): '{d}' completes only "
                        f"after its stream is drained, so this would deadlock"
                    )
                elif a != b:
                    self.pipelines[b].deps.add(a)
                    self.pipelines[a].dependents.add(b)
        if not problems and has_cycle({pipe.index: pipe.deps for pipe in self.pipelines}):
            sorter: TopologicalSorter[int] = TopologicalSorter()
            for pipe in self.pipelines:
                sorter.add(pipe.index, *pipe.deps)
            try:
                sorter.prepare()
            except CycleError as exc:
                members = [", ".join(self.pipelines[i].members) for i in exc.args[1]]
                problems.append(
                    "stream pipelines wait for each other in a cycle (would deadlock): "
                    + " -> ".join(f"[{m}]" for m in members)
                )
        return problems

    # The graph never changes after validation, so the analyses below are memoized:
    # every run (and every TUI refresh) of the same playbook reuses them.

    @functools.cached_property
    def _order(self) -> tuple[str, ...]:
        sorter: TopologicalSorter[str] = TopologicalSorter()
        for n in self.names:
            sorter.add(n, *self.all_deps(n))
        return tuple(sorter.static_order())

    def order(self) -> list[str]:
        """Workloads in a valid execution order (dependencies first)."""
        return list(self._order)

    @functools.cached_property
    def _levels(self) -> tuple[tuple[str, ...], ...]:
        depth: dict[str, int] = {}
        for n in self._order:
            depth[n] = 1 + max((depth[d] for d in self.all_deps(n)), default=-1)
        out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for n in self.names:
            out[depth[n]].append(n)
        return tuple(tuple(level) for level in out)

    def levels(self) -> list[list[str]]:
        """Workloads grouped by dependency depth (for display)."""
        return [list(level) for level in self._levels]

    @functools.cached_property
    def _edges(self) -> tuple[tuple[str, str, str], ...]:
        out = []
        for n in self.names:
            out += [(d, n, "state") for d in sorted(self.state_deps[n])]
            out += [(d, n, "order") for d in sorted(self.order_deps[n] - self.state_deps[n])]
            out += [(d, n, "stream") for d in self.stream_deps[n]]
        return tuple(out)

    def edges(self) -> list[tuple[str, str, str]]:
        """``(producer, consumer, kind)`` with kind ``state``, ``order`` or ``stream``."""
        return list(self._edges)

    @functools.cached_property
    def upstream(self) -> dict[str, tuple[str, ...]]:
        """Per workload, the workloads it waits for (state and order), sorted."""
        state, order = self.state_deps, self.order_deps
        out: dict[str, tuple[str, ...]] = {}
        for n in self.names:  # one union only where both kinds are there (first run: O(n))
            s, o = state[n], order[n]
            both = s | o if s and o else s or o
            out[n] = tuple(sorted(both)) if both else ()
        return out

    def describe(self) -> list[str]:
        """Human summary: edges by kind, levels, pipelines and the critical path."""
        import networkx as nx

        kinds: dict[str, int] = {}
        for _, _, kind in self._edges:
            kinds[kind] = kinds.get(kind, 0) + 1
        counts = ", ".join(f"{kinds.get(k, 0)} {k}" for k in ("state", "order", "stream"))
        lines = [
            f"{len(self.names)} workloads, {len(self._edges)} edges ({counts}), "
            f"{len(self._levels)} levels, {len(self.pipelines)} scheduling units"
        ]
        for i, level in enumerate(self._levels):
            lines.append(f"  level {i}: {', '.join(level)}")
        for pipe in self.pipelines:
            if len(pipe.members) > 1:
                links = [f"{d} ≈> {n}" for n in pipe.members for d in self.stream_deps[n]]
                lines.append(f"  pipeline: {'; '.join(links)}")
        critical = nx.dag_longest_path(nx.DiGraph(self.to_networkx()))
        lines.append(f"  critical path ({len(critical)}): {' -> '.join(critical)}")
        return lines

    def to_networkx(self) -> nx.MultiDiGraph:
        import networkx as nx

        g = nx.MultiDiGraph()
        g.add_nodes_from(self.names)
        for a, b, kind in self.edges():
            g.add_edge(a, b, kind=kind)
        return g
