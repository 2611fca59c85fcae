"""The v0.1.2a playbook format (``tasks:`` with ``type:``) and its migration to 1.0.0.

Both the in-memory shim used by ``gxo run`` and the file rewrite of
``gxo migrate`` go through :func:`convert_task` and :func:`rewrite_go_template`,
so they cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from gxo.config.loader import PositionMap

__all__ = [
    "LEGACY_TASK_KEYS",
    "convert_task",
    "is_legacy",
    "migrate_data",
    "rewrite_go_template",
]

LEGACY_TASK_KEYS = (
    "name", "type", "params", "register", "stream_inputs", "ignore_errors", "when", "loop",
    "loop_control", "retry", "timeout", "policy_ref", "policy", "state_policy",
)  # fmt: skip

_GO_ACTION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.DOTALL)
# A '.name' path start that is not an attribute of something before it.
_DOT_IDENT = re.compile(r"(?<![\w\)\]\.'\"])\.([A-Za-z_][A-Za-z0-9_]*)")
_INDEX_SEGMENT = re.compile(r"\.(\d+)(?=\b)")


def is_legacy(data: dict[str, Any]) -> bool:
    return "tasks" in data and "workloads" not in data


def rewrite_go_template(text: str) -> tuple[str, list[str]]:
    """Rewrite Go-template actions to Jinja2 where the mapping is mechanical.

    ``{{ .x.y }}`` → ``{{ x.y }}``, ``{{ .items.0.id }}`` → ``{{ items[0].id }}``,
    ``{{ .a == "b" }}`` → ``{{ a == "b" }}``. Anything else (Go functions such as
    ``eq .a "b"``, ``{{ . }}``, unknown filters) is kept as it is and returned in
    the list of expressions that need a human.
    """
    if "{{" not in text:
        return text, []
    manual: list[str] = []

    def convert(m: re.Match[str]) -> str:
        left, body, right = m.group(1), m.group(2), m.group(3)
        if not re.search(r"(?<![\w\)\]'\"])\.", body):
            return m.group(0)  # already Jinja (no Go-style leading dot)
        new_body = _INDEX_SEGMENT.sub(r"[\1]", body)
        new_body = _DOT_IDENT.sub(r"\1", new_body)
        candidate = "{{" + left + new_body + right + "}}"
        if _is_valid_jinja(candidate):
            return candidate
        manual.append(m.group(0))
        return m.group(0)

    return _GO_ACTION.sub(convert, text), manual


def _is_valid_jinja(source: str) -> bool:
    from jinja2 import TemplateSyntaxError, nodes

    from gxo.template.engine import _ANALYSIS_ENV

    try:
        tree = _ANALYSIS_ENV.parse(source)
    except TemplateSyntaxError:
        return False
    for node in tree.find_all(nodes.Filter):
        if node.name not in _ANALYSIS_ENV.filters:
            return False
    # A lone '.' (Go's "current value") has no Jinja equivalent.
    return not re.search(r"\{\{-?\s*\.\s*-?\}\}", source)


def convert_task(task: dict[str, Any], index: int, warn: Callable[[str, tuple[Any, ...]], None]) -> dict[str, Any]:
    """One legacy task as a 1.0.0 workload mapping, keeping the key order users wrote."""
    out: dict[str, Any] = {}
    name = task.get("name") or f"task_{index + 1}"
    out["name"] = name
    if "name" not in task:
        warn(f"task #{index + 1} had no name; it is named '{name}'", ("tasks", index))
    out["lifecycle"] = {"policy": "run_once"}
    process: dict[str, Any] = {"module": task.get("type")}
    if "params" in task:
        process["params"] = task["params"]
    out["process"] = process
    for key, value in task.items():
        if key in ("name", "type", "params"):
            continue
        if key == "policy_ref":
            warn("'policy_ref' is not supported in 1.0.0 and was dropped", ("tasks", index, key))
            continue
        if key == "policy":
            warn("task 'policy' (skip_on_no_input) is not supported in 1.0.0 and was dropped", ("tasks", index, key))
            continue
        if key == "retry" and isinstance(value, dict) and "on_error" in value:
            value = {k: v for k, v in value.items() if k != "on_error"}
            warn("retry.on_error is implied in 1.0.0 and was dropped", ("tasks", index, "retry", "on_error"))
        out[key] = value
    return out


def migrate_data(
    data: dict[str, Any], positions: PositionMap, source: str
) -> tuple[dict[str, Any], PositionMap, list[str]]:
    """In-memory migration for ``gxo run``: new data, remapped positions, warnings."""
    warnings: list[str] = []

    def warn(message: str, path: tuple[Any, ...]) -> None:
        pos = positions.nearest(path)
        where = f"{source}:{pos[0]}" if pos else source
        warnings.append(f"{where}: {message}")

    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "tasks":
            tasks = value if isinstance(value, list) else []
            out["workloads"] = [
                convert_task(t, i, warn) if isinstance(t, dict) else t for i, t in enumerate(tasks)
            ]
        elif key == "task_policy":
            warn("'task_policy' is not supported in 1.0.0 and was dropped", (key,))
        elif key == "channel_policy" and isinstance(value, dict):
            out[key] = _migrate_channel_policy(value, lambda m: warn(m, ("channel_policy",)))
        else:
            out[key] = value
    out, manual = _rewrite_all(out)
    for path, expr in manual:
        warn(f"Go template {expr} cannot be converted mechanically; rewrite it in Jinja2", _legacy_path(path))
    new_positions = PositionMap()
    for path, pos in positions.items():
        new_positions[_modern_path(path)] = pos
    return out, new_positions, warnings


def _migrate_channel_policy(value: dict[str, Any], warn: Callable[[str], None]) -> dict[str, Any]:
    value = dict(value)
    if value.get("overflow_strategy") == "error":
        warn("overflow_strategy 'error' is not supported in 1.0.0; using 'block'")
        value["overflow_strategy"] = "block"
    if value.get("buffer_size") == 0:
        warn("buffer_size 0 (unbuffered) is not supported in 1.0.0; using 1")
        value["buffer_size"] = 1
    return value


def _rewrite_all(value: Any, path: tuple[Any, ...] = ()) -> tuple[Any, list[tuple[tuple[Any, ...], str]]]:
    manual: list[tuple[tuple[Any, ...], str]] = []
    if isinstance(value, str):
        new, bad = rewrite_go_template(value)
        return new, [(path, b) for b in bad]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out[k], sub = _rewrite_all(v, (*path, k))
            manual += sub
        return out, manual
    if isinstance(value, list):
        items = []
        for i, v in enumerate(value):
            nv, sub = _rewrite_all(v, (*path, i))
            items.append(nv)
            manual += sub
        return items, manual
    return value, manual


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
