"""database:query error text is redacted before it is cut (issue 8, "Redact before truncating").

MariaDB quotes the query from the error position on, cut at 80 characters
(`near '…' at line 1`); GXO quotes the statement cut at 200. A secret straddling
either cut must not leave its first characters in clear.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from gxo.engine.report import build_report
from gxo.modules.testkit import run_playbook_text
from gxo.template.secrets import SecretRegistry

MY = "mysql://root@127.0.0.1:3306/test"
TOKEN = "s3cr3t-db-token-value-XYZ"


async def test_a_secret_cut_in_an_sql_error_is_masked(
    tmp_path: Path, require_service: Callable[..., None]
) -> None:
    require_service("127.0.0.1", 3306, "MariaDB")
    near_cut = "SELEC '" + "a" * 64 + " {{ secret('DBTOK') }}'"  # the server cuts at 80
    # the token starts at character 194 of the statement, which is quoted up to 197
    statement_cut = (
        "SELECT 1 FROM nowhere WHERE y = '" + "b" * 150 + "' AND x = '{{ secret('DBTOK') }}'"
    )
    text = f"""
schemaVersion: "1.0.0"
name: db-secrets
workloads:
  - name: near
    process: {{ module: database:query, params: {{ url: "{MY}", query: "{near_cut}" }} }}
  - name: statement
    process: {{ module: database:query, params: {{ url: "{MY}", query: "{statement_cut}" }} }}
"""
    registry = SecretRegistry(provider={"DBTOK": TOKEN}.get)
    result = await run_playbook_text(text, secrets=registry, workspace=tmp_path)
    near, statement = result.states["near"].error, result.states["statement"].error
    assert "near 'SELEC 'aaaa" in near and "[REDACTED]..." in near, near
    assert "in: SELECT 1 FROM nowhere WHERE y = 'bbbb" in statement and "[REDACTED]..." in statement
    for error in (near, statement, json.dumps(build_report(result))):
        assert TOKEN[:4] not in error, error
