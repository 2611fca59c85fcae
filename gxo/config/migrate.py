"""``gxo migrate``: rewrite a legacy (v0.1.2a) playbook file as schemaVersion 1.0.0.

The document is edited with ruamel.yaml's round-trip mode, so comments, key
order, quoting and flow style survive. The structural change and the template
rewrite are the ones the in-memory shim of ``gxo run`` applies
(:mod:`gxo.config.legacy`), and the warnings are the shim's own. As a last
check the new text is parsed again and must equal what the shim produces, so
the file on disk can never mean something else than what ``gxo run`` ran.

A file that is already in the 1.0.0 format is returned byte for byte.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gxo.config.legacy import is_legacy, migrate_data, migrate_tree, rewrite_templates
from gxo.config.loader import parse_yaml, read_playbook_text
from gxo.errors import (
    Location,
    MigrationError,
    PlaybookValidationError,
)

if TYPE_CHECKING:
    from ruamel.yaml.comments import CommentedMap

__all__ = ["guess_indent", "migrate_file", "migrate_text"]

# Printed by `gxo migrate` after a file was migrated: 1.0.0 behaviour the file cannot show.
NOTES = ("relative paths now resolve against the playbook's directory, not the current one (gxo run --workspace . keeps the old behaviour)",)  # fmt: skip
_DROPPED_TASK_KEYS = ("policy_ref", "policy")
_DROPPED_TOP_KEYS = ("task_policy",)
_MOVED_TASK_KEYS = {"type": "module", "params": "params"}  # legacy key -> key under process
_KEY_ONLY = re.compile(r"^( *)(- +)*([^\s#-][^#]*?|-[^\s#][^#]*?):\s*(#.*)?$")
_SIGNIFICANT = re.compile(r"^( *)(\S)")


def migrate_file(path: str | Path) -> tuple[str, list[str]]:
    """Migrate the playbook at ``path``: ``(new YAML text, warnings)``. Nothing is written."""
    return migrate_text(read_playbook_text(path), str(path))


def migrate_text(text: str, source: str = "<string>") -> tuple[str, list[str]]:
    """Migrate playbook ``text``; ``source`` names it in warnings and errors (``FILE:LINE: ...``)."""
    data, positions = parse_yaml(text, source)
    if data is None:
        raise PlaybookValidationError("playbook is empty", location=Location(source))
    if not isinstance(data, dict):
        pos = positions.nearest(()) or (1, 1)
        raise PlaybookValidationError(
            f"a playbook must be a mapping with schemaVersion, name and tasks, got {type(data).__name__}",
            location=Location(source, *pos),
        )
    if "tasks" in data and "workloads" in data:
        raise PlaybookValidationError(
            "a playbook cannot have both 'tasks' (legacy) and 'workloads': use only 'workloads'",
            location=Location(source, *(positions.nearest(("tasks",)) or (1, 1))),
        )
    if not is_legacy(data):
        return text, []
    expected, new_positions, warnings = migrate_data(data, positions, source)
    new_text = _round_trip(text)
    migrated, _ = parse_yaml(new_text, source)
    if migrated != expected:
        where = new_positions.nearest(_first_difference(migrated, expected))
        raise MigrationError(
            "this value cannot be rewritten without changing what it means (ruamel.yaml would "
            "write it differently); migrate the file by hand",
            location=Location(source, *where) if where else Location(source),
        )
    return new_text, warnings


def _first_difference(a: Any, b: Any, path: tuple[Any, ...] = ()) -> tuple[Any, ...]:
    if isinstance(a, dict) and isinstance(b, dict) and list(a) == list(b):
        for key in a:
            if a[key] != b[key]:
                return _first_difference(a[key], b[key], (*path, key))
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, (*path, i))
    return path


def guess_indent(text: str) -> tuple[int, int, int]:
    """``(mapping, sequence, offset)`` indentation as ruamel's ``YAML.indent`` takes it.

    Looks at the first block mapping and at the block sequence under ``tasks:``
    (else the first one under any key), which is most of a playbook's lines;
    defaults to the style of the examples (2, 4, 2).
    """
    mapping: int | None = None
    sequence: tuple[int, int] | None = None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    tasks_at = next((i for i, ln in enumerate(lines) if re.match(r"tasks:\s*(#.*)?$", ln)), None)
    if tasks_at is not None:
        lines = lines[tasks_at : tasks_at + 2] + lines
    for line, nxt in itertools.pairwise(lines):
        head = _KEY_ONLY.match(line)
        if head is None:
            continue
        key_col = len(head.group(1)) + len(head.group(2) or "")
        if head.group(2):  # "- key:" : the key starts after the dashes and their spaces
            key_col = len(line) - len(line.lstrip(" -"))
        body = _SIGNIFICANT.match(nxt)
        if body is None or len(body.group(1)) < key_col:
            continue
        col = len(body.group(1))
        if nxt.lstrip().startswith("- "):
            if sequence is None:
                after = nxt[col + 1 :]
                content = col + 1 + len(after) - len(after.lstrip(" "))
                sequence = (content - key_col, col - key_col)
        elif col > key_col and mapping is None:
            mapping = col - key_col
        if mapping is not None and sequence is not None:
            break
    mapping = mapping or 2
    seq, offset = sequence or (mapping + 2, mapping)
    return mapping, max(seq, offset + 2), offset


def _yaml(text: str) -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 1 << 20  # never re-wrap long strings
    mapping, sequence, offset = guess_indent(text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
    yaml.explicit_start = first.rstrip() == "---" or first.startswith("--- ")
    return yaml


def _round_trip(text: str) -> str:
    import io

    from ruamel.yaml.comments import CommentedMap

    yaml = _yaml(text)
    yaml.representer.add_representer(_VerbatimFloat, _represent_verbatim_float)
    doc = yaml.load(text)
    _keep_float_text(doc, text.split("\n"), set())  # ruamel's marks count only \n
    old_tasks = list(doc["tasks"]) if isinstance(doc["tasks"], list) else []
    shift = yaml.map_indent or 2
    for task in old_tasks:
        if isinstance(task, CommentedMap):
            _indent_moved_comments(task, shift)
    new = migrate_tree(doc, lambda message, path: None, new_map=CommentedMap)
    if "schemaVersion" not in doc:
        from ruamel.yaml.scalarstring import DoubleQuotedScalarString

        new["schemaVersion"] = DoubleQuotedScalarString(new["schemaVersion"])
    assert isinstance(new, CommentedMap)  # new_map=CommentedMap above
    _carry_comments(doc, new, renamed={"tasks": "workloads"}, dropped=_DROPPED_TOP_KEYS)
    converted_tasks = new["workloads"] if isinstance(new["workloads"], list) else []
    for old, converted in zip(old_tasks, converted_tasks, strict=True):
        if isinstance(old, CommentedMap) and isinstance(converted, CommentedMap):
            _carry_task_comments(old, converted)
    rewrite_templates(new)
    out = io.StringIO()
    yaml.dump(new, out)
    return out.getvalue()


class _VerbatimFloat(float):
    """A float written back exactly as it was read (ruamel re-formats floats lossily)."""

    text: str


def _represent_verbatim_float(representer: Any, value: _VerbatimFloat) -> Any:
    return representer.represent_scalar("tag:yaml.org,2002:float", value.text)


_PLAIN_TOKEN = re.compile(r"[^\s,\]\}]+")


def _keep_float_text(node: Any, lines: list[str], seen: set[int]) -> None:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarfloat import ScalarFloat

    if not isinstance(node, CommentedMap | CommentedSeq) or id(node) in seen:
        return
    seen.add(id(node))
    keys = list(node.keys()) if isinstance(node, CommentedMap) else range(len(node))
    for key in keys:
        value = node[key]
        anchor = getattr(value, "anchor", None)
        if isinstance(value, ScalarFloat) and not (anchor is not None and anchor.value):
            try:
                line, col = (
                    node.lc.value(key) if isinstance(node, CommentedMap) else node.lc.item(key)
                )
                token = _PLAIN_TOKEN.match(lines[line], col)
            except (KeyError, IndexError, TypeError, AttributeError):
                token = None
            if token is not None and float(_float_or_nan(token.group(0))) == value:
                verbatim = _VerbatimFloat(value)
                verbatim.text = token.group(0)
                node[key] = verbatim
        else:
            _keep_float_text(value, lines, seen)


def _float_or_nan(text: str) -> float:
    from ruamel.yaml import YAML

    try:
        return float(YAML(typ="safe", pure=True).load(text))
    except Exception:  # not a float literal at that position: keep ruamel's own output
        return float("nan")


def _carry_comments(
    old: CommentedMap, new: CommentedMap, *, renamed: dict[str, str], dropped: tuple[str, ...]
) -> None:
    """Move ruamel's comments from ``old`` to the rebuilt mapping ``new``."""
    new.ca.comment = old.ca.comment
    new.ca.end = old.ca.end
    keys = list(old.keys())
    for key, entry in old.ca.items.items():
        if key not in dropped and renamed.get(key, key) in new:
            new.ca.items[renamed.get(key, key)] = entry
    for key in dropped:
        if key in old:
            entry = old.ca.items.get(key) or [None, None, None, None]
            _keep_before_of_dropped(new, keys, key, entry, renamed)
            _keep_tail_of_dropped(new, keys, key, entry, old[key])
    if old.fa.flow_style():
        new.fa.set_flow_style()


