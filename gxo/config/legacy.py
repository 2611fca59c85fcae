"""The v0.1.2a playbook format (``tasks:`` with ``type:``) and its migration to 1.0.0.

Both the in-memory shim used by ``gxo run`` (:func:`migrate_data`) and the file
rewrite of ``gxo migrate`` (:mod:`gxo.config.migrate`) go through
:func:`migrate_tree`, :func:`convert_task` and :func:`rewrite_templates`, so
they cannot disagree: the file rewrite passes ruamel's comment-keeping mapping
type where the shim passes ``dict``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, MutableMapping
from typing import Any

from gxo.config.loader import PositionMap

__all__ = [
    "LEGACY_TASK_KEYS",
    "TARGET_SCHEMA_VERSION",
    "convert_task",
    "is_legacy",
    "migrate_data",
    "migrate_join_params",
    "migrate_tree",
    "rewrite_go_template",
    "rewrite_templates",
]

LEGACY_TASK_KEYS = (
    "name", "type", "params", "register", "stream_inputs", "ignore_errors", "when", "loop",
    "loop_control", "retry", "timeout", "policy_ref", "policy", "state_policy",
)  # fmt: skip
TARGET_SCHEMA_VERSION = "1.0.0"

Warn = Callable[[str, tuple[Any, ...]], None]
NewMap = Callable[[], MutableMapping[str, Any]]

_GO_ACTION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.DOTALL)
# A '.name' path start that is not an attribute of something before it.
_DOT_IDENT = re.compile(r"(?<![\w\)\]\.'\"])\.([A-Za-z_][A-Za-z0-9_]*)")
_INDEX_SEGMENT = re.compile(r"\.(\d+)(?=\b)")
_GO_LEADING_DOT = re.compile(r"(?<![\w\)\]'\"])\.")
# Go control actions ({{ if .x }}, {{ end }}, {{ range .items }}) have no expression form.
_GO_KEYWORD = re.compile(
    r"^\s*(if|else|end|range|with|define|template|block|break|continue)\b(?!\s*\()"
)


def is_legacy(data: dict[str, Any]) -> bool:
    return "tasks" in data and "workloads" not in data


# {{ secret "NAME" }} (Go's function call syntax) -> {{ secret('NAME') }}
_GO_SECRET = re.compile(r"""^(\s*)secret\s+(?:"([^"\\]*)"|`([^`]*)`)(\s*)$""")


def _go_secret(body: str) -> str | None:
    m = _GO_SECRET.match(body)
    if m is None:
        return None
    name = m.group(2) if m.group(2) is not None else m.group(3)
    if "'" in name:
        return None
    return f"{m.group(1)}secret('{name}'){m.group(4)}"


def rewrite_go_template(text: str) -> tuple[str, list[str]]:
    """Rewrite Go-template actions to Jinja2 where the mapping is mechanical.

    ``{{ .x.y }}`` → ``{{ x.y }}``, ``{{ .items.0.id }}`` → ``{{ items[0].id }}``,
    ``{{ .a == "b" }}`` → ``{{ a == "b" }}``, ``{{ secret "X" }}`` → ``{{ secret('X') }}``.
    Anything else (Go functions such as
    ``eq .a "b"``, control actions, ``{{ . }}``, unknown filters) is kept as it is
    and returned in the list of expressions that need a human.
    """
    if "{{" not in text:
        return text, []
    manual: list[str] = []

    def convert(m: re.Match[str]) -> str:
        left, body, right = m.group(1), m.group(2), m.group(3)
        secret = _go_secret(body)
        if secret is not None:
            return "{{" + left + secret + right + "}}"
        if not _GO_LEADING_DOT.search(body):
            # No Go-style leading dot: fine if it is already Jinja, a human's job if not.
            if _GO_KEYWORD.match(body) or not _is_valid_jinja(m.group(0)):
                manual.append(m.group(0))
            return m.group(0)
        new_body = _INDEX_SEGMENT.sub(r"[\1]", body)
        new_body = _DOT_IDENT.sub(r"\1", new_body)
        candidate = "{{" + left + new_body + right + "}}"
        if not _GO_KEYWORD.match(body) and _is_valid_jinja(candidate):
            return candidate
        manual.append(m.group(0))
        return m.group(0)

    return _GO_ACTION.sub(convert, text), manual


def _is_valid_jinja(source: str) -> bool:
    from jinja2 import TemplateSyntaxError, nodes

    from gxo.template.engine import _ANALYSIS_ENV

    try:
        tree = _ANALYSIS_ENV.parse(source)
    except (TemplateSyntaxError, RecursionError, MemoryError):
        return False
    for node in tree.find_all(nodes.Filter):
        if node.name not in _ANALYSIS_ENV.filters:
            return False
    # A lone '.' (Go's "current value") has no Jinja equivalent.
    return not re.search(r"\{\{-?\s*\.\s*-?\}\}", source)


