"""Loading playbooks: YAML → plain data with positions → pydantic model → validation.

Every failure is a :class:`~gxo.errors.ConfigError` whose message names the file,
the line and column, and the workload — never a traceback.
"""

from __future__ import annotations

import difflib
import functools
import gc
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec

from pydantic import BaseModel, ValidationError

from gxo.config.models import Playbook
from gxo.config.yamlsafe import (
    MAX_ALIAS_EXPANSION,
    MAX_NESTING,
    MAX_NODES,
    PositionMap,
    decode_error_location,
    parse_yaml,
    read_text_file,
)
from gxo.errors import ConfigError, GxoError, Location, PlaybookValidationError

if TYPE_CHECKING:
    from gxo.engine.dag import WorkloadGraph

__all__ = [  # the MAX_* limits are re-exported: they live with the hardened YAML reader
    "MAX_ALIAS_EXPANSION",
    "MAX_NESTING",
    "MAX_NODES",
    "LoadedPlaybook",
    "PositionMap",
    "decode_error_location",
    "load_playbook",
    "parse_yaml",
    "pydantic_problems",
]

Path_ = tuple[Any, ...]


@dataclass
class LoadedPlaybook:
    """A validated playbook plus what the loader knows about its source."""

    playbook: Playbook
    source: str  # file path as given, or "<string>"
    positions: PositionMap = field(default_factory=PositionMap)
    warnings: list[str] = field(default_factory=list)
    legacy: bool = False
    raw: dict[str, Any] = field(default_factory=dict)
    graph: WorkloadGraph | None = None  # set by validation

    @property
    def base_dir(self) -> Path:
        return Path(self.source).resolve().parent if self.source != "<string>" else Path.cwd()

    def location(self, path: Iterable[Any]) -> Location:
        pos = self.positions.nearest(path)
        if pos is None:
            return Location(self.source)
        # An imported workload's positions carry their own file (gxo/config/imports.py).
        return Location(getattr(pos, "file", self.source), *pos)

    def workload_index(self, name: str) -> int | None:
        for i, w in enumerate(self.playbook.workloads):
            if w.name == name:
                return i
        return None

    def workload_location(self, name: str, *sub: Any) -> Location:
        i = self.workload_index(name)
        return self.location(("workloads", i, *sub)) if i is not None else Location(self.source)


def _workload_name_at(data: Any, path: Path_) -> str | None:
    if len(path) >= 2 and path[0] == "workloads" and isinstance(path[1], int):
        try:
            name = data["workloads"][path[1]].get("name")
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
        return name if isinstance(name, str) else f"#{path[1] + 1}"
    return None


def pydantic_problems(
    exc: ValidationError,
    *,
    base_path: Path_,
    positions: PositionMap,
    source: str,
    data: Any,
    model: type[BaseModel] | None = None,
    ignore: Any = None,
    workload: str | None = None,
) -> list[GxoError]:
    """Readable errors, one per pydantic error, located in the YAML file.

    ``ignore(loc)`` may return True for errors to drop (template-valued params).
    """
    problems: list[GxoError] = []
    for err in _collapse_unions(exc.errors(include_url=False)):
        loc = tuple(err["loc"])
        if ignore is not None and ignore(loc):
            continue
        full = (*base_path, *loc)
        pos = positions.nearest(full)
        location = Location(getattr(pos, "file", source), *pos) if pos else Location(source)
        wname = workload or _workload_name_at(data, full)
        # Inside a workload the message is already prefixed with its name: show the
        # path relative to it (``retry.attempts``, not ``workloads.0.retry.attempts``).
        shown = (
            loc[2:]
            if wname and len(loc) > 2 and loc[0] == "workloads" and isinstance(loc[1], int)
            else loc
        )
        problems.append(
            PlaybookValidationError(
                _describe(err, shown, model, loc), location=location, workload=wname
            )
        )
    problems.sort(
        key=lambda p: (p.location.line or 0, p.location.column or 0) if p.location else (0, 0)
    )
    return problems


_TYPE_NAMES = {
    "str": "a string", "bool": "a boolean", "int": "an integer", "float": "a number",
    "list": "a list", "dict": "a mapping", "none": "null",
}  # fmt: skip


