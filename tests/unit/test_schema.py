"""The shipped JSON Schema is generated from the models and agrees with the loader."""

from __future__ import annotations

import json

import jsonschema
import pytest
from ruamel.yaml import YAML

from gxo.config.schema import generated_text, schema_text
from tests.conftest import EXAMPLES, PLAYBOOKS


def test_shipped_schema_is_current() -> None:
    assert schema_text() == generated_text(), "stale schema: run 'make schema'"


def playbook_files():
    return sorted(p for p in list(EXAMPLES.glob("*.gxo.yaml")) + list(PLAYBOOKS.glob("*.gxo.yaml")))


@pytest.mark.parametrize("path", playbook_files(), ids=lambda p: p.name)
def test_example_playbooks_validate_against_the_schema(path) -> None:
    schema = json.loads(schema_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    data = YAML(typ="safe").load(path.read_text())
    jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize(
    "bad",
    [
        {
            "schemaVersion": "2.0.0",
            "name": "x",
            "workloads": [{"name": "a", "process": {"module": "exec"}}],
        },
        {"schemaVersion": "1.0.0", "name": "x", "workloads": [{"name": "a", "proces": {}}]},
        {"schemaVersion": "1.0.0", "name": "x", "workloads": []},
        {
            "schemaVersion": "1.0.0",
            "name": "x",
            "workloads": [{"name": "a b", "process": {"module": "exec"}}],
        },
    ],
)
def test_schema_rejects_what_the_loader_rejects(bad) -> None:
    from gxo.config.loader import load_playbook
    from gxo.errors import ConfigError

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads(schema_text()), cls=jsonschema.Draft202012Validator)
    with pytest.raises(ConfigError):
        load_playbook(text=json.dumps(bad))
