"""Module reference generated from the registry: ``gxo modules`` and ``docs/modules/``.

Everything here is derived from each module's pydantic ``Params`` model,
``summary`` mapping and docstring, so documentation cannot drift from code.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gxo.config.durations import DURATION_PATTERN
from gxo.errors import UsageError
from gxo.modules.base import LAYERS, REGISTRY, ModuleSpec

__all__ = [
    "example_problems",
    "example_workloads",
    "module_reference",
    "nested_params",
    "params_rows",
    "print_module",
    "print_module_list",
    "rst_inline",
    "type_label",
]

_RST_LITERAL = re.compile(r"``(.+?)``", re.DOTALL)


def rst_inline(text: str) -> str:
    """Docstring text as Rich markup for a terminal: ``literal`` (reST, as docstrings
    write code) shows as bold code without its double backticks; the rest is escaped."""
    from rich.markup import escape

    out, last = [], 0
    for match in _RST_LITERAL.finditer(text):
        out.append(escape(text[last : match.start()]))
        out.append(f"[bold]{escape(match.group(1))}[/]")
        last = match.end()
    out.append(escape(text[last:]))
    return "".join(out)


def type_label(
    schema: dict[str, Any], defs: dict[str, Any] | None = None, *, ref_names: bool = False
) -> str:
    """A short human type name for a JSON Schema fragment.

    ``ref_names``: name nested models (``Paginate``) instead of calling them ``map``.
    """
    defs = defs or {}
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        target = defs.get(name, {})
        if target.get("type") == "object":
            return name if ref_names else "map"
        return type_label(target, defs, ref_names=ref_names) if target else name
    if "enum" in schema:
        return " | ".join(json.dumps(v) if not isinstance(v, str) else v for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            if any(s.get("pattern") == DURATION_PATTERN for s in schema[key]):
                return "duration"
            labels = [
                type_label(s, defs, ref_names=ref_names)
                for s in schema[key]
                if s.get("type") != "null"
            ]
            return " | ".join(dict.fromkeys(labels)) or "null"
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        return f"list[{type_label(items, defs, ref_names=ref_names)}]" if items else "list"
    if kind == "object":
        extra = schema.get("additionalProperties")
        return (
            f"map[{type_label(extra, defs, ref_names=ref_names)}]"
            if isinstance(extra, dict) and extra
            else "map"
        )
    return {
        "string": "string",
        "integer": "int",
        "number": "number",
        "boolean": "bool",
        "null": "null",
    }.get(kind or "", "any")


def params_rows(
    spec: ModuleSpec, *, ref_names: bool = False, schema: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """One row per param; ``schema`` saves generating the params JSON Schema again."""
    schema = schema or spec.params_model.model_json_schema()
    return _rows(schema, schema.get("$defs", {}), ref_names=ref_names)


def nested_params(
    spec: ModuleSpec, *, schema: dict[str, Any] | None = None
) -> list[tuple[str, list[dict[str, Any]]]]:
    """``(model name, rows)`` for each nested params model (``Paginate``, ``BasicAuth``)."""
    schema = schema or spec.params_model.model_json_schema()
    defs = schema.get("$defs", {})
    return [
        (name, _rows(d, defs, ref_names=True))
        for name, d in defs.items()
        if d.get("type") == "object" and d.get("properties")
    ]


def _rows(schema: dict[str, Any], defs: dict[str, Any], *, ref_names: bool) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        rows.append(
            {
                "name": name,
                "type": type_label(prop, defs, ref_names=ref_names),
                "required": name in required,
                "default": prop.get("default"),
                "description": prop.get("description", ""),
                "per_record_template": bool(prop.get("x-gxo-raw-template")),
            }
        )
    return rows


def module_reference(spec: ModuleSpec) -> dict[str, Any]:
    cls = spec.cls
    free = spec.params_model.model_config.get("extra") == "allow"
    return {
        "name": spec.name,
        "layer": spec.layer,
        "aliases": list(spec.aliases),
        "synopsis": spec.synopsis,
        "description": _description(spec),
        "params": params_rows(spec),
        "accepts_any_params": free,
        "summary": dict(cls.summary),
        "consumes_streams": cls.consumes.value,
        "produces_stream": cls.produces,
        "check_mode": cls.check_mode.value,  # gxo run --check (docs/check-mode.md)
        "example": spec.example,
        "params_schema": spec.params_model.model_json_schema(),
    }


def _description(spec: ModuleSpec) -> str:
    lines = spec.doc.splitlines()[1:]
    out = []
    for line in lines:
        if line.strip().lower().rstrip(":") in ("example", "examples"):
            break
        out.append(line)
    return "\n".join(out).strip()


def _lookup(name: str) -> ModuleSpec:
    spec, _ = REGISTRY.resolve(name)
    if spec is None:
        hint = REGISTRY.suggest(name)
        suffix = f" (did you mean {' or '.join(hint)}?)" if hint else ""
        raise UsageError(f"unknown module '{name}'{suffix}")
    return spec


def print_module_list(*, as_json: bool = False, console: Any = None) -> None:
    """Print the modules by layer; ``console`` (a rich Console) defaults to stdout."""
    specs = REGISTRY.all()
    if as_json:
        print(
            json.dumps(
                [{"name": s.name, "layer": s.layer, "synopsis": s.synopsis} for s in specs],
                indent=2,
            )
        )
        return
    from rich.console import Console
    from rich.table import Table

    console = console if console is not None else Console(highlight=False)
    for layer in LAYERS:
        in_layer = [s for s in specs if s.layer == layer]
        if not in_layer:
            continue
        table = Table(
            title=f"{layer}", title_justify="left", show_header=False, box=None, padding=(0, 2)
        )
        for s in in_layer:
            alias = f" [dim](was {', '.join(s.aliases)})[/]" if s.aliases else ""
            table.add_row(f"[bold]{s.name}[/]{alias}", rst_inline(s.synopsis))
        console.print(table)
        console.print()


def print_module(name: str, *, as_json: bool = False, console: Any = None) -> None:
    """Print one module's reference; ``console`` (a rich Console) defaults to stdout."""
    spec = _lookup(name)
    ref = module_reference(spec)
    if as_json:
        print(json.dumps(ref, indent=2, default=str))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.syntax import Syntax
    from rich.table import Table

    console = console if console is not None else Console(highlight=False)
    console.print(
        f"[bold]{spec.name}[/]  [dim]layer: {spec.layer}  check mode: {spec.cls.check_mode.value}[/]"
    )
    console.print(rst_inline(spec.synopsis))
    if ref["description"]:
        console.print()
        console.print(rst_inline(ref["description"]))
    console.print()
    if ref["accepts_any_params"]:
        console.print("[bold]Params:[/] any mapping")
    elif ref["params"]:
        table = Table(title="Params", title_justify="left")
        # Names are never cut ("inherit_envir…"): the description column wraps instead.
        longest = max(len(row["name"]) for row in ref["params"])
        table.add_column("name", no_wrap=True, min_width=longest)
        for col in ("type", "required", "default"):
            table.add_column(col)
        table.add_column("description", overflow="fold")
        for row in ref["params"]:
            default = (
                "" if row["required"] or row["default"] is None else json.dumps(row["default"])
            )
            desc = row["description"] + (
                " (rendered by the module)" if row["per_record_template"] else ""
            )
            table.add_row(
                row["name"],
                escape(row["type"]),
                "yes" if row["required"] else "",
                escape(default),
                rst_inline(desc),
            )
        console.print(table)
    else:
        console.print("[bold]Params:[/] none")
    streams = []
    if ref["consumes_streams"] != "none":
        streams.append(f"reads stream_inputs ({ref['consumes_streams']})")
    if ref["produces_stream"]:
        streams.append("writes an output stream")
    if streams:
        console.print(f"[bold]Streams:[/] {', '.join(streams)}")
    if ref["summary"]:
        console.print("[bold]Summary:[/]")
        for key, desc in ref["summary"].items():
            console.print(f"  {escape(key)}: {rst_inline(desc)}")
    if ref["example"]:
        console.print("[bold]Example:[/]")
        console.print(Syntax(ref["example"], "yaml", theme="ansi_dark", background_color="default"))


