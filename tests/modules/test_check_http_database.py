"""http:request and database:query under ``gxo run --check`` against real servers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gxo.modules.testkit import run_playbook_text

PG = "postgresql://postgres@127.0.0.1:5432/test"
MY = "mysql://root@127.0.0.1:3306/test"


async def check_run(text: str, **options: Any) -> Any:
    head = 'schemaVersion: "1.0.0"\nname: check\n'
    return await run_playbook_text(head + text, check=True, **options)


# -- http:request -----------------------------------------------------------------------


async def test_http_sends_safe_methods_and_shows_the_others_unsent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GXO_TEST_API_TOKEN", "tok-9f8e7d6c5b")
    monkeypatch.setenv("GXO_TEST_API_PW", "pw-1a2b3c4d5e")
    result = await check_run(
        """
workloads:
  - name: api
    process:
      module: test:mock_http_server
      params:
        handlers:
          - { method: GET, path: /users, json: [ada] }
          - { method: POST, path: /users, status_code: 201 }
    register: mock
  - name: list
    process: { module: http:request, params: { url: "{{ mock.server_url }}/users" } }
    register: users
  - name: create
    process:
      module: http:request
      params:
        url: "{{ mock.server_url }}/users"
        method: post
        query: { notify: "yes" }
        headers: { X-Api-Key: k-123, X-Trace: t1 }
        json: { name: grace, token: "{{ secret('GXO_TEST_API_TOKEN') }}" }
        auth: { type: bearer, token: "{{ secret('GXO_TEST_API_TOKEN') }}" }
    register: created
  - name: uses_created
    process: { module: control:identity, params: { sent: "{{ created.sent }}" } }
  - name: replace
    process:
      module: http:request
      params:
        url: "{{ mock.server_url }}/users/1"
        method: PUT
        body: "name=ada"
        auth: { type: basic, username: admin, password: "{{ secret('GXO_TEST_API_PW') }}" }
  - name: remove
    process:
      module: http:request
      params:
        url: "{{ mock.server_url }}/users/1"
        method: DELETE
        form: { why: old }
        auth: { type: header, name: X-Key, value: "{{ secret('GXO_TEST_API_PW') }}" }
  - name: count
    depends_on: [list, create, replace, remove]
    process:
      module: test:assert
      params:
        assertions:
          - { actual: "{{ _gxo.workloads.api.summary.request_count }}", equal_to: 1 }
"""
    )
    s = result.states
    assert result.status == "Completed", {n: st.error for n, st in s.items()}
    assert s["list"].check_outcome == "ran" and s["list"].summary["json_body"] == ["ada"]
    assert s["count"].status.value == "Completed"  # only the GET reached the server
    url = s["api"].summary["server_url"]
    assert s["create"].check_outcome == "predicted"
    assert s["create"].summary == {
        "changed": True,
        "sent": False,
        "request": {
            "method": "POST",
            "url": f"{url}/users?notify=yes",
            "headers": {"X-Api-Key": "***", "X-Trace": "t1", "Authorization": "Bearer ***"},
            "json": {"name": "grace", "token": "[REDACTED]"},
        },
    }
    assert s["uses_created"].summary == {"sent": False}
    assert s["replace"].summary["request"]["headers"] == {"Authorization": "Basic ***"}
    assert s["replace"].summary["request"]["body"] == "name=ada"
    assert s["remove"].summary["request"] == {
        "method": "DELETE",
        "url": f"{url}/users/1",
        "headers": {"X-Key": "***"},
        "form": {"why": "old"},
    }
    assert any("check mode: POST" in line and "not sent" in line for _, _, line in s["create"].logs)


async def test_http_check_refuses_a_bad_url() -> None:
    result = await check_run(
        """
workloads:
  - name: w
    process: { module: http:request, params: { url: "http://127.0.0.1:70000/x", method: POST } }
"""
    )
    assert result.states["w"].error == (
        "invalid url 'http://127.0.0.1:70000/x': port 70000 is out of range (1-65535)"
    )


# -- database:query ---------------------------------------------------------------------


def admin(url: str, sql: str) -> list[Any]:
    """Run SQL outside GXO (setup and checks)."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    from gxo.modules.application.database_query import _DRIVERS

    parsed = sa.make_url(url)
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=_DRIVERS.get(parsed.drivername, parsed.drivername))
    engine = sa.create_engine(parsed, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql))
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def table_exists(url: str, table: str) -> bool:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    from gxo.modules.application.database_query import _DRIVERS

    parsed = sa.make_url(url)
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=_DRIVERS.get(parsed.drivername, parsed.drivername))
    engine = sa.create_engine(parsed, poolclass=NullPool)
    try:
        return sa.inspect(engine).has_table(table)
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def db(
    request: pytest.FixtureRequest, tmp_path: Path, require_service: Callable[..., None]
) -> Iterator[tuple[str, str]]:
    """``(url, table)``: a table holding one row, dropped afterwards."""
    if request.param == "postgresql":
        require_service("127.0.0.1", 5432, "PostgreSQL")
        url = PG
    elif request.param == "mariadb":
        require_service("127.0.0.1", 3306, "MariaDB")
        url = MY
    else:
        url = f"sqlite:///{tmp_path}/test.db"
    table = f"gxo_c_{uuid.uuid4().hex[:10]}"
    admin(url, f"CREATE TABLE {table} (name VARCHAR(100), n INTEGER)")
    admin(url, f"INSERT INTO {table} (name, n) VALUES ('first', 1)")
    try:
        yield url, table
    finally:
        admin(url, f"DROP TABLE IF EXISTS {table}")
        admin(url, f"DROP TABLE IF EXISTS {table}_new")