def _collapse_unions(errors: list[Any]) -> list[Any]:
    """One error per location for ``X | Y`` fields (pydantic reports each member)."""
    out: list[Any] = []
    for err in errors:
        loc = tuple(err["loc"])
        tag = loc[-1] if loc else None
        if not isinstance(tag, str):
            out.append(err)
            continue
        member = tag.split("[", 1)[0] in _TYPE_NAMES or tag.startswith("function-")
        if member and err["type"].endswith(("_type", "_parsing")):
            base = loc[:-1]
            name = _TYPE_NAMES.get(tag.split("[", 1)[0], tag)
            if out and out[-1].get("_union") == base:
                out[-1]["_expected"].append(name)
                continue
            out.append(
                {
                    "type": "union",
                    "loc": base,
                    "_union": base,
                    "_expected": [name],
                    "input": err.get("input"),
                    "msg": "",
                }
            )
            continue
        out.append(err)
    for err in out:
        if err.get("_union") is not None:
            expected = list(dict.fromkeys(err["_expected"]))
            err["msg"] = f"expected {' or '.join(expected)}, got {_type_of(err.get('input'))}"
            if err["loc"][-1:] == ("when",) and isinstance(err.get("input"), list) and err["input"]:
                # Ansible's list of conditions, all of which must hold.
                err["msg"] += " (for several conditions, join them with 'and')"
    return out


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


# Keys Ansible and GitHub Actions users reach for -> GXO's (when that key is allowed there).
_FOREIGN_KEYS = {
    "if": "when",
    "needs": "depends_on",
    "until": "retry.until",
    "retries": "retry.attempts",
    "with_items": "loop",
    "with_list": "loop",
    "with_dict": "loop",
    "continue-on-error": "ignore_errors",
    "continue_on_error": "ignore_errors",
    "timeout-minutes": "timeout",
    "timeout_minutes": "timeout",
}


def _describe(
    err: Any, loc: Path_, model: type[BaseModel] | None, full_loc: Path_ | None = None
) -> str:
    kind = err["type"]
    full_loc = loc if full_loc is None else full_loc
    dotted = ".".join(str(p) for p in loc if not str(p).startswith("function-"))
    if kind == "extra_forbidden":
        key = loc[-1] if loc else "?"
        msg = f"unknown key '{key}'"
        allowed = _allowed_keys(model, full_loc[:-1])
        known = _FOREIGN_KEYS.get(str(key))
        if known and known.split(".")[0] in allowed:
            return f"{msg} (GXO's name for it: '{known}')"
        if allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            msg += (
                f" (did you mean '{close[0]}'?)"
                if close
                else f" (allowed: {', '.join(sorted(allowed))})"
            )
        return msg
    if kind == "missing":
        return f"missing required key '{loc[-1]}'" if loc else "missing required key"
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if kind == "literal_error" and loc and loc[-1] == "schemaVersion":
        message = f'unsupported schemaVersion {err.get("input")!r}: expected "1.0.0"'
    return f"{dotted}: {message}" if dotted else message


def _allowed_keys(model: type[BaseModel] | None, loc: Path_) -> list[str]:
    """Field names of the (nested) model at ``loc`` — for "did you mean" hints."""
    import types
    import typing

    if model is None:
        return []
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        fld = next(
            (f for n, f in current.model_fields.items() if (f.alias or n) == part or n == part),
            None,
        )
        if fld is None:
            return []
        current = _unwrap(fld.annotation, types, typing)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _unwrap(annotation: Any, types: Any, typing: Any) -> Any:
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType) or origin is typing.Annotated:
        for a in args:
            found = _unwrap(a, types, typing)
            if isinstance(found, type) and issubclass(found, BaseModel):
                return found
    return annotation


def _in_line_order(problems: list[GxoError]) -> list[GxoError]:
    """Sorted by position (stable), each message once."""
    unique = list({str(p): p for p in problems}.values())
    return sorted(
        unique,
        key=lambda p: (p.location.line or 0, p.location.column or 0) if p.location else (0, 0),
    )


def read_playbook_text(path: str | Path, display: str | None = None) -> str:
    """A playbook file's text, or a ConfigError saying why it cannot be read.

    Only a regular file of at most MAX_FILE_BYTES is read (a FIFO or /dev/zero is refused).
    """
    return read_text_file(path, "playbook", display)


