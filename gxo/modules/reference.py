"""Module reference generated from the registry: ``gxo modules`` and ``docs/modules/``.

Everything here is derived from each module's pydantic ``Params`` model,
``summary`` mapping and docstring, so documentation cannot drift from code.
"""

from __future__ import annotations

import json
from typing import Any

from gxo.errors import UsageError
from gxo.modules.base import LAYERS, REGISTRY, ModuleSpec

__all__ = ["module_reference", "params_rows", "print_module", "print_module_list", "type_label"]


def type_label(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> str:
    """A short human type name for a JSON Schema fragment."""
    defs = defs or {}
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        target = defs.get(name, {})
        return "map" if target.get("type") == "object" else type_label(target, defs) if target else name
    if "enum" in schema:
        return " | ".join(json.dumps(v) if not isinstance(v, str) else v for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            labels = [type_label(s, defs) for s in schema[key] if s.get("type") != "null"]
            return " | ".join(dict.fromkeys(labels)) or "null"
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        return f"list[{type_label(items, defs)}]" if items else "list"
    if kind == "object":
        extra = schema.get("additionalProperties")
        return f"map[{type_label(extra, defs)}]" if isinstance(extra, dict) and extra else "map"
    return {"string": "string", "integer": "int", "number": "number", "boolean": "bool", "null": "null"}.get(
        kind or "", "any"
    )


def params_rows(spec: ModuleSpec) -> list[dict[str, Any]]:
    schema = spec.params_model.model_json_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        rows.append(
            {
                "name": name,
                "type": type_label(prop, defs),
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
        print(json.dumps([{"name": s.name, "layer": s.layer, "synopsis": s.synopsis} for s in specs], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = console if console is not None else Console(highlight=False)
    for layer in LAYERS:
        in_layer = [s for s in specs if s.layer == layer]
        if not in_layer:
            continue
        table = Table(title=f"{layer}", title_justify="left", show_header=False, box=None, padding=(0, 2))
        for s in in_layer:
            alias = f" [dim](was {', '.join(s.aliases)})[/]" if s.aliases else ""
            table.add_row(f"[bold]{s.name}[/]{alias}", s.synopsis)
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
    console.print(f"[bold]{spec.name}[/]  [dim]layer: {spec.layer}[/]")
    console.print(escape(spec.synopsis))
    if ref["description"]:
        console.print()
        console.print(escape(ref["description"]))
    console.print()
    if ref["accepts_any_params"]:
        console.print("[bold]Params:[/] any mapping")
    elif ref["params"]:
        table = Table(title="Params", title_justify="left")
        for col in ("name", "type", "required", "default", "description"):
            table.add_column(col)
        for row in ref["params"]:
            default = "" if row["required"] or row["default"] is None else json.dumps(row["default"])
            desc = row["description"] + (" (rendered per record)" if row["per_record_template"] else "")
            table.add_row(row["name"], escape(row["type"]), "yes" if row["required"] else "", escape(default), escape(desc))
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
            console.print(f"  {escape(key)}: {escape(desc)}")
    if ref["example"]:
        console.print("[bold]Example:[/]")
        console.print(Syntax(ref["example"], "yaml", theme="ansi_dark", background_color="default"))