def _carry_task_comments(old: CommentedMap, new: CommentedMap) -> None:
    process = new["process"]
    for key, entry in list(old.ca.items.items()):
        if key in _MOVED_TASK_KEYS:
            process.ca.items[_MOVED_TASK_KEYS[key]] = entry
            old.ca.items.pop(key)
    _carry_comments(old, new, renamed={}, dropped=_DROPPED_TASK_KEYS)
    if old.fa.flow_style():
        process.fa.set_flow_style()


def _indent_moved_comments(task: CommentedMap, shift: int) -> None:
    """Indent the comments of ``type``/``params`` like their new place under ``process``.

    Only comment lines inside the task move; lines at the task's own column or
    left of it introduce what follows the task and stay where they are.
    """
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    key_col = task.lc.col if task.lc.col is not None else 0
    tokens: list[tuple[Any, bool]] = []  # (token, is an end-of-line token)

    def collect_entry(entry: list[Any] | None, eol_slot: int) -> None:
        for slot, item in enumerate(entry or ()):
            if isinstance(item, list):
                tokens.extend((t, False) for t in item if t is not None)
            elif item is not None:
                tokens.append((item, slot == eol_slot))

    def collect(node: Any, seen: set[int]) -> None:
        if not isinstance(node, CommentedMap | CommentedSeq) or id(node) in seen:
            return
        seen.add(id(node))
        collect_entry(node.ca.comment, -1)
        collect_entry(node.ca.end, -1)
        eol = 2 if isinstance(node, CommentedMap) else 0
        for entry in node.ca.items.values():
            collect_entry(entry, eol)
        for child in node.values() if isinstance(node, CommentedMap) else node:
            collect(child, seen)

    for key in _MOVED_TASK_KEYS:
        if key in task:
            collect_entry(task.ca.items.get(key), 2)
            collect(task[key], set())
    shifted: set[int] = set()
    for token, eol in tokens:
        if id(token) in shifted:  # ruamel may attach one token to a key and to its value
            continue
        shifted.add(id(token))
        mark = token.start_mark
        if eol:
            first, newline, rest = token.value.partition("\n")
            if first.strip() and mark is not None:
                mark.column += shift
            token.value = (
                first
                + newline
                + "".join(_indent_line(ln, key_col, shift) for ln in rest.splitlines(True))
            )
        elif mark is not None and mark.column > key_col:
            mark.column += shift


