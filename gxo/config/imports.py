"""Playbook imports: ``imports: [{path, vars, prefix}]`` composes other files' workloads.

An import pulls every workload of another playbook file into the importing one,
before the model is validated, so validation, the graph, ``gxo ui``, ``gxo test``
and the REPL see one composed playbook:

* workload names and register keys get the import's ``prefix``, and every
  reference between imported workloads follows: ``depends_on``,
  ``stream_inputs``, templates reading a register key or
  ``_gxo.workloads.<name>``;
* the imported file's ``vars`` (with the import's ``vars`` replacing them) are
  scoped to its workloads: they join the composed playbook's vars under the
  prefixed name, and the imported templates are rewritten to read that name.
  Without a prefix they keep their names and must not clash. A name the
  imported file does not define is read from the importing playbook;
* relative paths (path params such as ``filesystem:read`` ``path``, ``exec``'s
  working directory, nested imports) stay relative to the imported file;
* positions of imported data point into the imported file, so errors there
  read ``common.gxo.yaml:12:7``;
* an import cycle and a name, register key or var defined twice are load errors
  naming both places.

Templates are rewritten token by token with Jinja's own lexer: only a name read
from the context is renamed, never an attribute (``x.name``), a filter, a test or
a keyword argument.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gxo.config.models import REGISTER_PATTERN
from gxo.config.yamlsafe import PositionMap, parse_yaml, read_text_file
from gxo.errors import Location, PlaybookValidationError

__all__ = ["IMPORT_KEYS", "SourcePos", "compose_imports", "rename_template"]

IMPORT_KEYS = ("path", "vars", "prefix")
# Top-level keys an imported file may have: the playbook's (its state and channel
# policies are the importing playbook's business and are ignored).
_FILE_KEYS = (
    "schemaVersion", "name", "vars", "workloads", "imports", "state_policy", "channel_policy",
)  # fmt: skip
_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME = re.compile(REGISTER_PATTERN)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_DEPTH = 16  # imports of imports: deeper is refused (a cycle is caught before)
# Where a string is a condition that may be written bare (no braces).
_BARE_PATHS = {("when",), ("lifecycle", "filter"), ("retry", "until")}
# Keys of a workload that hold names, not templates (renamed explicitly).
_NOT_TEMPLATES = {("name",), ("register",), ("depends_on",), ("stream_inputs",)}


class SourcePos(tuple[int, int]):
    """A (line, column) position in another file than the playbook's own (an import)."""

    file: str

    def __new__(cls, pos: tuple[int, int], file: str) -> SourcePos:
        self = super().__new__(cls, pos)
        self.file = file
        return self


def location_of(pos: tuple[int, int] | None, default_file: str) -> Location:
    """The :class:`Location` of a position, in its own file when it came from an import."""
    if pos is None:
        return Location(default_file)
    return Location(getattr(pos, "file", default_file), pos[0], pos[1])


@dataclass
class _Unit:
    """A file's workloads and vars after its own imports were composed in."""

    display: str
    workloads: list[dict[str, Any]] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    positions: PositionMap = field(default_factory=PositionMap)  # ("workloads"|"vars", ...)
    # Where each workload / register key / var was defined (for clash messages).
    defined: dict[tuple[str, str], Location] = field(default_factory=dict)


def _error(message: str, where: Location) -> PlaybookValidationError:
    return PlaybookValidationError(message, location=where)


def compose_imports(
    data: dict[str, Any],
    positions: PositionMap,
    display: str,
    base_dir: Path,
    real: str | None = None,
) -> tuple[dict[str, Any], PositionMap]:
    """``data`` with its imports composed in (workloads appended after its own), and
    the positions of the result. ``base_dir``: where relative import paths start;
    ``real``: the playbook file's real path (None for a text), to catch a cycle back
    to it. Raises a PlaybookValidationError located in the file at fault."""
    _EXPRESSIONS.clear()  # the module registry may have changed since the last load
    own = _Unit(display)
    _record_definitions(own, data, positions, display)
    chain = [(real or "<string>", display)]
    composed = _compose(data, positions, display, base_dir, chain, own)
    out = dict(data)
    out["workloads"] = list(data.get("workloads") or []) + composed.workloads
    if composed.vars:
        merged = dict(data.get("vars") or {})
        merged.update(composed.vars)
        out["vars"] = merged
    new_positions = PositionMap(positions)
    _shift_into(new_positions, composed.positions, len(data.get("workloads") or []))
    return out, new_positions


