"""Semantic validation: everything the JSON Schema cannot say.

A sequence of named checks (like ansible-lint's rules), each a small function
over one shared :class:`Validation`. Every check runs, so a file's problems are
reported in one pass, not in rounds: unique names and register keys, lifecycles
``gxo run`` cannot run, known modules with valid params, how modules use
streams, links between workloads, template syntax and filter/test names,
references to unknown names/registers/workloads, self-references, dependency
cycles (printed as a path) and stream pipeline deadlocks. Advice that is not an
error (a templated SQL ``query``) becomes a warning.

When the schema already rejected some workloads, :func:`problems_beside_schema_errors`
runs the same checks on the rest, so a schema error in one workload does not hide a
bad param in another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from gxo.config.loader import LoadedPlaybook, PositionMap, pydantic_problems
from gxo.config.models import Playbook, Policy
from gxo.errors import GxoError, PlaybookValidationError, TemplateError
from gxo.template.engine import is_template

if TYPE_CHECKING:
    from gxo.engine.dag import TemplateRef, WorkloadGraph
    from gxo.modules.base import ModuleSpec

__all__ = ["CHECKS", "Validation", "problems_beside_schema_errors", "validate_playbook"]


@dataclass
class Validation:
    """What the checks share: the playbook, the problems found so far, and facts
    one check learns for the next (names, register keys, module specs, the graph)."""

    loaded: LoadedPlaybook
    check_lifecycles: bool = False
    extra_names: set[str] = field(default_factory=set)
    # Workloads the schema rejected (partial pass): their names and register keys
    # exist, so a reference to them is not "unknown".
    foreign_names: set[str] = field(default_factory=set)
    foreign_registers: set[str] = field(default_factory=set)
    check_roots: bool = True  # False when the playbook's vars could not be read
    problems: list[GxoError] = field(default_factory=list)
    seen_names: dict[str, int] = field(default_factory=dict)
    seen_registers: dict[str, str] = field(default_factory=dict)
    specs: dict[str, ModuleSpec] = field(default_factory=dict)  # by workload name
    refs: dict[str, list[TemplateRef]] = field(default_factory=dict)
    template_problems: bool = False
    graph: WorkloadGraph | None = None
    # A barrier's stream_inputs that produce no stream: waited for like depends_on.
    order_inputs: dict[str, set[str]] = field(default_factory=dict)

    def problem(self, message: str, path: tuple[Any, ...], workload: str | None = None) -> None:
        self.problems.append(
            PlaybookValidationError(message, location=self.loaded.location(path), workload=workload)
        )

    def warn(self, message: str, path: tuple[Any, ...], workload: str) -> None:
        self.loaded.warnings.append(
            f"{self.loaded.location(path)}: workload '{workload}': {message}"
        )

    def workloads(self) -> Any:
        return enumerate(self.loaded.playbook.workloads)

    def is_workload(self, name: str) -> bool:
        return name in self.seen_names or name in self.foreign_names


def check_names(v: Validation) -> None:
    for i, w in v.workloads():
        if w.name in v.seen_names:
            v.problem(
                f"duplicate workload name '{w.name}' (first defined as workload #{v.seen_names[w.name] + 1})",
                ("workloads", i, "name"),
                w.name,
            )
        else:
            v.seen_names[w.name] = i


# Names templates rely on: a var or register key of that name would hide them
# (`vars: {secret: x}`, or an import's `ret` under the prefix `sec`).
_RESERVED_NAMES = {
    "secret": "the secret() function",
    "now": "the now() function",
    "_gxo": "the run's _gxo names",
}


def check_register_keys(v: Validation) -> None:
    variables = v.loaded.playbook.vars
    for name in variables:
        if name in _RESERVED_NAMES:
            v.problem(
                f"variable name '{name}' is reserved: it would hide {_RESERVED_NAMES[name]}",
                ("vars", name),
            )
    for i, w in v.workloads():
        key = w.register_key
        if not key:
            continue
        if key in _RESERVED_NAMES:
            v.problem(
                f"register key '{key}' is reserved: it would hide {_RESERVED_NAMES[key]}",
                ("workloads", i, "register"),
                w.name,
            )
        if key in v.seen_registers:
            v.problem(
                f"register key '{key}' is already used by workload '{v.seen_registers[key]}'",
                ("workloads", i, "register"),
                w.name,
            )
        else:
            v.seen_registers[key] = w.name
        if key in variables:
            v.problem(
                f"register key '{key}' shadows the playbook variable of the same name",
                ("workloads", i, "register"),
                w.name,
            )


def check_lifecycles(v: Validation) -> None:
    if not v.check_lifecycles:
        return
    for i, w in v.workloads():
        if w.lifecycle.policy != Policy.run_once:
            v.problem(
                f"lifecycle '{w.lifecycle.policy.value}' needs the long-running kernel: run this playbook "
                f"with 'gxo daemon' (gxo run only runs run_once workloads)",
                ("workloads", i, "lifecycle"),
                w.name,
            )


def check_modules(v: Validation) -> None:
    """Every module exists (with a did-you-mean) and its literal params are valid."""
    from gxo.modules.base import REGISTRY

    for i, w in v.workloads():
        module_path = ("workloads", i, "process", "module")
        spec, warning = REGISTRY.resolve(w.process.module)
        if spec is None:
            hint = REGISTRY.suggest(w.process.module)
            suffix = (
                f" (did you mean {' or '.join(repr(h) for h in hint)}?)"
                if hint
                else " (see 'gxo modules')"
            )
            v.problem(f"unknown module '{w.process.module}'{suffix}", module_path, w.name)
            continue
        if warning:
            v.warn(warning, module_path, w.name)
        v.specs[w.name] = spec
        v.problems.extend(_check_params(v.loaded, i, w.name, w.process.params, spec))


def check_stream_usage(v: Validation) -> None:
    """A module's stream role matches ``stream_inputs``; streams cannot be re-read."""
    for i, w in v.workloads():
        wpath = ("workloads", i)
        spec = v.specs.get(w.name)
        if spec is not None:
            consumes = spec.cls.consumes.value
            if w.stream_inputs and consumes == "none":
                v.problem(
                    f"module '{spec.name}' does not read streams, but stream_inputs is set",
                    (*wpath, "stream_inputs"),
                    w.name,
                )
            if not w.stream_inputs and consumes == "required":
                v.problem(
                    f"module '{spec.name}' needs stream_inputs",
                    (*wpath, "process", "module"),
                    w.name,
                )
        if w.stream_inputs and w.loop is not None:
            v.problem(
                "a workload with stream_inputs cannot loop: its stream can be read only once",
                (*wpath, "loop"),
                w.name,
            )
        if w.stream_inputs and w.retry is not None and w.retry.attempts > 1:
            v.problem(
                "a workload with stream_inputs cannot retry: consumed records cannot be read again",
                (*wpath, "retry"),
                w.name,
            )
        if w.loop_control is not None and w.loop is None:
            v.problem("loop_control is set but there is no loop", (*wpath, "loop_control"), w.name)