async def test_database_writes_are_rolled_back_and_reads_run(db: tuple[str, str]) -> None:
    url, t = db
    mysql = url.startswith("mysql")
    ddl = "" if mysql else f"CREATE TABLE {t}_new (x INTEGER)"
    result = await check_run(
        f"""
vars: {{ url: "{url}" }}
workloads:
  - name: insert
    process:
      module: database:query
      params:
        url: "{{{{ url }}}}"
        query: "INSERT INTO {t} (name, n) VALUES (:name, :n)"
        many: [{{ name: a, n: 2 }}, {{ name: b, n: 3 }}]
    register: inserted
  - name: batch
    process:
      module: database:query
      params:
        url: "{{{{ url }}}}"
        transaction: true
        statements:
          - {{ query: "UPDATE {t} SET n = n + 10 WHERE name = 'first'" }}
          - {{ query: "DELETE FROM {t} WHERE name = 'nobody'" }}
          - {{ query: "{ddl or f"SELECT COUNT(*) AS c FROM {t}"}" }}
  - name: no_op
    process:
      module: database:query
      params: {{ url: "{{{{ url }}}}", query: "UPDATE {t} SET n = 0 WHERE name = 'nobody'" }}
  - name: read
    depends_on: [insert, batch, no_op]
    process:
      module: database:query
      params: {{ url: "{{{{ url }}}}", query: "SELECT name, n FROM {t} ORDER BY n" }}
    register: rows
  - name: after
    process: {{ module: control:identity, params: {{ n: "{{{{ inserted.rows_affected }}}}" }} }}
"""
    )
    s = result.states
    assert result.status == "Completed", {n: st.error for n, st in s.items()}
    assert s["insert"].check_outcome == "predicted"
    assert s["insert"].summary == {"rows_affected": 2, "changed": True, "rolled_back": True}
    batch = s["batch"].summary
    assert batch["changed"] is True and batch["rolled_back"] is True
    assert [st.get("rows_affected") for st in batch["statements"][:2]] == [1, 0]
    assert s["no_op"].summary["changed"] is False
    assert s["read"].check_outcome == "ran"
    assert s["read"].summary["rows"] == [{"name": "first", "n": 1}]  # nothing was kept
    assert s["after"].summary == {"n": 2}
    assert admin(url, f"SELECT name, n FROM {t}") == [("first", 1)]
    assert not table_exists(url, f"{t}_new")


async def test_database_statements_that_defeat_the_rollback_are_not_run(
    db: tuple[str, str],
) -> None:
    url, t = db
    result = await check_run(
        f"""
workloads:
  - name: commits
    process:
      module: database:query
      params:
        url: "{url}"
        statements:
          - {{ query: "INSERT INTO {t} (name, n) VALUES ('x', 9)" }}
          - {{ query: "COMMIT" }}
  - name: needs_it
    depends_on: [commits]
    process: {{ module: control:identity, params: {{ ok: true }} }}
  - name: ddl
    process: {{ module: database:query, params: {{ url: "{url}", query: "DROP TABLE {t}" }} }}
  - name: server_file
    process:
      module: database:query
      params: {{ url: "{url}", query: "SELECT name INTO OUTFILE '/tmp/x' FROM {t}" }}
"""
    )
    s = result.states
    assert s["commits"].status.value == "Skipped"
    assert s["commits"].reason == (
        "check mode: database:query not run: 'COMMIT' would end the transaction check mode rolls back"
    )
    assert s["needs_it"].reason == "check mode: needs 'commits', which was not run"
    if url.startswith("mysql"):
        assert s["ddl"].reason == (
            "check mode: database:query not run: MySQL/MariaDB commits 'DROP' implicitly: "
            "it cannot be rolled back"
        )
    else:
        assert s["ddl"].summary == {"rows_affected": None, "changed": True, "rolled_back": True}
    assert s["server_file"].reason == (
        "check mode: database:query not run: it writes a file on the server, which cannot be "
        "rolled back"
    )
    assert admin(url, f"SELECT name, n FROM {t}") == [("first", 1)]