def _canonical_module(name: Any) -> Any:
    """The current name of a module the legacy playbook names by an old alias."""
    if not isinstance(name, str):
        return name
    from gxo.modules.base import REGISTRY

    spec, deprecation = REGISTRY.resolve(name)
    return spec.name if spec is not None and deprecation else name


def convert_task(
    task: MutableMapping[str, Any], index: int, warn: Warn, new_map: NewMap = dict
) -> MutableMapping[str, Any]:
    """One legacy task as a 1.0.0 workload mapping, keeping the key order users wrote.

    ``lifecycle`` and ``process`` take the place of the later of ``type``/``params``
    (so a comment trailing the task stays last); old module names become current.
    """
    out = new_map()
    name = task.get("name") or f"task_{index + 1}"
    if "name" not in task:
        out["name"] = name
        warn(f"task #{index + 1} had no name; it is named '{name}'", ("tasks", index))
    process = new_map()
    process["module"] = _canonical_module(task.get("type"))
    if "params" in task:
        process["params"] = task["params"]
        if process["module"] == "data:join" and isinstance(task["params"], MutableMapping):
            migrate_join_params(
                task["params"], lambda m, at: warn(m, ("tasks", index, "params", *at))
            )
    slot = max((i for i, k in enumerate(task) if k in ("type", "params")), default=None)
    for i, (key, value) in enumerate(task.items()):
        if i == slot:
            out["lifecycle"] = _flow({"policy": "run_once"}, new_map)
            out["process"] = process
        if key in ("type", "params"):
            continue
        if key == "name":
            out["name"] = name
        elif key == "policy_ref":
            warn("'policy_ref' is not supported in 1.0.0 and was dropped", ("tasks", index, key))
        elif key == "policy":
            warn(
                "task 'policy' (skip_on_no_input) is not supported in 1.0.0 and was dropped",
                ("tasks", index, key),
            )
        elif key == "retry" and isinstance(value, MutableMapping) and "on_error" in value:
            del value["on_error"]
            warn(
                "retry.on_error is implied in 1.0.0 and was dropped",
                ("tasks", index, "retry", "on_error"),
            )
            out[key] = value
        else:
            out[key] = value
    if slot is None:
        out["lifecycle"] = _flow({"policy": "run_once"}, new_map)
        out["process"] = process
    return out


# v0.1.2a's data:join merge strategy names → 1.0.0's.
_JOIN_MERGE_NAMES = {"flat": "merge", "nested": "nest"}


def migrate_join_params(
    params: MutableMapping[str, Any], warn: Callable[[str, tuple[Any, ...]], None]
) -> None:
    """Translate v0.1.2a ``data:join`` params in place so the join returns the same rows.

    v0.1.2a named the outer sides by role: ``left`` kept the unmatched records of
    the *probe* side, ``right`` those of the *build* side. 1.0.0 follows SQL:
    ``left``/``right`` keep the unmatched records of the first/second entry of
    ``on``. The merge strategies ``flat``/``nested`` are now ``merge``/``nest``.
    """
    output = params.get("output")
    if isinstance(output, MutableMapping):
        strategy = output.get("merge_strategy")
        if isinstance(strategy, str) and strategy in _JOIN_MERGE_NAMES:
            output["merge_strategy"] = _same_kind(strategy, _JOIN_MERGE_NAMES[strategy])
    join_type = params.get("join_type")
    if not isinstance(join_type, str) or join_type not in ("left", "right"):
        if isinstance(join_type, str) and "{{" in join_type:
            warn(
                "data:join join_type is a template: in v0.1.2a 'left'/'right' kept the unmatched "
                "probe/build records, in 1.0.0 those of the first/second side of 'on'; check it",
                ("join_type",),
            )
        return
    probe = _probe_index(params.get("on"))
    if probe is None:
        warn(
            f"data:join join_type '{join_type}' could not be translated (the sides' roles in "
            "'on' are not two literal build/probe roles); in 1.0.0 'left'/'right' keep the "
            "unmatched records of the first/second side of 'on'",
            ("join_type",),
        )
        return
    kept = probe if join_type == "left" else 1 - probe
    new = ("left", "right")[kept]
    if new != join_type:
        params["join_type"] = _same_kind(join_type, new)
        role = "probe" if join_type == "left" else "build"
        warn(
            f"data:join join_type '{join_type}' kept the unmatched {role} records in v0.1.2a; "
            f"1.0.0 names the side by its place in 'on', so it is now '{new}'",
            ("join_type",),
        )