def check_links(v: Validation) -> None:
    """``stream_inputs`` and ``depends_on`` name other, existing workloads (producers)."""
    pb = v.loaded.playbook
    for i, w in v.workloads():
        for key in ("stream_inputs", "depends_on"):
            for j, target in enumerate(getattr(w, key)):
                path = ("workloads", i, key, j)
                if target == w.name:
                    v.problem(f"{key} names the workload itself", path, w.name)
                elif not v.is_workload(target):
                    v.problem(f"{key} names unknown workload '{target}'", path, w.name)
                elif key == "stream_inputs" and target in v.seen_names:
                    pspec = v.specs.get(pb.workloads[v.seen_names[target]].name)
                    if pspec is not None and not pspec.cls.produces:
                        cspec = v.specs.get(w.name)
                        if cspec is not None and cspec.cls.waits_for_any_input:
                            # Upstream's CI fan-in: the barrier waits for it like depends_on.
                            v.order_inputs.setdefault(w.name, set()).add(target)
                            continue
                        v.problem(
                            f"stream input '{target}' (module {pspec.name}) does not produce a stream",
                            path,
                            w.name,
                        )


def check_templates(v: Validation) -> None:
    """Every template compiles and uses known filters and tests; builds the graph.

    The graph reads every template once; only when one is bad are they read one
    by one, to report each bad template at its own line and keep the others' refs.
    """
    from gxo.engine.dag import TemplateRef, WorkloadGraph, template_sources
    from gxo.template.references import find_references, iter_template_paths

    pb = v.loaded.playbook
    expression_paths = {name: spec.expression_paths for name, spec in v.specs.items()}
    for p, source in iter_template_paths(pb.vars, ("vars",)):
        try:
            find_references(source)
        except TemplateError as exc:
            v.template_problems = True
            v.problem(exc.message, p)
    try:
        v.graph = WorkloadGraph(pb, expression_paths, v.order_inputs)
    except TemplateError:
        v.template_problems = True
    else:
        v.refs = v.graph.refs
        return
    for i, w in v.workloads():
        refs = v.refs.setdefault(w.name, [])
        for path, source, bare in template_sources(w, expression_paths.get(w.name, frozenset())):
            try:
                roots, wrefs, optional = find_references(source, bare=bare)
            except TemplateError as exc:
                v.problem(exc.message, ("workloads", i, *path), w.name)
                continue
            refs.append(TemplateRef(path, source, roots, wrefs, optional))