def _record_definitions(
    unit: _Unit, data: dict[str, Any], positions: PositionMap, display: str
) -> None:
    """Where ``data``'s own workloads, register keys and vars are defined."""
    workloads = data.get("workloads")
    for i, w in enumerate(workloads if isinstance(workloads, list) else ()):
        if not isinstance(w, dict):
            continue
        for kind, key in (("workload", "name"), ("register", "register")):
            value = w.get(key)
            if isinstance(value, str):
                where = location_of(positions.nearest(("workloads", i, key)), display)
                unit.defined.setdefault((kind, value), where)
    variables = data.get("vars")
    if isinstance(variables, dict):
        for key in variables:
            if isinstance(key, str):
                where = location_of(positions.nearest(("vars", key)), display)
                unit.defined.setdefault(("var", key), where)


def _compose(
    data: dict[str, Any],
    positions: PositionMap,
    display: str,
    base_dir: Path,
    chain: list[tuple[str, str]],
    into: _Unit,
) -> _Unit:
    """Compose ``data``'s imports into a unit of their workloads and vars (not ``data``'s
    own, which ``into`` already knows about: clashes are checked against them)."""
    imports = data.get("imports")
    imports_pos = location_of(positions.nearest(("imports",)), display)
    if imports is None:
        return _Unit(display)
    if not isinstance(imports, list):
        raise _error("imports: expected a list of {path, vars, prefix}", imports_pos)
    result = _Unit(display)
    for n, entry in enumerate(imports):
        where = location_of(positions.nearest(("imports", n)), display)
        spec = _check_entry(entry, n, positions, display)
        path_text = spec["path"]
        target = Path(path_text).expanduser()
        if not target.is_absolute():
            target = base_dir / target
        real = os.path.realpath(target)
        shown = _display_path(display, path_text)
        for earlier_real, earlier_display in chain:
            if earlier_real == real:
                raise _error(
                    "import cycle: "
                    + " -> ".join(d for _, d in chain)
                    + f" -> {shown} (imported again at {where}; "
                    f"{earlier_display} is already being imported)",
                    where,
                )
        if len(chain) > MAX_DEPTH:
            raise _error(f"imports nested deeper than {MAX_DEPTH} files", where)
        try:
            text = read_text_file(target, "imported playbook", shown)
        except PlaybookValidationError:
            raise
        except Exception as exc:  # ConfigError: not found, not a regular file, too big
            raise _error(f"imports[{n}]: {exc}", where) from None
        sub_data, sub_positions = parse_yaml(text, shown)
        _check_file(sub_data, sub_positions, shown, where)
        sub_dir = target.parent
        unit = _Unit(shown)
        _record_definitions(unit, sub_data, sub_positions, shown)
        nested = _compose(sub_data, sub_positions, shown, sub_dir, [*chain, (real, shown)], unit)
        _add_own(unit, sub_data, sub_positions, shown)
        _append(unit, nested)
        _apply_import(unit, spec, positions, n, display)
        _rebase_paths(unit, os.path.relpath(sub_dir, base_dir))
        _check_clashes(into, result, unit)
        _append(result, unit)
    return result


def _display_path(importer: str, path_text: str) -> str:
    if importer == "<string>" or os.path.isabs(path_text):
        return path_text
    return posixpath.normpath(posixpath.join(posixpath.dirname(importer), path_text))


def _check_entry(entry: Any, n: int, positions: PositionMap, display: str) -> dict[str, Any]:
    def where(*sub: Any) -> Location:
        return location_of(positions.nearest(("imports", n, *sub)), display)

    if isinstance(entry, str):  # shorthand: `- common.gxo.yaml`
        entry = {"path": entry}
    if not isinstance(entry, dict):
        raise _error(
            f"imports[{n}]: expected a mapping with 'path' (and 'vars', 'prefix')", where()
        )
    for key in entry:
        if key not in IMPORT_KEYS:
            raise _error(
                f"imports[{n}]: unknown key '{key}' (allowed: {', '.join(IMPORT_KEYS)})", where(key)
            )
    path = entry.get("path")
    if not isinstance(path, str) or not path.strip():
        raise _error(f"imports[{n}]: 'path' must be a non-empty string", where("path"))
    prefix = entry.get("prefix") or ""
    if not isinstance(prefix, str) or (prefix and not _PREFIX.fullmatch(prefix)):
        raise _error(
            f"imports[{n}]: prefix {prefix!r} must match ^[A-Za-z_][A-Za-z0-9_]*$ "
            "(it starts workload names and register keys)",
            where("prefix"),
        )
    variables = entry.get("vars") or {}
    if not isinstance(variables, dict):
        raise _error(f"imports[{n}]: 'vars' must be a mapping", where("vars"))
    for key in variables:
        if not isinstance(key, str) or not _NAME.match(key):
            raise _error(
                f"imports[{n}]: variable name {key!r} must match {REGISTER_PATTERN}",
                where("vars", key),
            )
    return {"path": path, "prefix": prefix, "vars": variables}


