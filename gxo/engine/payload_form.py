"""Forms built from a ``payload_schema``: what a front end asks to answer a pause.

Pure functions, no terminal and no widgets: the terminal prompt (``gxo.console_prompt``),
the TUI's approval form and the REPL read the same field specs and coerce typed text
the same way, and the payload is then checked with
:func:`gxo.engine.signals.check_payload` (the only judge of validity).

An object schema whose properties are all simple (text, number, integer, boolean, or an
``enum``) becomes one field per property; any other schema (an array, a bare string,
nested objects, none at all) is edited as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FormField",
    "build_payload",
    "coerce_text",
    "example_payload",
    "form_fields",
    "local_identity",
    "schema_summary",
]

_YES = {"y", "yes", "true", "1"}
_NO = {"n", "no", "false", "0"}
_SIMPLE = {"string", "integer", "number", "boolean"}


@dataclass(frozen=True)
class FormField:
    """One property of an object payload.

    ``kind`` is ``text``, ``integer``, ``number``, ``boolean``, ``enum`` or ``json`` (a
    property of another type, typed as JSON text).
    """

    name: str
    kind: str
    required: bool = False
    description: str = ""
    choices: tuple[Any, ...] = ()
    default: Any = None
    has_default: bool = False

    @property
    def label(self) -> str:
        return self.name + ("" if self.required else " (optional)")


def _kind(spec: Mapping[str, Any]) -> str:
    if spec.get("enum"):
        return "enum"
    kind = spec.get("type")
    if kind in (None, "string"):
        return "text"
    if kind in _SIMPLE:
        return str(kind)
    return "json"


def form_fields(schema: Mapping[str, Any] | None) -> list[FormField] | None:
    """The fields of an object schema with properties, or None: edit the payload as JSON.

    Properties of a type that has no simple field (arrays, nested objects, unions)
    make the whole form JSON too, so a payload is never half form, half JSON.
    """
    if not schema or schema.get("type", "object") != "object":
        return None
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        return None
    required = set(schema.get("required") or ())
    fields = []
    for name, spec in properties.items():
        spec = spec if isinstance(spec, Mapping) else {}
        kind = _kind(spec)
        if kind == "json":
            return None
        fields.append(
            FormField(
                name=str(name),
                kind=kind,
                required=name in required,
                description=str(spec.get("description") or ""),
                choices=tuple(spec.get("enum") or ()),
                default=spec.get("default"),
                has_default="default" in spec,
            )
        )
    return fields


def coerce_text(text: str, kind: Any, choices: list[Any] | tuple[Any, ...] | None = None) -> Any:
    """Typed text → the value for a field of JSON-Schema ``kind`` (``type``) or ``choices``.

    ``ValueError`` says what was expected. ``kind`` may be a JSON-Schema type or a
    :class:`FormField` kind (``text``, ``enum``, ``json``).
    """
    if choices:
        for choice in choices:
            if text == str(choice):
                return choice
        raise ValueError(f"one of {', '.join(str(c) for c in choices)}")
    if kind == "boolean":
        if text.lower() in _YES:
            return True
        if text.lower() in _NO:
            return False
        raise ValueError("answer y or n")
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError("a whole number") from None
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise ValueError("a number") from None
        return int(number) if number.is_integer() and "." not in text else number
    if kind in (None, "string", "text"):
        return text
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None


def build_payload(
    fields: list[FormField], values: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """(payload, errors by field name) from what a form holds.

    ``values`` maps a field name to typed text (``str``), a value already typed
    (a boolean from a switch, a choice from a list), or None / ``""`` for empty. An
    empty field takes the schema's default; an empty optional field is left out; an
    empty required one is an error.
    """
    payload: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in fields:
        raw = values.get(spec.name)
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            if spec.has_default:
                payload[spec.name] = spec.default
            elif spec.required:
                errors[spec.name] = "required"
            continue
        if isinstance(raw, str) and spec.kind != "enum":
            text = raw if spec.kind == "text" else raw.strip()
            try:
                payload[spec.name] = coerce_text(text, spec.kind)
            except ValueError as exc:
                errors[spec.name] = str(exc)
        else:
            payload[spec.name] = raw
    return payload, errors


def schema_summary(schema: Mapping[str, Any] | None, *, width: int = 60) -> str:
    """One line describing a schema: ``approved: boolean*, note: string`` (``*`` = required)."""
    if not schema:
        return "any JSON"
    properties = schema.get("properties")
    if schema.get("type", "object") == "object" and isinstance(properties, Mapping) and properties:
        required = set(schema.get("required") or ())
        parts = []
        for name, spec in properties.items():
            spec = spec if isinstance(spec, Mapping) else {}
            if spec.get("enum"):
                kind = "|".join(str(c) for c in spec["enum"])
            else:
                kind = str(spec.get("type") or "any")
            parts.append(f"{name}: {kind}{'*' if name in required else ''}")
        text = ", ".join(parts)
    else:
        text = str(schema.get("type") or "JSON")
    return text if len(text) <= width else text[: width - 1] + "…"


def local_identity(front: str) -> str:
    """Who answers a pause from a local front end: ``ui:alice``, ``repl:alice``.

    Locally the answer comes from the user who runs the process; the daemon names
    identities from its own authentication instead.
    """
    import getpass

    try:
        user = getpass.getuser()
    except (OSError, KeyError, ImportError):  # no login name in this environment
        user = "local"
    return f"{front}:{user}"


def example_payload(schema: Mapping[str, Any] | None) -> Any:
    """A payload to start from, for a hint (``:resume approve {"approved": true}``): the
    required fields of a form with a plausible value each (the default, the first
    choice, ``true``, the minimum or 1, ``"..."``); None when the schema is not a form."""
    fields = form_fields(schema)
    if fields is None:
        return None
    properties = (schema or {}).get("properties") or {}
    example: dict[str, Any] = {}
    for spec in fields:
        if not spec.required:
            continue
        raw = properties.get(spec.name) or {}
        if spec.has_default:
            example[spec.name] = spec.default
        elif spec.kind == "enum":
            example[spec.name] = spec.choices[0]
        elif spec.kind == "boolean":
            example[spec.name] = True
        elif spec.kind in ("integer", "number"):
            example[spec.name] = raw.get("minimum", 1)
        else:
            example[spec.name] = "..."
    return example