def check_references(v: Validation) -> None:
    """Names templates read exist: vars, register keys, loop names, ``_gxo.workloads.X``."""
    from gxo.engine.dag import BUILTIN_NAMES

    pb = v.loaded.playbook
    known = (
        set(pb.vars) | set(v.seen_registers) | v.foreign_registers | BUILTIN_NAMES | v.extra_names
    )
    for i, w in v.workloads():
        spec = v.specs.get(w.name)
        raw_paths = spec.raw_paths if spec is not None else frozenset()
        record_names = spec.cls.template_names if spec is not None else frozenset()
        lenient = spec is not None and not spec.cls.strict_template_names
        loop_names = (
            {w.loop_control.loop_var if w.loop_control else "item", "loop_index"}
            if w.loop is not None
            else set()
        )
        for ref in v.refs.get(w.name, ()):
            path = ("workloads", i, *ref.path)
            in_raw = (
                len(ref.path) >= 3
                and ref.path[:2] == ("process", "params")
                and ref.path[2] in raw_paths
            )
            # Names this template may read besides ``known``. Small sets: copying
            # ``known`` (one name per register) for every template was quadratic.
            local = loop_names if ref.path[0] != "loop" else set()
            if in_raw:
                local = local | record_names
            if not v.check_roots or (in_raw and lenient):
                unknown: list[str] = []
            else:
                unknown = [
                    r
                    for r in ref.roots
                    if r not in known and r not in local and r not in ref.optional
                ]
            for root in sorted(unknown):
                v.problem(
                    f"'{root}' is not defined: not a playbook var, register key, or -e override (in {ref.source!r})",
                    path,
                    w.name,
                )
            for target in sorted(ref.workloads):
                if not v.is_workload(target):
                    v.problem(f"_gxo.workloads.{target}: unknown workload '{target}'", path, w.name)
                elif target == w.name:
                    v.problem(
                        f"workload reads its own status (_gxo.workloads.{target})", path, w.name
                    )
            if w.register_key and w.register_key in ref.roots:
                v.problem(f"workload reads its own register key '{w.register_key}'", path, w.name)


def check_vars(v: Validation) -> None:
    """Vars render once, before any workload runs: they read other vars, -e overrides,
    ``_gxo`` and ``secret()`` — not register keys, nor a name defined nowhere."""
    from gxo.engine.dag import BUILTIN_NAMES
    from gxo.template.references import find_references, iter_template_paths

    if not v.check_roots:
        return
    pb = v.loaded.playbook
    known = set(pb.vars) | BUILTIN_NAMES | v.extra_names
    for p, source in iter_template_paths(pb.vars, ("vars",)):
        try:
            roots, _, optional = find_references(source)
        except TemplateError:
            continue  # reported by check_templates
        for root in sorted(roots - known - optional):
            registered = v.seen_registers.get(root)
            why = (
                f"it is the register key of workload '{registered}', and vars render before "
                "any workload runs: read it in the workload's own template"
                if registered is not None
                else "not a playbook var or -e override"
            )
            v.problem(f"var '{p[1]}': '{root}' is not defined: {why} (in {source!r})", p)