_P = ParamSpec("_P")


def _gc_paused(load: Callable[_P, LoadedPlaybook]) -> Callable[_P, LoadedPlaybook]:
    """Run ``load`` with the cyclic GC paused (main thread only: the switch is process-wide).

    A load allocates a few hundred objects per workload (parsed data, positions,
    models, template trees) and frees almost none until it ends: each collection
    walks the whole growing heap for nothing. The GC runs again as soon as the
    load returns or raises.
    """

    @functools.wraps(load)
    def paused_load(*args: _P.args, **kwargs: _P.kwargs) -> LoadedPlaybook:
        paused = gc.isenabled() and threading.current_thread() is threading.main_thread()
        if paused:
            gc.disable()
        try:
            return load(*args, **kwargs)
        finally:
            if paused:
                gc.enable()

    return paused_load


@_gc_paused
def load_playbook(
    source: str | Path | None = None,
    *,
    text: str | None = None,
    name: str | None = None,
    check_lifecycles: bool = False,
    extra_names: set[str] | None = None,
) -> LoadedPlaybook:
    """Load and fully validate a playbook from a file (``source``) or from ``text``.

    ``check_lifecycles`` rejects non-``run_once`` workloads (what ``gxo run`` needs);
    ``extra_names`` are variables that will be supplied at run time (``-e``).
    """
    from gxo.config.legacy import is_legacy, migrate_data
    from gxo.config.validate import problems_beside_schema_errors, validate_playbook

    display = name or (str(source) if source is not None else "<string>")
    if text is None:
        if source is None:
            raise ConfigError("no playbook given")
        text = read_playbook_text(source, display)
    data, positions = parse_yaml(text, display)
    if data is None:
        raise PlaybookValidationError("playbook is empty", location=Location(display))
    if not isinstance(data, dict):
        pos = positions.nearest(())
        raise PlaybookValidationError(
            f"a playbook must be a mapping with schemaVersion, name and workloads, got {type(data).__name__}",
            location=Location(display, *pos) if pos else Location(display, 1, 1),
        )
    warnings: list[str] = []
    legacy = False
    if "tasks" in data and "workloads" in data:
        raise PlaybookValidationError(
            "a playbook cannot have both 'tasks' (legacy) and 'workloads': use only 'workloads'",
            location=Location(display, *(positions.nearest(("tasks",)) or (1, 1))),
        )
    if is_legacy(data):
        legacy = True
        data, positions, migration_warnings = migrate_data(data, positions, display)
        warnings.append(
            f"{display}: playbook uses the deprecated 'tasks' format (v0.1.2a); it was migrated in memory. "
            f"Run 'gxo migrate -f {display} --in-place' to upgrade the file."
        )
        warnings.extend(migration_warnings)
    if "imports" in data:  # only a playbook with imports pays for them
        from gxo.config.imports import compose_imports

        # A text with an absolute name (the daemon's apply: the client's file) imports
        # relative to that file; any other text relative to the current directory.
        origin = source if source is not None else (name if name and os.path.isabs(name) else None)
        real = os.path.realpath(origin) if origin is not None else None
        base = Path(real).parent if real is not None else Path.cwd()
        data, positions = compose_imports(data, positions, display, base, real)
    try:
        try:
            playbook = Playbook.model_validate(data)
        except ValidationError as exc:
            problems = pydantic_problems(
                exc, base_path=(), positions=positions, source=display, data=data, model=Playbook
            )
            # All problems in one pass: the workloads the schema accepted are checked too.
            problems = _in_line_order(
                problems
                + problems_beside_schema_errors(
                    data,
                    positions,
                    display,
                    exc,
                    check_lifecycles=check_lifecycles,
                    extra_names=extra_names,
                )
            )
            raise PlaybookValidationError(str(problems[0]), problems=problems) from None
        loaded = LoadedPlaybook(playbook, display, positions, warnings, legacy, data)
        validate_playbook(loaded, check_lifecycles=check_lifecycles, extra_names=extra_names)
    except ConfigError as exc:
        # The migration's warnings explain many errors of a legacy file: keep them.
        exc.warnings = warnings
        raise
    return loaded
