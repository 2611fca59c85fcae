"""Loading playbooks: YAML → plain data with positions → pydantic model → validation.

Every failure is a :class:`~gxo.errors.ConfigError` whose message names the file,
the line and column, and the workload — never a traceback.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from gxo.config.models import Playbook
from gxo.errors import ConfigError, GxoError, Location, PlaybookSyntaxError, PlaybookValidationError

if TYPE_CHECKING:
    from gxo.engine.dag import WorkloadGraph

__all__ = [
    "LoadedPlaybook",
    "PositionMap",
    "decode_error_location",
    "load_playbook",
    "parse_yaml",
    "pydantic_problems",
]

Path_ = tuple[Any, ...]
MAX_NODES = 1_000_000  # guards alias expansion ("billion laughs") and huge documents
MAX_ALIAS_EXPANSION = 100_000  # nodes a short document may reach through aliases
# Flow plus block levels. Deeper YAML is never a playbook, makes ruamel's scanner
# super-linear ('[' * 2000 scans for 10 s) and its composer recurse past the stack.
MAX_NESTING = 100


class PositionMap(dict[Path_, tuple[int, int]]):
    """Data path → (line, column), both 1-based."""

    def nearest(self, path: Iterable[Any]) -> tuple[int, int] | None:
        p = tuple(path)
        while True:
            if p in self:
                return self[p]
            if not p:
                return None
            p = p[:-1]


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
        return Location(self.source, *pos) if pos else Location(self.source)

    def workload_index(self, name: str) -> int | None:
        for i, w in enumerate(self.playbook.workloads):
            if w.name == name:
                return i
        return None

    def workload_location(self, name: str, *sub: Any) -> Location:
        i = self.workload_index(name)
        return self.location(("workloads", i, *sub)) if i is not None else Location(self.source)


def parse_yaml(text: str, source: str) -> tuple[Any, PositionMap]:
    """Parse YAML text into plain Python data and a position map."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.reader import ReaderError

    yaml = YAML(typ="rt")
    yaml.Scanner = _nesting_limited_scanner()
    yaml.allow_duplicate_keys = False
    try:
        doc = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        loc = Location(source, mark.line + 1, mark.column + 1) if mark else Location(source)
        raise PlaybookSyntaxError(f"YAML syntax error: {problem}", location=loc) from None
    except ReaderError as exc:  # a control character: ruamel reports only an offset
        pos = exc.position
        line, column = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        raise PlaybookSyntaxError(
            f"YAML syntax error: unacceptable character {char}: {exc.reason}",
            location=Location(source, line, column),
        ) from None
    except YAMLError as exc:
        raise PlaybookSyntaxError(f"YAML syntax error: {exc}", location=Location(source)) from None
    except RecursionError:
        raise PlaybookSyntaxError("YAML nesting is too deep", location=Location(source)) from None
    positions = PositionMap()
    counter = [0]
    try:
        # Without aliases a document has fewer nodes than characters; aliases may add a little.
        _expanded_size(doc, {}, set(), source, min(MAX_NODES, max(MAX_ALIAS_EXPANSION, len(text))))
        data = _plain(doc, (), positions, counter, source)
    except RecursionError:
        raise PlaybookSyntaxError("YAML nesting is too deep", location=Location(source)) from None
    return data, positions


def _expanded_size(
    node: Any, sizes: dict[int, int], active: set[int], source: str, limit: int
) -> int:
    """Node count after alias expansion, computed once per distinct node.

    Converting a "billion laughs" document node by node takes seconds before
    MAX_NODES stops it; this refuses it at once and names the line where the
    expansion exceeds ``limit`` (or where an alias contains itself).
    """
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if not isinstance(node, CommentedMap | CommentedSeq):
        return 1
    key = id(node)
    if key in sizes:
        return sizes[key]
    where = (
        Location(source, node.lc.line + 1, node.lc.col + 1)
        if node.lc.line is not None
        else Location(source)
    )
    if key in active:
        raise PlaybookSyntaxError("recursive alias: a node contains itself", location=where)
    active.add(key)
    children = node.values() if isinstance(node, CommentedMap) else node
    total = 1 + sum(_expanded_size(child, sizes, active, source, limit) for child in children)
    active.discard(key)
    if total > limit:
        raise PlaybookSyntaxError(
            f"document too large (more than {limit} nodes after alias expansion)", location=where
        )
    sizes[key] = total
    return total


def decode_error_location(exc: UnicodeDecodeError, source: str) -> Location:
    """Line and column (in bytes) of the first byte that is not UTF-8."""
    data = bytes(exc.object)
    return Location(
        source, data.count(b"\n", 0, exc.start) + 1, exc.start - data.rfind(b"\n", 0, exc.start)
    )


@functools.cache
def _nesting_limited_scanner() -> type:
    """ruamel's round-trip scanner, failing at the mark where nesting exceeds MAX_NESTING."""
    from ruamel.yaml.scanner import RoundTripScanner, ScannerError

    class NestingLimitedScanner(RoundTripScanner):
        def _check_depth(self) -> None:
            if self.flow_level + len(self.indents) > MAX_NESTING:
                mark = self.reader.get_mark()
                raise ScannerError(None, None, f"nesting deeper than {MAX_NESTING} levels", mark)

        def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:
            super().fetch_flow_collection_start(TokenClass, to_push)
            self._check_depth()

        def add_indent(self, column: int) -> bool:
            added = super().add_indent(column)
            if added:
                self._check_depth()
            return added

    return NestingLimitedScanner


def _plain(node: Any, path: Path_, positions: PositionMap, counter: list[int], source: str) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise PlaybookSyntaxError(
            f"document too large (more than {MAX_NODES} nodes after alias expansion)",
            location=Location(source),
        )
    if isinstance(node, CommentedMap):
        if path == () and node.lc.line is not None:
            positions[()] = (node.lc.line + 1, node.lc.col + 1)
        out = {}
        for key, value in node.items():
            try:
                kpos = node.lc.key(key)
            except (KeyError, TypeError, AttributeError):
                kpos = None
            if not isinstance(key, str):
                loc = Location(source, kpos[0] + 1, kpos[1] + 1) if kpos else Location(source)
                raise PlaybookValidationError(
                    f"mapping keys must be strings, got {key!r}", location=loc
                )
            sub = (*path, key)
            if kpos:
                positions[sub] = (kpos[0] + 1, kpos[1] + 1)
            out[key] = _plain(value, sub, positions, counter, source)
        return out
    if isinstance(node, CommentedSeq):
        out_list = []
        for i, value in enumerate(node):
            sub = (*path, i)
            try:
                ipos = node.lc.item(i)
                positions[sub] = (ipos[0] + 1, ipos[1] + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            out_list.append(_plain(value, sub, positions, counter, source))
        return out_list
    # Scalars: ruamel's scalar subclasses become plain Python values.
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, dict):
        return {k: _plain(v, (*path, k), positions, counter, source) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, (*path, i), positions, counter, source) for i, v in enumerate(node)]
    # dates, timestamps, binary: keep their text form
    return str(node)


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
        location = Location(source, *pos) if pos else Location(source)
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
    """A playbook file's text, or a ConfigError saying why it cannot be read."""
    display = display or str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"playbook not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"playbook path is a directory: {path}") from None
    except UnicodeDecodeError as exc:
        raise PlaybookSyntaxError(
            f"playbook is not UTF-8 text: {exc.reason}",
            location=decode_error_location(exc, display),
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read playbook {path}: {exc.strerror}") from None


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