def _check_file(data: Any, positions: PositionMap, shown: str, where: Location) -> None:
    top = location_of(positions.nearest(()), shown)
    if not isinstance(data, dict):
        raise _error(
            f"imported file {shown} (imported at {where}) must be a playbook mapping "
            "with 'workloads'",
            top,
        )
    if "tasks" in data:
        raise _error(
            f"imported file {shown} uses the legacy 'tasks' format: migrate it first "
            f"(gxo migrate -f {shown} --in-place)",
            location_of(positions.nearest(("tasks",)), shown),
        )
    for key in data:
        if key not in _FILE_KEYS:
            raise _error(
                f"unknown key '{key}' in imported file {shown} (imported at {where})",
                location_of(positions.nearest((key,)), shown),
            )
    if not isinstance(data.get("workloads"), list):
        raise _error(
            f"imported file {shown} (imported at {where}) needs a 'workloads' list",
            location_of(positions.nearest(("workloads",)), shown),
        )
    variables = data.get("vars")
    if variables is not None and not isinstance(variables, dict):
        raise _error(
            f"imported file {shown}: 'vars' must be a mapping",
            location_of(positions.nearest(("vars",)), shown),
        )


def _add_own(unit: _Unit, data: dict[str, Any], positions: PositionMap, shown: str) -> None:
    """The imported file's own workloads and vars, first in the unit."""
    unit.workloads = list(data["workloads"])
    unit.vars = dict(data.get("vars") or {})
    own = unit.positions
    for path, pos in positions.items():
        if len(path) >= 2 and (path[0] == "workloads" or path[0] == "vars"):
            own[path] = SourcePos(pos, shown)


def _append(unit: _Unit, other: _Unit) -> None:
    offset = len(unit.workloads)
    unit.workloads.extend(other.workloads)
    unit.vars.update(other.vars)
    if not unit.positions:
        unit.positions = other.positions
    else:
        _shift_into(unit.positions, other.positions, offset)
    for defined, where in other.defined.items():
        unit.defined.setdefault(defined, where)


def _shift_into(into: PositionMap, positions: PositionMap, offset: int) -> None:
    """``positions`` added to ``into``, their workload indexes moved by ``offset``."""
    for path, pos in positions.items():
        if path[0] == "workloads":
            into[("workloads", path[1] + offset, *path[2:])] = pos
        else:
            into[path] = pos