def check_until(v: Validation) -> None:
    """``retry.until`` parses and reads known names (``result``: the attempt's summary)."""
    from gxo.engine.dag import BUILTIN_NAMES
    from gxo.template.references import find_references

    pb = v.loaded.playbook
    known = (
        set(pb.vars) | set(v.seen_registers) | v.foreign_registers | BUILTIN_NAMES | v.extra_names
    )
    for i, w in v.workloads():
        until = w.retry.until if w.retry is not None else None
        if until is None:
            continue
        path = ("workloads", i, "retry", "until")
        if not until.strip():
            v.problem("retry.until is empty: give a condition over 'result'", path, w.name)
            continue
        try:
            roots, _, optional = find_references(until, bare=True)
        except TemplateError as exc:
            v.problem(f"retry.until: {exc.message}", path, w.name)
            continue
        if w.retry is not None and w.retry.attempts == 1:
            v.warn(
                "retry.until with attempts: 1 checks the condition once and never retries "
                "(set attempts)",
                path,
                w.name,
            )
        local = {"result"}
        if w.loop is not None:
            local |= {w.loop_control.loop_var if w.loop_control else "item", "loop_index"}
        if not v.check_roots:
            continue
        for root in sorted(roots - known - local - optional):
            v.problem(
                f"retry.until: '{root}' is not defined (the attempt's summary is 'result') "
                f"(in {until!r})",
                path,
                w.name,
            )
        if w.register_key and w.register_key in roots:
            v.problem(
                f"retry.until reads the workload's own register key '{w.register_key}': "
                "the attempt's summary is 'result'",
                path,
                w.name,
            )


def check_status_functions(v: Validation) -> None:
    """``success()``, ``failure()``, ``always()``, ``cancelled()``, ``paused()`` only in
    ``when``; ``paused()`` needs a ``control:wait_for_signal`` dependency."""
    from gxo.template.references import is_mixed_condition, status_calls, uncalled_status_names

    pb = v.loaded.playbook
    for i, w in v.workloads():
        conditions = [("when", w.when)]
        if w.retry is not None:
            conditions.append(("retry.until", w.retry.until))
        for where, condition in conditions:
            if not isinstance(condition, str):
                continue
            path = ("workloads", i, *where.split("."))
            if is_mixed_condition(condition):
                v.problem(
                    f"{where} {condition!r} is text around {{{{ }}}}: it renders to a non-empty "
                    "string, which is always true; write the whole condition as one "
                    "expression: bare, without braces, or inside one {{ }}",
                    path,
                    w.name,
                )
            # A var or register key of that name is a value, not the function.
            for name in sorted(
                uncalled_status_names(condition) - set(pb.vars) - set(v.seen_registers)
            ):
                v.problem(
                    f"{where}: '{name}' is a status function: call it, {name}() "
                    f"(a function is always true) (in {condition!r})",
                    path,
                    w.name,
                )
            if where != "when":
                for call in sorted(status_calls(condition)):
                    v.problem(
                        f"{call}() is a status function: it can only be used in 'when' "
                        f"(in {condition!r})",
                        path,
                        w.name,
                    )
        for ref in v.refs.get(w.name, ()):
            if ref.path[0] == "when":
                continue
            for call in sorted(status_calls(ref.source)):
                v.problem(
                    f"{call}() is a status function: it can only be used in 'when' "
                    f"(in {ref.source!r})",
                    ("workloads", i, *ref.path),
                    w.name,
                )
        if isinstance(w.when, str) and "paused" in status_calls(w.when) and v.graph is not None:
            waits = [
                d
                for d in v.graph.upstream.get(w.name, ())
                if d in v.seen_names
                and v.loaded.playbook.workloads[v.seen_names[d]].process.module
                == "control:wait_for_signal"
            ]
            if not waits:
                v.warn(
                    "its when calls paused(), but it depends on no control:wait_for_signal "
                    "workload (depends_on or a register key): paused() is always false",
                    ("workloads", i, "when"),
                    w.name,
                )


def check_cycles_and_pipelines(v: Validation) -> None:
    """Only on an otherwise valid graph: a cycle there is real, not an echo of a typo."""
    if v.problems or v.graph is None:
        return
    graph = v.graph
    cycle = graph.find_cycle()
    if cycle:
        index = v.seen_names[cycle[0]]
        v.problem("dependency cycle: " + " -> ".join(cycle), ("workloads", index), cycle[0])
        return
    for message in graph.build_pipelines():
        v.problem(message, ("workloads",))