def _probe_index(sides: Any) -> int | None:
    """Which entry of ``on`` is the probe side, with data:join's defaults; None if unknown."""
    if not (
        isinstance(sides, list)
        and len(sides) == 2
        and all(isinstance(s, MutableMapping) for s in sides)
    ):
        return None
    roles = [s.get("role") for s in sides]
    if any(r not in (None, "build", "probe") for r in roles) or (
        roles[0] is not None and roles[0] == roles[1]
    ):
        return None
    if roles[0] == "probe" or roles[1] == "build":
        return 0
    return 1  # second is probe, first is build, or neither given (first builds)


def _flow(items: dict[str, Any], new_map: NewMap) -> MutableMapping[str, Any]:
    out = new_map()
    out.update(items)
    set_flow = getattr(getattr(out, "fa", None), "set_flow_style", None)
    if set_flow is not None:
        set_flow()
    return out


def migrate_tree(
    data: MutableMapping[str, Any], warn: Warn, new_map: NewMap = dict
) -> MutableMapping[str, Any]:
    """The 1.0.0 structure of a legacy document (templates not rewritten yet).

    Top-level keys keep their order: ``tasks`` becomes ``workloads`` in place,
    ``schemaVersion`` becomes "1.0.0", dropped keys are warned about. Nested
    mappings the caller passed in may be modified (``retry.on_error`` removed).
    """
    tasks = data.get("tasks")
    if isinstance(tasks, list):
        _semantic_warnings(tasks, warn)
    out = new_map()
    if "schemaVersion" not in data:
        out["schemaVersion"] = TARGET_SCHEMA_VERSION
    for key, value in data.items():
        if key == "schemaVersion":
            out[key] = _same_kind(value, TARGET_SCHEMA_VERSION)
        elif key == "tasks":
            workloads = value if isinstance(value, list) else []
            for i, t in enumerate(workloads):
                if isinstance(t, MutableMapping):
                    workloads[i] = convert_task(t, i, warn, new_map)
            out["workloads"] = workloads if isinstance(value, list) else value
        elif key == "task_policy":
            warn("'task_policy' is not supported in 1.0.0 and was dropped", (key,))
        elif key == "channel_policy" and isinstance(value, MutableMapping):
            out[key] = _migrate_channel_policy(value, lambda m, k: warn(m, ("channel_policy", k)))
        else:
            out[key] = value
    return out


def _semantic_warnings(tasks: list[Any], warn: Warn) -> None:
    """Where this file behaves differently under 1.0.0 than under v0.1.2a (the file
    cannot show it; the user should know)."""
    strings: list[tuple[int, str]] = []  # (task index, every string of the task)

    def collect(i: int, node: Any) -> None:
        if isinstance(node, str):
            strings.append((i, node))
        elif isinstance(node, MutableMapping):
            for v in node.values():
                collect(i, v)
        elif isinstance(node, list):
            for v in node:
                collect(i, v)

    for i, task in enumerate(tasks):
        if isinstance(task, MutableMapping):
            collect(i, {k: v for k, v in task.items() if k not in ("name", "register")})
    for i, task in enumerate(tasks):
        if not isinstance(task, MutableMapping):
            continue
        when = task.get("when")
        if isinstance(when, str) and when.strip():
            warn(
                "'when' that fails to render (an undefined name, a type error) now fails the "
                "workload; v0.1.2a skipped it (guard optional names with '| default' or "
                "'is defined')",
                ("tasks", i, "when"),
            )
        if task.get("ignore_errors") is True and _has_dependents(task, i, tasks, strings):
            name = task.get("name") or f"task_{i + 1}"
            warn(
                "ignore_errors: when this workload fails, its dependents now run (v0.1.2a "
                "skipped them); give them a 'when' (e.g. \"_gxo.workloads."
                f"{name}.status == 'Completed'\") to keep the old behaviour",
                ("tasks", i, "ignore_errors"),
            )


def _has_dependents(
    task: MutableMapping[str, Any], index: int, tasks: list[Any], strings: list[tuple[int, str]]
) -> bool:
    name, key = task.get("name"), task.get("register")
    for j, other in enumerate(tasks):
        if j != index and isinstance(other, MutableMapping):
            inputs = other.get("stream_inputs")
            if isinstance(inputs, list) and name in inputs:
                return True
    alternatives = []
    if isinstance(key, str) and key:  # its register key, read as `.key` (Go) or `key`
        alternatives.append(rf"\b{re.escape(key)}\b")
    if isinstance(name, str) and name:  # its status, read as `.tasks.NAME`
        alternatives.append(rf"\b(?:tasks|workloads)\.{re.escape(name)}\b")
    if not alternatives:
        return False
    pattern = re.compile("|".join(alternatives))
    return any(j != index and "{{" in text and pattern.search(text) for j, text in strings)