def _apply_import(
    unit: _Unit,
    spec: dict[str, Any],
    importer_positions: PositionMap,
    n: int,
    importer: str,
) -> None:
    """Prefix the unit's names, scope its vars and set the import's vars in place."""
    prefix: str = spec["prefix"]
    overrides: dict[str, Any] = spec["vars"]
    workload_names = {
        w["name"] for w in unit.workloads if isinstance(w, dict) and _is_str(w.get("name"))
    }
    registers = {
        w["register"] for w in unit.workloads if isinstance(w, dict) and _is_str(w.get("register"))
    }
    var_names = set(unit.vars) | set(overrides)
    wmap = {name: prefix + name for name in workload_names} if prefix else {}
    rmap = {name: prefix + name for name in registers | var_names} if prefix else {}
    if rmap or wmap:
        cache: dict[tuple[str, bool], str] = {}  # a playbook repeats its templates
        unit.workloads = [_rename_workload(w, wmap, rmap, cache) for w in unit.workloads]
        unit.vars = {
            rmap.get(k, k): _rename_value(v, rmap, wmap, ("vars", k), cache)
            for k, v in unit.vars.items()
        }
        moved = {p: pos for p, pos in unit.positions.items() if p[0] == "vars" and p[1] in rmap}
        for p in moved:
            del unit.positions[p]
        for p, pos in moved.items():
            unit.positions[("vars", rmap[p[1]], *p[2:])] = pos
        unit.defined = {
            (kind, (wmap if kind == "workload" else rmap).get(name, name)): loc
            for (kind, name), loc in unit.defined.items()
        }
    for key, value in overrides.items():  # the importer's values: never renamed
        unit.vars[rmap.get(key, key)] = value
        loc = location_of(importer_positions.nearest(("imports", n, "vars", key)), importer)
        unit.positions[("vars", rmap.get(key, key))] = SourcePos(
            (loc.line or 1, loc.column or 1), loc.file
        )
        unit.defined[("var", rmap.get(key, key))] = loc


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _rename_workload(
    w: Any, wmap: dict[str, str], rmap: dict[str, str], cache: dict[tuple[str, bool], str]
) -> Any:
    if not isinstance(w, dict):
        return w
    out = dict(w)
    if _is_str(out.get("name")):
        out["name"] = wmap.get(out["name"], out["name"])
    if _is_str(out.get("register")):
        out["register"] = rmap.get(out["register"], out["register"])
    for key in ("depends_on", "stream_inputs"):
        if isinstance(out.get(key), list):
            out[key] = [wmap.get(t, t) if _is_str(t) else t for t in out[key]]
    expressions = _expression_params(out)
    # The loop variable is the workload's own name, never a var or register to rename.
    local = _loop_names(out) & rmap.keys()
    inner = {k: v for k, v in rmap.items() if k not in local} if local else rmap
    inner_cache: dict[tuple[str, bool], str] = {} if local else cache
    for key, value in list(out.items()):
        if (key,) in _NOT_TEMPLATES:
            continue
        if key == "loop" or not local:
            out[key] = _rename_value(value, rmap, wmap, (key,), cache, expressions)
        else:
            out[key] = _rename_value(value, inner, wmap, (key,), inner_cache, expressions)
    return out


def _loop_names(w: dict[str, Any]) -> set[str]:
    if w.get("loop") is None:
        return set()
    control = w.get("loop_control")
    loop_var = control.get("loop_var") if isinstance(control, dict) else None
    return {loop_var if isinstance(loop_var, str) else "item", "loop_index"}


def _expression_params(w: dict[str, Any]) -> frozenset[str]:
    """Params of the workload's module that hold a condition that may be written bare."""
    process = w.get("process")
    module = process.get("module") if isinstance(process, dict) else None
    if not isinstance(module, str):
        return frozenset()
    found = _EXPRESSIONS.get(module)
    if found is None:
        from gxo.modules.base import REGISTRY

        spec, _ = REGISTRY.resolve(module)
        found = _EXPRESSIONS[module] = spec.expression_paths if spec is not None else frozenset()
    return found


_EXPRESSIONS: dict[str, frozenset[str]] = {}


def _rename_value(
    value: Any,
    rmap: dict[str, str],
    wmap: dict[str, str],
    path: tuple[Any, ...],
    cache: dict[tuple[str, bool], str],
    expressions: frozenset[str] = frozenset(),
) -> Any:
    if isinstance(value, str):
        bare = path in _BARE_PATHS or (
            len(path) == 3 and path[:2] == ("process", "params") and path[2] in expressions
        )
        key = (value, bare)
        found = cache.get(key)
        if found is None:
            found = cache[key] = rename_template(value, rmap, wmap, bare=bare)
        return found
    if isinstance(value, dict):
        return {
            k: _rename_value(v, rmap, wmap, (*path, k), cache, expressions)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _rename_value(v, rmap, wmap, (*path, i), cache, expressions)
            for i, v in enumerate(value)
        ]
    return value


