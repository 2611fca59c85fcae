"""Selecting workloads for a run: ``--only``, ``--skip``, ``--from``, ``--tags``, ``--skip-tags``.

* ``--only NAME`` (repeatable, or comma-separated): those workloads plus everything
  they need, transitively: ``depends_on``, the register keys and
  ``_gxo.workloads.X`` their templates read, and their ``stream_inputs``;
* ``--tags T``: the workloads tagged T, plus what they need (as ``--only``);
* ``--from NAME``: NAME and everything downstream of it; nothing upstream runs
  (a stream producer of a selected workload runs with it: a stream cannot be
  replayed). A register key a selected workload needs from a workload left out
  must come from ``--state`` (an earlier run's results), else the run is refused
  naming the register and its workload;
* ``--skip NAME`` / ``--skip-tags T``: left out, whatever selected them.

Unknown names and tags are usage errors (exit 2) with the close names suggested.
The workloads left out stay in the run's report as ``Skipped`` "not selected".
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gxo.errors import UsageError

if TYPE_CHECKING:
    from gxo.config.loader import LoadedPlaybook
    from gxo.engine.dag import WorkloadGraph

__all__ = ["Selection", "missing_registers", "select_workloads", "split_values"]


def split_values(values: Iterable[str] | None) -> list[str]:
    """Repeatable options that also take comma-separated lists: ``--tags a,b --tags c``."""
    out: list[str] = []
    for value in values or ():
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return list(dict.fromkeys(out))


@dataclass
class Selection:
    """What the command line selected (empty: everything)."""

    only: Sequence[str] = ()
    skip: Sequence[str] = ()
    from_: str | None = None
    tags: Sequence[str] = ()
    skip_tags: Sequence[str] = ()
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # `--only "$SERVICES"` with SERVICES empty must not quietly run everything.
        for option, raw in (
            ("--only", self.only),
            ("--skip", self.skip),
            ("--tags", self.tags),
            ("--skip-tags", self.skip_tags),
            ("--from", [self.from_] if self.from_ is not None else []),
        ):
            if raw and not split_values(raw):
                kind = "tag" if "tags" in option else "workload name"
                raise UsageError(f"{option}: empty value: give a {kind}")
        self.only = split_values(self.only)
        self.skip = split_values(self.skip)
        self.tags = split_values(self.tags)
        self.skip_tags = split_values(self.skip_tags)
        if self.from_ is not None:
            self.from_ = self.from_.strip()

    @property
    def active(self) -> bool:
        return bool(self.only or self.skip or self.from_ or self.tags or self.skip_tags)

    def describe(self) -> str:
        parts = [f"--only {','.join(self.only)}"] if self.only else []
        parts += [f"--tags {','.join(self.tags)}"] if self.tags else []
        parts += [f"--from {self.from_}"] if self.from_ else []
        parts += [f"--skip {','.join(self.skip)}"] if self.skip else []
        parts += [f"--skip-tags {','.join(self.skip_tags)}"] if self.skip_tags else []
        return " ".join(parts)


def _unknown(kind: str, option: str, wanted: Iterable[str], known: Collection[str]) -> None:
    missing = [w for w in wanted if w not in known]
    if not missing:
        return
    lines = []
    for name in missing:
        close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
        if not close:  # an imported workload, under its import's prefix
            close = sorted(k for k in known if k.endswith(f"_{name}"))[:3]
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        lines.append(f"{option}: unknown {kind} '{name}'{hint}")
    if not known:
        lines.append(f"(the playbook has no {kind}s)")
    elif len(known) <= 12:
        lines.append(f"known {kind}s: {', '.join(sorted(known))}")
    raise UsageError("; ".join(lines))


def _upstream_closure(graph: WorkloadGraph, start: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(graph.all_deps(name))
    return seen


def _downstream_closure(graph: WorkloadGraph, start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(graph.dependents[name])
        todo.extend(graph.stream_consumers[name])
    return seen


def _stream_producers(graph: WorkloadGraph, selected: set[str]) -> set[str]:
    out = set(selected)
    todo = list(selected)
    while todo:
        for producer in graph.stream_deps[todo.pop()]:
            if producer not in out:
                out.add(producer)
                todo.append(producer)
    return out


def select_workloads(loaded: LoadedPlaybook, selection: Selection) -> set[str] | None:
    """The names of the workloads to run, or None for all of them.

    Raises UsageError for an unknown name or tag, or when nothing is left.
    """
    if not selection.active:
        return None
    graph = loaded.graph
    if graph is None:  # pragma: no cover - a loaded playbook is validated
        raise UsageError("the playbook was not validated")
    workloads = loaded.playbook.workloads
    names = graph.names
    known_tags = {t for w in workloads for t in w.tags}
    _unknown("workload", "--only", selection.only, set(names))
    _unknown("workload", "--skip", selection.skip, set(names))
    if selection.from_:
        _unknown("workload", "--from", [selection.from_], set(names))
    _unknown("tag", "--tags", selection.tags, known_tags)
    _unknown("tag", "--skip-tags", selection.skip_tags, known_tags)

    selected = set(names)
    if selection.only or selection.tags:
        wanted = set(selection.only)
        wanted |= {w.name for w in workloads if set(w.tags) & set(selection.tags)}
        selected = _upstream_closure(graph, wanted)
    if selection.from_:
        selected &= _stream_producers(graph, _downstream_closure(graph, selection.from_))
    selected -= set(selection.skip)
    selected -= {w.name for w in workloads if set(w.tags) & set(selection.skip_tags)}
    if not selected:
        raise UsageError(f"{selection.describe()}: no workload is left to run")
    return selected


def missing_registers(
    loaded: LoadedPlaybook, selected: Collection[str], available: Collection[str] = ()
) -> list[str]:
    """Register keys selected workloads read (not behind ``default``/``is defined``)
    from workloads left out, that no earlier run's store (``available``) holds."""
    graph = loaded.graph
    if graph is None:  # pragma: no cover - a loaded playbook is validated
        return []
    problems: dict[tuple[str, str], str] = {}
    for name in graph.names:
        if name not in selected:
            continue
        for ref in graph.refs.get(name, ()):
            for root in sorted(ref.roots - ref.optional):
                owner = graph.register_owner.get(root)
                if owner is None or owner in selected or root in available:
                    continue
                problems.setdefault(
                    (name, root),
                    f"workload '{name}' reads register '{root}' of workload '{owner}', "
                    "which is not selected",
                )
    return list(problems.values())


def playbook_info(loaded: LoadedPlaybook) -> dict[str, object]:
    """``_gxo.playbook_dir`` and ``_gxo.playbook`` ({name, path}) of a loaded playbook.

    For a playbook given as text (no file), the directory is the current one and
    the path is the name it was given (``<string>``).
    """
    cached = getattr(loaded, "_playbook_info", None)
    if cached is not None:  # a daemon makes many engines of one loaded playbook
        return cached  # type: ignore[no-any-return]
    from pathlib import Path

    source = loaded.source
    is_file = source != "<string>" and Path(source).is_file()
    path = str(Path(source).resolve()) if is_file else source
    info: dict[str, object] = {
        "playbook_dir": str(loaded.base_dir),
        "playbook": {"name": loaded.playbook.name, "path": path},
    }
    loaded._playbook_info = info  # type: ignore[attr-defined]
    return info
