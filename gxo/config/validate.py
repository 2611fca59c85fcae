"""Semantic validation: everything the JSON Schema cannot say.

Unique names and register keys, known modules with valid params, template
syntax, references to unknown names/registers/workloads, self-references,
dependency cycles (printed as a path), stream pipeline deadlocks and, for
``gxo run``, lifecycles that need the daemon.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from gxo.config.loader import pydantic_problems
from gxo.config.models import Policy
from gxo.errors import GxoError, PlaybookValidationError, TemplateError
from gxo.template.engine import is_template

if TYPE_CHECKING:
    from gxo.config.loader import LoadedPlaybook
    from gxo.engine.dag import WorkloadGraph

__all__ = ["validate_playbook"]


def validate_playbook(
    loaded: LoadedPlaybook,
    *,
    check_lifecycles: bool = False,
    extra_names: set[str] | None = None,
) -> WorkloadGraph:
    """Validate ``loaded`` in place; attach and return its graph. Raises on problems."""
    from gxo.engine.dag import BUILTIN_NAMES, WorkloadGraph
    from gxo.modules.base import REGISTRY

    pb = loaded.playbook
    problems: list[GxoError] = []

    def problem(message: str, path: tuple[Any, ...], workload: str | None = None) -> None:
        problems.append(
            PlaybookValidationError(message, location=loaded.location(path), workload=workload)
        )

    seen_names: dict[str, int] = {}
    seen_registers: dict[str, str] = {}
    raw_paths: dict[str, frozenset[str]] = {}
    expression_paths: dict[str, frozenset[str]] = {}
    extra_record_names: dict[str, frozenset[str]] = {}
    lenient: set[str] = set()
    for i, w in enumerate(pb.workloads):
        wpath = ("workloads", i)
        if w.name in seen_names:
            problem(
                f"duplicate workload name '{w.name}' (first defined as workload #{seen_names[w.name] + 1})",
                (*wpath, "name"),
                w.name,
            )
        else:
            seen_names[w.name] = i
        if w.register_key:
            if w.register_key in seen_registers:
                problem(
                    f"register key '{w.register_key}' is already used by workload '{seen_registers[w.register_key]}'",
                    (*wpath, "register"),
                    w.name,
                )
            else:
                seen_registers[w.register_key] = w.name
            if w.register_key in pb.vars:
                problem(
                    f"register key '{w.register_key}' shadows the playbook variable of the same name",
                    (*wpath, "register"),
                    w.name,
                )
        if check_lifecycles and w.lifecycle.policy != Policy.run_once:
            problem(
                f"lifecycle '{w.lifecycle.policy.value}' needs the long-running kernel: run this playbook "
                f"with 'gxo daemon' (gxo run only runs run_once workloads)",
                (*wpath, "lifecycle"),
                w.name,
            )
        spec, warning = REGISTRY.resolve(w.process.module)
        if spec is None:
            hint = REGISTRY.suggest(w.process.module)
            suffix = (
                f" (did you mean {' or '.join(repr(h) for h in hint)}?)"
                if hint
                else " (see 'gxo modules')"
            )
            problem(
                f"unknown module '{w.process.module}'{suffix}",
                (*wpath, "process", "module"),
                w.name,
            )
            continue
        if warning:
            loaded.warnings.append(
                f"{loaded.location((*wpath, 'process', 'module'))}: workload '{w.name}': {warning}"
            )
        raw_paths[w.name] = spec.raw_paths
        expression_paths[w.name] = spec.expression_paths
        extra_record_names[w.name] = spec.cls.template_names
        if not spec.cls.strict_template_names:
            lenient.add(w.name)
        problems.extend(_check_params(loaded, i, w.name, w.process.params, spec))
        if w.stream_inputs and spec.cls.consumes.value == "none":
            problem(
                f"module '{spec.name}' does not read streams, but stream_inputs is set",
                (*wpath, "stream_inputs"),
                w.name,
            )
        if not w.stream_inputs and spec.cls.consumes.value == "required":
            problem(
                f"module '{spec.name}' needs stream_inputs", (*wpath, "process", "module"), w.name
            )
        if w.stream_inputs and w.loop is not None:
            problem(
                "a workload with stream_inputs cannot loop: its stream can be read only once",
                (*wpath, "loop"),
                w.name,
            )
        if w.stream_inputs and w.retry is not None and w.retry.attempts > 1:
            problem(
                "a workload with stream_inputs cannot retry: consumed records cannot be read again",
                (*wpath, "retry"),
                w.name,
            )
        if w.loop_control is not None and w.loop is None:
            problem("loop_control is set but there is no loop", (*wpath, "loop_control"), w.name)

    # References between workloads.
    for i, w in enumerate(pb.workloads):
        wpath = ("workloads", i)
        for key in ("stream_inputs", "depends_on"):
            for j, target in enumerate(getattr(w, key)):
                if target == w.name:
                    problem(f"{key} names the workload itself", (*wpath, key, j), w.name)
                elif target not in seen_names:
                    problem(f"{key} names unknown workload '{target}'", (*wpath, key, j), w.name)
                elif key == "stream_inputs":
                    pspec = REGISTRY.get(pb.workloads[seen_names[target]].process.module)
                    if pspec is not None and not pspec.cls.produces:
                        problem(
                            f"stream input '{target}' (module {pspec.name}) does not produce a stream",
                            (*wpath, key, j),
                            w.name,
                        )

    try:
        graph = WorkloadGraph(pb, expression_paths)
    except TemplateError as exc:
        # A syntax error somewhere: find which workload/param for the location.
        problems.append(_locate_template_error(loaded, exc, expression_paths))
        raise PlaybookValidationError(str(problems[0]), problems=problems) from None

    known = set(pb.vars) | set(seen_registers) | BUILTIN_NAMES | (extra_names or set())
    for i, w in enumerate(pb.workloads):
        loop_names = (
            {w.loop_control.loop_var if w.loop_control else "item", "loop_index"}
            if w.loop is not None
            else set()
        )
        for ref in graph.refs[w.name]:
            path = ("workloads", i, *ref.path)
            in_raw = (
                len(ref.path) >= 3
                and ref.path[:2] == ("process", "params")
                and ref.path[2] in raw_paths.get(w.name, ())
            )
            allowed = known | (loop_names if ref.path[0] != "loop" else set())
            if in_raw:
                allowed = allowed | extra_record_names.get(w.name, frozenset())
            unknown = set() if in_raw and w.name in lenient else ref.roots - allowed - ref.optional
            for root in sorted(unknown):
                problem(
                    f"'{root}' is not defined: not a playbook var, register key, or -e override (in {ref.source!r})",
                    path,
                    w.name,
                )
            for target in sorted(ref.workloads):
                if target not in seen_names:
                    problem(f"_gxo.workloads.{target}: unknown workload '{target}'", path, w.name)
                elif target == w.name:
                    problem(
                        f"workload reads its own status (_gxo.workloads.{target})", path, w.name
                    )
            if w.register_key and w.register_key in ref.roots:
                problem(f"workload reads its own register key '{w.register_key}'", path, w.name)

    if not problems:
        cycle = graph.find_cycle()
        if cycle:
            first = pb.workloads[seen_names[cycle[0]]].name
            problem(
                "dependency cycle: " + " -> ".join(cycle),
                ("workloads", seen_names[cycle[0]]),
                first,
            )
        else:
            for message in graph.build_pipelines():
                problem(message, ("workloads",))

    if problems:
        raise PlaybookValidationError(str(problems[0]), problems=problems)
    loaded.graph = graph
    return graph


def _check_params(
    loaded: LoadedPlaybook, index: int, name: str, params: dict[str, Any], spec: Any
) -> list[GxoError]:
    """Validate literal params now; values that are templates are checked after rendering."""
    try:
        spec.params_model.model_validate(params)
    except ValidationError as exc:

        def ignore(loc: tuple[Any, ...]) -> bool:
            return under_template(params, loc)

        base = ("workloads", index, "process", "params")
        problems = pydantic_problems(
            exc,
            base_path=base,
            positions=loaded.positions,
            source=loaded.source,
            data=loaded.raw,
            model=spec.params_model,
            ignore=ignore,
            workload=name,
        )
        for p in problems:
            p.message = f"module '{spec.name}' params: {p.message}"
        return problems
    return []


def under_template(params: Any, loc: tuple[Any, ...]) -> bool:
    """True if the value at ``loc`` in ``params`` is, or lies inside, a template string.

    Such values are checked after rendering, so a static type error there is not one.
    """
    value = params
    for part in loc:
        if is_template(value):
            return True
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return False
    return is_template(value)


def _locate_template_error(
    loaded: LoadedPlaybook, exc: TemplateError, expression_paths: dict[str, frozenset[str]]
) -> GxoError:
    from gxo.engine.dag import template_sources
    from gxo.template.engine import find_references

    for i, w in enumerate(loaded.playbook.workloads):
        for path, source, bare in template_sources(w, expression_paths.get(w.name, frozenset())):
            try:
                find_references(source, bare=bare)
            except TemplateError as inner:
                return PlaybookValidationError(
                    inner.message,
                    location=loaded.location(("workloads", i, *path)),
                    workload=w.name,
                )
    return PlaybookValidationError(exc.message)
