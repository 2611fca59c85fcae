"""payload_form: the fields, coercion, payloads and summaries front ends build from a
``payload_schema`` (pure functions; the TUI form and the REPL use them)."""

from __future__ import annotations

from typing import Any

import pytest

from gxo.engine.payload_form import (
    FormField,
    build_payload,
    coerce_text,
    example_payload,
    form_fields,
    local_identity,
    schema_summary,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean", "description": "go ahead"},
        "replicas": {"type": "integer", "minimum": 2},
        "ratio": {"type": "number", "default": 0.5},
        "target": {"enum": ["staging", "production"]},
        "note": {"type": "string"},
    },
    "required": ["approved", "replicas", "target"],
}


def test_form_fields_of_an_object_schema() -> None:
    fields = form_fields(SCHEMA)
    assert fields is not None
    assert [(f.name, f.kind, f.required) for f in fields] == [
        ("approved", "boolean", True),
        ("replicas", "integer", True),
        ("ratio", "number", False),
        ("target", "enum", True),
        ("note", "text", False),
    ]
    assert fields[0].description == "go ahead" and fields[3].choices == ("staging", "production")
    assert fields[2].has_default and fields[2].default == 0.5
    assert fields[4].label == "note (optional)"


@pytest.mark.parametrize(
    "schema",
    [
        None,
        {},
        {"type": "array", "items": {"type": "string"}},
        {"type": "object"},  # no properties: free-form JSON
        {"type": "object", "properties": {"hosts": {"type": "array"}}},  # not a simple field
    ],
)
def test_other_schemas_are_edited_as_json(schema: Any) -> None:
    assert form_fields(schema) is None
    assert example_payload(schema) is None


@pytest.mark.parametrize(
    ("text", "kind", "choices", "value"),
    [
        ("yes", "boolean", None, True),
        ("N", "boolean", None, False),
        ("42", "integer", None, 42),
        ("2", "number", None, 2),
        ("2.0", "number", None, 2.0),
        ("1e3", "number", None, 1000),
        ("hello", "text", None, "hello"),
        ("hello", "string", None, "hello"),
        ('{"a": [1]}', "json", None, {"a": [1]}),
        ("production", "enum", ("staging", "production"), "production"),
        ("3", None, (1, 3), 3),
    ],
)
def test_coerce_text(text: str, kind: Any, choices: Any, value: Any) -> None:
    assert coerce_text(text, kind, choices) == value
    assert type(coerce_text(text, kind, choices)) is type(value)


@pytest.mark.parametrize(
    ("text", "kind", "choices", "message"),
    [
        ("maybe", "boolean", None, "answer y or n"),
        ("4.5", "integer", None, "a whole number"),
        ("abc", "number", None, "a number"),
        ("{", "json", None, "not JSON"),
        ("dev", "enum", ("staging", "production"), "one of staging, production"),
    ],
)
def test_coerce_text_errors(text: str, kind: str, choices: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        coerce_text(text, kind, choices)


def test_build_payload_types_defaults_and_errors() -> None:
    fields = form_fields(SCHEMA)
    assert fields is not None
    payload, errors = build_payload(
        fields,
        {"approved": True, "replicas": " 3 ", "ratio": "", "target": "staging", "note": " hi "},
    )
    assert errors == {}
    # typed values stay; text keeps its spaces; an empty field takes the default
    assert payload == {
        "approved": True,
        "replicas": 3,
        "ratio": 0.5,
        "target": "staging",
        "note": " hi ",
    }
    payload, errors = build_payload(fields, {"approved": False, "replicas": "x", "note": ""})
    assert errors == {"replicas": "a whole number", "target": "required"}
    assert payload == {"approved": False, "ratio": 0.5}  # the empty optional note is left out


def test_example_payload_has_the_required_fields() -> None:
    assert example_payload(SCHEMA) == {"approved": True, "replicas": 2, "target": "staging"}
    assert example_payload(
        {"type": "object", "properties": {"n": {"type": "string"}}, "required": ["n"]}
    ) == {"n": "..."}


def test_schema_summary() -> None:
    assert schema_summary(SCHEMA, width=200) == (
        "approved: boolean*, replicas: integer*, ratio: number, target: staging|production*, "
        "note: string"
    )
    assert schema_summary(SCHEMA, width=20) == "approved: boolean*,…"
    assert schema_summary(None) == "any JSON"
    assert schema_summary({"type": "array"}) == "array"


def test_local_identity_names_the_front_end_and_the_user(monkeypatch: Any) -> None:
    monkeypatch.setenv("LOGNAME", "alice")
    monkeypatch.setenv("USER", "alice")
    assert local_identity("ui") == "ui:alice"


def test_form_field_label() -> None:
    assert FormField("x", "text", required=True).label == "x"
