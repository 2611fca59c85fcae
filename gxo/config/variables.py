"""Run-time variables from the command line: ``-e k=v``, ``-e @file``, ``--vars-file``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gxo.config.models import REGISTER_PATTERN
from gxo.errors import UsageError

__all__ = ["load_vars_file", "parse_extra_vars"]


def _scalar(text: str) -> Any:
    """``3`` → 3, ``true`` → True, ``[1,2]`` → [1, 2]; anything else stays a string."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    if text == "":
        return ""
    try:
        value = YAML(typ="safe").load(text)
    except (YAMLError, ValueError):
        return text
    if isinstance(value, dict) and not all(isinstance(k, str) for k in value):
        return text  # "a=: x" is text, not the mapping {None: "x"}
    return value if isinstance(value, int | float | bool | list | dict) or value is None else text


def load_vars_file(path: str | Path) -> dict[str, Any]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read vars file {path}: {exc.strerror}") from None
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise UsageError(f"vars file {path} is not valid YAML/JSON: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"vars file {path} must contain a mapping, got {type(data).__name__}")
    _check_names(data, f"vars file {path}")
    return data


def parse_extra_vars(items: list[str] | None) -> dict[str, Any]:
    """Merge ``-e`` items in order: ``k=v``, ``@file.yaml`` or a JSON/YAML mapping."""
    import re

    out: dict[str, Any] = {}
    for item in items or []:
        if item.startswith("@"):
            out.update(load_vars_file(item[1:]))
        elif item.lstrip().startswith("{"):
            try:
                data = json.loads(item)
            except json.JSONDecodeError as exc:
                raise UsageError(f"-e {item!r}: invalid JSON: {exc.msg}") from None
            _check_names(data, f"-e {item!r}")
            out.update(data)
        else:
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or not re.match(REGISTER_PATTERN, key):
                raise UsageError(
                    f"-e {item!r}: expected key=value with key matching {REGISTER_PATTERN}"
                )
            out[key] = _scalar(value)
    return out


def _check_names(data: dict[str, Any], where: str) -> None:
    import re

    for key in data:
        if not isinstance(key, str) or not re.match(REGISTER_PATTERN, key):
            raise UsageError(f"{where}: variable name {key!r} must match {REGISTER_PATTERN}")