def _indent_line(line: str, key_col: int, shift: int) -> str:
    stripped = line.lstrip(" ")
    if stripped.startswith("#") and len(line) - len(stripped) > key_col:
        return " " * shift + line
    return line


def _keep_before_of_dropped(
    new: CommentedMap, keys: list[Any], key: Any, entry: list[Any], renamed: dict[str, str]
) -> None:
    """Comment lines and blank lines above a dropped key move above the key that follows it."""
    before = entry[1] if len(entry) > 1 else None
    if not before:
        return
    for following in keys[keys.index(key) + 1 :]:
        target = "lifecycle" if following in _MOVED_TASK_KEYS else renamed.get(following, following)
        if target in new:
            slot = new.ca.items.setdefault(target, [None, None, None, None])
            slot[1] = [*before, *(slot[1] or [])]
            return
    _append_after_last(new, "".join(t.value for t in before))


def _keep_tail_of_dropped(
    new: CommentedMap, keys: list[Any], key: Any, entry: list[Any], old_value: Any
) -> None:
    """A dropped key takes its own end-of-line comment with it, but not the lines after it.

    ruamel stores blank lines and comments that follow a value (often the
    comment introducing the next task) in the token after that value.
    """
    token = entry[2] if len(entry) > 2 else None
    if token is None:
        token = _last_token(old_value)
    if token is None or "\n" not in token.value:
        return
    tail = token.value.split("\n", 1)[1]
    if not tail.strip(" "):
        return
    index = keys.index(key)
    if index == len(keys) - 1:
        _append_after_last(new, tail)
        return
    previous = keys[index - 1] if index > 0 else None
    if previous in new:
        _append_after(new, previous, tail)
    elif previous in _MOVED_TASK_KEYS and "process" in new:
        _append_after(new["process"], _MOVED_TASK_KEYS[previous], tail)
    else:
        _append_after_last(new, tail)


def _last_token(node: Any) -> Any:
    """The comment token after the last scalar of a block collection (holds the lines after it)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    while isinstance(node, CommentedMap | CommentedSeq) and len(node):
        last = list(node.keys())[-1] if isinstance(node, CommentedMap) else len(node) - 1
        child = node[last]
        if (
            isinstance(child, CommentedMap | CommentedSeq)
            and len(child)
            and not child.fa.flow_style()
        ):
            node = child
            continue
        entry = node.ca.items.get(last)
        slot = 2 if isinstance(node, CommentedMap) else 0
        return entry[slot] if entry and len(entry) > slot else None
    return None


def _append_after_last(node: Any, tail: str) -> None:
    if len(node):
        last = list(node.keys())[-1] if hasattr(node, "keys") else len(node) - 1
        _append_after(node, last, tail)


def _append_after(node: Any, key: Any, tail: str) -> None:
    """Add comment lines after the value at ``node[key]`` (descending into block collections)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    value = node[key]
    if isinstance(value, CommentedMap | CommentedSeq) and len(value) and not value.fa.flow_style():
        _append_after_last(value, tail)
        return
    slot = 2 if isinstance(node, CommentedMap) else 0
    entry = node.ca.items.setdefault(key, [None, None, None, None])
    token = entry[slot]
    if token is None:
        entry[slot] = CommentToken("\n" + tail, CommentMark(0), None)
    else:
        token.value = token.value + tail