def warn_templated_sql(v: Validation) -> None:
    """A template inside SQL splices values into the statement (injection, quoting
    bugs); bound ``params`` do not. Legal, so a warning."""
    for i, w in v.workloads():
        spec = v.specs.get(w.name)
        query = w.process.params.get("query")
        if spec is not None and spec.name == "database:query" and is_template(query):
            v.warn(
                "database:query 'query' contains a template expression: put values in "
                "'params' and use :name placeholders, so they are bound, not spliced into the SQL",
                ("workloads", i, "process", "params", "query"),
                w.name,
            )


CHECKS: tuple[Callable[[Validation], None], ...] = (
    check_names,
    check_register_keys,
    check_lifecycles,
    check_modules,
    check_stream_usage,
    check_links,
    check_templates,
    check_references,
    check_vars,
    check_until,
    check_status_functions,
    check_cycles_and_pipelines,
    warn_templated_sql,
)


def run_checks(v: Validation) -> list[GxoError]:
    for check in CHECKS:
        check(v)
    return v.problems


def validate_playbook(
    loaded: LoadedPlaybook,
    *,
    check_lifecycles: bool = False,
    extra_names: set[str] | None = None,
) -> WorkloadGraph:
    """Validate ``loaded`` in place; attach and return its graph. Raises on problems."""
    v = Validation(loaded, check_lifecycles, set(extra_names or ()))
    problems = run_checks(v)
    if problems:
        raise PlaybookValidationError(str(problems[0]), problems=problems)
    assert v.graph is not None  # no template problem, so the graph was built
    loaded.graph = v.graph
    return v.graph


def problems_beside_schema_errors(
    data: dict[str, Any],
    positions: PositionMap,
    source: str,
    exc: ValidationError,
    *,
    check_lifecycles: bool = False,
    extra_names: set[str] | None = None,
) -> list[GxoError]:
    """The semantic problems of the workloads the schema accepted.

    The rejected workloads are left out (keeping every other workload's positions);
    a rejected optional top-level key is left out too. Returns [] when too little of
    the file is usable (no workload list, no accepted workload).
    """
    workloads = data.get("workloads")
    if not isinstance(workloads, list):
        return []
    rejected: set[int] = set()
    patched = dict(data)
    check_roots = True
    extra = set(extra_names or ())
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        if len(loc) >= 2 and loc[0] == "workloads" and isinstance(loc[1], int):
            rejected.add(loc[1])
        elif not loc or loc[0] == "workloads":
            return []  # the workload list itself is wrong
        elif loc[0] == "schemaVersion":
            patched["schemaVersion"] = "1.0.0"
        elif loc[0] == "name":
            patched["name"] = "playbook"
        else:
            patched.pop(str(loc[0]), None)
            if loc[0] == "vars":
                raw_vars = data.get("vars")
                if isinstance(raw_vars, dict):
                    extra |= {k for k in raw_vars if isinstance(k, str)}
                else:
                    check_roots = False
    kept = [i for i in range(len(workloads)) if i not in rejected]
    if not kept:
        return []
    new_index = {old: new for new, old in enumerate(kept)}
    patched["workloads"] = [workloads[i] for i in kept]
    try:
        playbook = Playbook.model_validate(patched)
    except ValidationError:
        return []
    moved = PositionMap()
    for path, pos in positions.items():
        if len(path) >= 2 and path[0] == "workloads" and isinstance(path[1], int):
            if path[1] in new_index:
                moved[("workloads", new_index[path[1]], *path[2:])] = pos
        else:
            moved[path] = pos
    v = Validation(
        LoadedPlaybook(playbook, source, moved, raw=patched),
        check_lifecycles,
        extra,
        check_roots=check_roots,
    )
    for i in rejected:
        raw = workloads[i] if isinstance(workloads[i], dict) else {}
        if isinstance(raw.get("name"), str):
            v.foreign_names.add(raw["name"])
        if isinstance(raw.get("register"), str):
            v.foreign_registers.add(raw["register"])
    return run_checks(v)


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
