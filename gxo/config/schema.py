"""The playbook JSON Schema, generated from the pydantic models and shipped in the package.

``python -m gxo.config.schema --write`` regenerates the shipped file; a test
fails when the shipped file differs from what the models generate.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_FILE", "generate_schema", "schema_text", "shipped_schema_path"]

SCHEMA_FILE = "gxo-playbook-1.0.0.json"
SCHEMA_ID = "https://gxo.dev/schema/gxo-playbook-1.0.0.json"


def generate_schema() -> dict[str, Any]:
    from gxo.config.models import Playbook

    body = Playbook.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "GXO playbook (schemaVersion 1.0.0)",
        **{k: v for k, v in body.items() if k != "title"},
    }


def generated_text() -> str:
    return json.dumps(generate_schema(), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def shipped_schema_path() -> Path:
    return Path(str(resources.files("gxo.config").joinpath("schema", SCHEMA_FILE)))


def schema_text() -> str:
    """The shipped schema (what ``gxo schema`` prints)."""
    return shipped_schema_path().read_text(encoding="utf-8")


if __name__ == "__main__":
    if "--write" in sys.argv:
        shipped_schema_path().write_text(generated_text(), encoding="utf-8")
        print(f"wrote {shipped_schema_path()}")
    else:
        sys.stdout.write(generated_text())