def migrate_data(
    data: dict[str, Any], positions: PositionMap, source: str
) -> tuple[dict[str, Any], PositionMap, list[str]]:
    """In-memory migration for ``gxo run``: new data, remapped positions, warnings.

    Warnings read ``FILE:LINE: message`` and come in line order. ``data`` is not modified.
    """
    import copy

    warnings: list[tuple[int, str]] = []

    def warn(message: str, path: tuple[Any, ...]) -> None:
        pos = positions.nearest(path)
        where = f"{source}:{pos[0]}" if pos else source
        warnings.append((pos[0] if pos else 0, f"{where}: {message}"))

    out, manual = rewrite_templates(migrate_tree(copy.deepcopy(data), warn))
    for path, expr in manual:
        warn(
            f"Go template {expr} cannot be converted mechanically; rewrite it in Jinja2",
            _legacy_path(path),
        )
    new_positions = PositionMap()
    for path, pos in positions.items():
        new_positions[_modern_path(path)] = pos
    warnings.sort(key=lambda w: w[0])
    return dict(out), new_positions, [w for _, w in warnings]


def _migrate_channel_policy(
    value: MutableMapping[str, Any], warn: Callable[[str, str], None]
) -> MutableMapping[str, Any]:
    if value.get("overflow_strategy") == "error":
        warn(
            "overflow_strategy 'error' is not supported in 1.0.0; using 'block'",
            "overflow_strategy",
        )
        value["overflow_strategy"] = _same_kind(value["overflow_strategy"], "block")
    if value.get("buffer_size") == 0 and value.get("buffer_size") is not False:
        warn("buffer_size 0 (unbuffered) is not supported in 1.0.0; using 1", "buffer_size")
        value["buffer_size"] = 1
    return value


def _same_kind(old: Any, new: str) -> Any:
    """``new`` as the same string subclass as ``old`` (ruamel keeps quoting that way)."""
    if type(old) is str or not isinstance(old, str):
        return new
    try:
        made = type(old)(new)
    except TypeError:
        return new
    anchor = getattr(old, "anchor", None)
    if anchor is not None and getattr(anchor, "value", None) and hasattr(made, "yaml_set_anchor"):
        made.yaml_set_anchor(anchor.value, always_dump=anchor.always_dump)
    return made


def rewrite_templates(
    value: Any, path: tuple[Any, ...] = ()
) -> tuple[Any, list[tuple[tuple[Any, ...], str]]]:
    """Rewrite Go templates in every string of ``value``, changing containers in place.

    Returns the value and ``(path, expression)`` for each expression that needs a
    human. A container shared through a YAML alias is rewritten once, and every
    string keeps its ruamel scalar type (quotes, block style).
    """
    manual: list[tuple[tuple[Any, ...], str]] = []
    seen: set[int] = set()
    done: dict[int, Any] = {}

    def rewrite_str(s: str, where: tuple[Any, ...]) -> Any:
        if id(s) in done:
            return done[id(s)]
        new, bad = rewrite_go_template(s)
        manual.extend((where, b) for b in bad)
        result = s if new == s else _same_kind(s, new)
        if type(s) is not str:  # a ruamel scalar may be aliased: keep the replacement shared
            done[id(s)] = result
        return result

    def walk(node: Any, where: tuple[Any, ...]) -> Any:
        if isinstance(node, str):
            return rewrite_str(node, where)
        if isinstance(node, MutableMapping | list):
            if id(node) in seen:
                return node
            seen.add(id(node))
            keys = list(node.keys()) if isinstance(node, MutableMapping) else range(len(node))
            for k in keys:
                new = walk(node[k], (*where, k))
                if new is not node[k]:
                    node[k] = new
        return node

    return walk(value, path), manual


def _modern_path(path: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(path) >= 1 and path[0] == "tasks":
        rest = path[1:]
        if len(rest) >= 2 and rest[1] == "type":
            return ("workloads", rest[0], "process", "module", *rest[2:])
        if len(rest) >= 2 and rest[1] == "params":
            return ("workloads", rest[0], "process", "params", *rest[2:])
        return ("workloads", *rest)
    return path


def _legacy_path(path: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(path) >= 2 and path[0] == "workloads":
        rest = path[2:]
        if rest[:2] == ("process", "params"):
            return ("tasks", path[1], "params", *rest[2:])
        if rest[:2] == ("process", "module"):
            return ("tasks", path[1], "type")
        return ("tasks", path[1], *rest)
    return path
