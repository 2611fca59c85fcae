"""Run-time variables from the command line: ``-e k=v``, ``-e @file``, ``--vars-file``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gxo.config.models import REGISTER_PATTERN
from gxo.errors import ConfigError, GxoError, UsageError

if TYPE_CHECKING:
    from gxo.template.engine import TemplateEngine

__all__ = ["load_vars_file", "parse_extra_vars", "render_playbook_vars"]


def _scalar(text: str) -> Any:
    """``3`` → 3, ``true`` → True, ``[1,2]`` → [1, 2]; anything else stays a string."""
    from gxo.config.yamlsafe import load_yaml_text

    if text == "":
        return ""
    try:
        value = load_yaml_text(text, "-e")
    except GxoError:  # not YAML, or refused (an alias bomb): the text itself
        return text
    if isinstance(value, dict) and not all(isinstance(k, str) for k in value):
        return text  # "a=: x" is text, not the mapping {None: "x"}
    return value if isinstance(value, int | float | bool | list | dict) or value is None else text


def load_vars_file(path: str | Path) -> dict[str, Any]:
    """A vars file (``--vars-file F``, ``-e @F``) read like a playbook: a regular file of
    bounded size, parsed by the hardened YAML reader (alias bombs, deep nesting and
    huge integers are refused with their line and column, never a traceback)."""
    from gxo.config.yamlsafe import load_yaml_text, read_text_file

    try:
        text = read_text_file(
            path, "vars file", str(path), not_found="cannot read {what} {path}: no such file"
        )
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    try:
        data = load_yaml_text(text, str(path))
    except ConfigError as exc:
        raise UsageError(f"vars file is not valid YAML/JSON: {exc}") from None
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
            except (ValueError, RecursionError) as exc:  # a 5,000-digit int; deep nesting
                raise UsageError(f"-e: invalid JSON: {exc or 'nested too deeply'}") from None
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


def render_playbook_vars(
    playbook_vars: dict[str, Any],
    overrides: dict[str, Any],
    templates: TemplateEngine,
    *,
    lenient: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """Playbook vars rendered in order; each sees the overrides and the vars before it.

    Overridden vars are left out (the caller layers the overrides on top). A var
    that fails to render raises, or with ``lenient`` keeps its raw text and is
    reported in the returned problems (the REPL: one bad var, e.g. an unset
    secret, must not make the whole playbook unusable there).
    """
    from gxo.template.engine import is_template

    rendered: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in playbook_vars.items():
        if key in overrides:
            continue
        if not (is_template(value) or isinstance(value, dict | list)):
            rendered[key] = value
            continue
        try:
            rendered[key] = templates.render(value, {**overrides, **rendered}, path=f"vars.{key}")
        except GxoError as exc:
            if not lenient:
                raise
            rendered[key] = value
            problems.append(f"var '{key}' could not be rendered (kept as text): {exc}")
    return rendered, problems
