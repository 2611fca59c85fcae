"""Expected-vs-actual rendering: values, equality and readable diffs.

Used by the ``test:assert`` module (which stores the diff in its failure
summary) and by the test runner. Strings spanning lines get a unified diff,
one-line strings an ``ndiff`` with a caret line, mappings a per-key diff and
lists a per-index diff, recursively with dotted paths (``users[1].name``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["format_value", "render_diff", "type_name", "values_equal"]

MAX_VALUE_CHARS = 2000  # a formatted value longer than this is cut
MAX_DIFF_LINES = 60
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def values_equal(expected: Any, actual: Any) -> bool:
    """Equality as a playbook author means it: ``1 == 1.0`` but ``True != 1`` and ``"200" != 200``."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        return expected.keys() == actual.keys() and all(
            values_equal(v, actual[k]) for k, v in expected.items()
        )
    if _is_list(expected) and _is_list(actual):
        return len(expected) == len(actual) and all(
            values_equal(e, a) for e, a in zip(expected, actual, strict=True)
        )
    if isinstance(expected, str) != isinstance(actual, str):
        return False
    try:
        return bool(expected == actual)
    except Exception:  # exotic objects with a broken __eq__ are simply "not equal"
        return False


def type_name(value: Any) -> str:
    """The YAML/JSON name of a value's type (what a playbook author recognises)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "mapping"
    if _is_list(value):
        return "list"
    return type(value).__name__


def format_value(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """A one-line JSON-style rendering (``"text"``, ``200``, ``null``, ``{"a": 1}``)."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=_fallback)
    except (TypeError, ValueError):  # circular structures
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"


def render_diff(expected: Any, actual: Any) -> str | None:
    """A readable diff of two values, or None when a plain expected/actual pair says it all."""
    if isinstance(expected, str) and isinstance(actual, str):
        if "\n" in expected or "\n" in actual:
            return _unified(expected, actual)
        if expected and actual:
            return _ndiff_line(expected, actual)
        return None
    if (isinstance(expected, Mapping) and isinstance(actual, Mapping)) or (
        _is_list(expected) and _is_list(actual)
    ):
        lines: list[str] = []
        _structure(expected, actual, "", lines)
        if len(lines) > MAX_DIFF_LINES:
            lines = [*lines[:MAX_DIFF_LINES], f"… {len(lines) - MAX_DIFF_LINES} more differences"]
        return "\n".join(lines) if lines else None
    return None


def _fallback(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray)


def _unified(expected: str, actual: str) -> str:
    import difflib

    lines = list(
        difflib.unified_diff(
            expected.splitlines(),
            actual.splitlines(),
            fromfile="expected",
            tofile="actual",
            lineterm="",
        )
    )
    if not lines:  # the only difference is a trailing newline
        return "--- expected\n+++ actual\n(the strings differ only in trailing newlines)"
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"… {len(lines) - MAX_DIFF_LINES} more diff lines"]
    return "\n".join(lines)


def _ndiff_line(expected: str, actual: str) -> str:
    import difflib

    # ndiff adds a "?" line with carets under the characters that differ.
    return "\n".join(line.rstrip("\n") for line in difflib.ndiff([expected], [actual]))


def _child(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if isinstance(key, str) and _IDENT.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{format_value(key)}]"


def _structure(expected: Any, actual: Any, path: str, out: list[str]) -> None:
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        for key, value in expected.items():
            sub = _child(path, key)
            if key not in actual:
                out.append(f"- {sub}: {format_value(value, 200)}   (missing from actual)")
            elif not values_equal(value, actual[key]):
                _structure(value, actual[key], sub, out)
        for key, value in actual.items():
            if key not in expected:
                out.append(f"+ {_child(path, key)}: {format_value(value, 200)}   (not expected)")
        return
    if _is_list(expected) and _is_list(actual):
        if len(expected) != len(actual):
            out.append(
                f"  {path or '(list)'}: expected {len(expected)} items, actual has {len(actual)}"
            )
        for i in range(max(len(expected), len(actual))):
            sub = _child(path, i)
            if i >= len(actual):
                out.append(f"- {sub}: {format_value(expected[i], 200)}   (missing from actual)")
            elif i >= len(expected):
                out.append(f"+ {sub}: {format_value(actual[i], 200)}   (not expected)")
            elif not values_equal(expected[i], actual[i]):
                _structure(expected[i], actual[i], sub, out)
        return
    where = path or "(value)"
    hint = ""
    if type_name(expected) != type_name(actual) and {type_name(expected), type_name(actual)} != {
        "int",
        "float",
    }:
        hint = f"   ({type_name(expected)} vs {type_name(actual)})"
    out.append(
        f"~ {where}: expected {format_value(expected, 200)}, actual {format_value(actual, 200)}{hint}"
    )