def example_workloads(spec: ModuleSpec) -> list[Any]:
    """The docstring example as a list of workloads (a single mapping counts as one)."""
    from ruamel.yaml import YAML

    data = YAML(typ="safe", pure=True).load(spec.example) if spec.example else None
    if data is None:
        return []
    return data if isinstance(data, list) else [data]


def example_problems(spec: ModuleSpec) -> list[str]:
    """What is wrong with a module's docstring example: no example, bad YAML, invalid params.

    Params of every workload using a registered module are validated; values that
    are templates are skipped, as ``gxo validate`` does before rendering.
    """
    from pydantic import ValidationError
    from ruamel.yaml.error import YAMLError

    from gxo.config.validate import under_template

    if not spec.example:
        return ["the docstring has no 'Example:' section"]
    try:
        workloads = example_workloads(spec)
    except YAMLError as exc:
        return [f"the example is not valid YAML: {exc}"]
    problems: list[str] = []
    uses_module = False
    for i, workload in enumerate(workloads, 1):
        process = workload.get("process") if isinstance(workload, dict) else None
        if not isinstance(process, dict) or not isinstance(process.get("module"), str):
            problems.append(f"example workload #{i} has no process.module")
            continue
        target, _ = REGISTRY.resolve(process["module"])
        if target is None:
            continue  # a module from elsewhere that is not installed
        uses_module = uses_module or target is spec
        params = process.get("params") or {}
        try:
            target.params_model.model_validate(params)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                if not under_template(params, err["loc"]):
                    loc = ".".join(str(p) for p in err["loc"])
                    problems.append(
                        f"example workload #{i} ({target.name}) params {loc}: {err['msg']}"
                    )
    if not uses_module:
        problems.append(f"the example does not use {spec.name}")
    return problems