def rename_template(
    source: str, names: dict[str, str], workloads: dict[str, str], *, bare: bool = False
) -> str:
    """``source`` reading ``names[x]`` wherever it read the context name ``x``, and
    ``_gxo.workloads.<workloads[w]>`` for ``_gxo.workloads.<w>``.

    A string without template syntax is returned as is (unless ``bare``: a condition).
    """
    from gxo.template.engine import is_template

    if not any(w in names or w in workloads for w in _WORD.findall(source)):
        return source
    wrapped = bare and not is_template(source)
    if not wrapped and not is_template(source):
        return source
    text = "{{ " + source + " }}" if wrapped else source
    from jinja2 import TemplateSyntaxError

    from gxo.template.engine import _ENV

    try:
        tokens = [(kind, value) for _, kind, value in _ENV.lexer.tokeniter(text, None)]
    except TemplateSyntaxError:
        return source  # validation reports the syntax error at its line
    if "".join(value for _, value in tokens) != text:
        return source  # the lexer normalised something: leave it to validation
    out = [value for _, value in tokens]
    significant = [i for i, (kind, _) in enumerate(tokens) if kind not in ("whitespace", "data")]
    depth = 0
    for pos, i in enumerate(significant):
        kind, value = tokens[i]
        if kind == "operator":
            depth += value in ("(", "[", "{")
            depth -= value in (")", "]", "}")
            continue
        before = [tokens[j] for j in significant[max(0, pos - 4) : pos]]
        if workloads and _reads_workloads(before):
            if kind == "name" and value in workloads and before[-1] == ("operator", "."):
                out[i] = workloads[value]
            elif kind == "string" and before[-1] == ("operator", "[") and len(value) > 1:
                quote, inner = value[0], value[1:-1]
                if inner in workloads:
                    out[i] = quote + workloads[inner] + quote
            continue
        if kind != "name" or value not in names:
            continue
        prev = before[-1] if before else ("", "")
        if prev in (("operator", "."), ("operator", "|")):
            continue  # an attribute or a filter
        if prev == ("name", "is") or (
            prev == ("name", "not") and before[-2:-1] == [("name", "is")]
        ):
            continue  # a test
        after = tokens[significant[pos + 1]] if pos + 1 < len(significant) else ("", "")
        if depth and after == ("operator", "="):
            continue  # a keyword argument
        out[i] = names[value]
    result = "".join(out)
    return result[3:-3] if wrapped else result


def _reads_workloads(before: list[tuple[str, str]]) -> bool:
    """The tokens before are ``_gxo . workloads .`` (or ``tasks``, or ``[``)."""
    return len(before) == 4 and (
        before[0] == ("name", "_gxo")
        and before[1] == ("operator", ".")
        and before[2] in (("name", "workloads"), ("name", "tasks"))
        and before[3] in (("operator", "."), ("operator", "["))
    )


def _rebase_paths(unit: _Unit, rel: str) -> None:
    """Relative path params of the unit's workloads: relative to the importer's directory."""
    if rel in ("", "."):
        return
    from gxo.modules.base import REGISTRY

    rel = rel.replace(os.sep, "/")
    for index, w in enumerate(unit.workloads):
        if not isinstance(w, dict) or not isinstance(w.get("process"), dict):
            continue
        process = w["process"]
        spec, _ = REGISTRY.resolve(process.get("module") or "")
        if spec is None:
            continue
        params = process.get("params")
        params = dict(params) if isinstance(params, dict) else {}
        changed = False
        for dotted in spec.cls.path_params:
            keys = dotted.split(".")
            holder: Any = params
            for key in keys[:-1]:
                holder = holder.get(key) if isinstance(holder, dict) else None
            if not isinstance(holder, dict) or not isinstance(holder.get(keys[-1]), str):
                continue
            if len(keys) > 1:  # copy the nested mapping before changing it
                holder = _copy_to(params, keys[:-1])
            new = _rebased(holder[keys[-1]], rel)
            if new != holder[keys[-1]]:
                holder[keys[-1]] = new
                changed = True
        if "cwd" in spec.cls.path_params and params.get("cwd") is None:
            params["cwd"] = rel  # exec runs in the imported file's directory
            changed = True
        if changed:
            unit.workloads[index] = {**w, "process": {**process, "params": params}}


def _copy_to(params: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    holder = params
    for key in keys:
        holder[key] = dict(holder[key])
        holder = holder[key]
    return holder


def _rebased(value: str, rel: str) -> str:
    """``data.csv`` → ``lib/data.csv``; absolute paths, ``~``, URLs and paths that
    start with a template expression are left alone."""
    from gxo.template.engine import is_template

    if not value or "://" in value or value.startswith(("/", "~")):
        return value
    if is_template(value):
        head = re.split(r"\{\{|\{%|\{#", value, maxsplit=1)[0]
        if not head:
            return value
        return posixpath.join(rel, value)
    return posixpath.normpath(posixpath.join(rel, value))


def _check_clashes(own: _Unit, earlier: _Unit, unit: _Unit) -> None:
    """A name the unit defines that the importer or an earlier import defines too."""
    for key, where in unit.defined.items():
        first = own.defined.get(key) or earlier.defined.get(key)
        if first is None or first == where:
            continue
        kind, name = key
        what = {"workload": "workload name", "register": "register key", "var": "var"}[kind]
        raise _error(
            f"{what} '{name}' is defined twice: at {first} and at {where} "
            "(give the import a 'prefix')",
            where,
        )
