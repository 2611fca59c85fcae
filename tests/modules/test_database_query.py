"""database:query against SQLite and the real PostgreSQL and MariaDB servers on loopback.

With CI=true an unreachable server fails these tests (require_service).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gxo.errors import PlaybookValidationError
from gxo.modules.testkit import run_module

PG = "postgresql://postgres@127.0.0.1:5432/test"
MY = "mysql://root@127.0.0.1:3306/test"


def admin(url: str, sql: str) -> list[Any]:
    """Run SQL outside GXO (setup, checks, cleanup)."""
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


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def db(
    request: pytest.FixtureRequest, tmp_path: Path, require_service: Callable[..., None]
) -> Iterator[tuple[str, str]]:
    """``(url, table)``: a database and a unique table name, dropped afterwards."""
    if request.param == "postgresql":
        require_service("127.0.0.1", 5432, "PostgreSQL")
        url = PG
    elif request.param == "mariadb":
        require_service("127.0.0.1", 3306, "MariaDB")
        url = MY
    else:
        url = f"sqlite:///{tmp_path}/test.db"
    table = f"gxo_t_{uuid.uuid4().hex[:10]}"
    admin(url, f"CREATE TABLE {table} (name VARCHAR(100), n INTEGER)")
    try:
        yield url, table
    finally:
        admin(url, f"DROP TABLE IF EXISTS {table}")


async def query(url: str, **params: Any):
    return await run_module("database:query", {"url": url, **params})


async def test_insert_many_select_streams_rows_and_summarises(db: tuple[str, str]) -> None:
    url, t = db
    rows = [{"name": f"u{i}", "n": i} for i in range(7)]
    r = await query(url, query=f"INSERT INTO {t} (name, n) VALUES (:name, :n)", many=rows)
    assert r.ok, r.error
    assert r.summary == {"rows_affected": 7}
    r = await query(
        url,
        query=f"SELECT name, n FROM {t} WHERE n >= :min ORDER BY n",
        params={"min": 2},
        max_rows=2,
        fetch_size=2,
    )
    assert r.ok, r.error
    assert r.records == rows[2:]
    assert r.summary == {"rows": rows[2:4], "rowcount": 5, "columns": ["name", "n"]}
    r = await query(url, query=f"UPDATE {t} SET n = n + 100 WHERE n < :lim", params={"lim": 3})
    assert r.summary == {"rows_affected": 3}
    r = await query(url, query=f"DELETE FROM {t}", many=[])
    assert r.summary == {"rows_affected": 0}


async def test_params_are_bound_never_interpolated(db: tuple[str, str]) -> None:
    url, t = db
    evil = f"x'); DROP TABLE {t}; --"
    r = await query(
        url, query=f"INSERT INTO {t} (name, n) VALUES (:name, 1)", params={"name": evil}
    )
    assert r.ok, r.error
    assert admin(url, f"SELECT name FROM {t}") == [(evil,)]


async def test_transaction_rolls_back_every_statement_on_error(db: tuple[str, str]) -> None:
    url, t = db
    statements = [
        {"query": f"INSERT INTO {t} (name, n) VALUES (:name, :n)", "params": {"name": "a", "n": 1}},
        {"query": f"INSERT INTO {t} (name, n) VALUES ('b', 2)"},
        {"query": "INSERT INTO gxo_no_such_table VALUES (1)"},
    ]
    r = await query(url, statements=statements, transaction=True)
    assert r.status == "Failed"
    assert "(statement 3 of 3)" in r.error
    assert r.error.endswith(
        "in: INSERT INTO gxo_no_such_table VALUES (1) (transaction rolled back)"
    )
    assert admin(url, f"SELECT count(*) FROM {t}") == [(0,)]
    r = await query(url, statements=statements[:2], transaction=True)
    assert r.ok, r.error
    assert r.summary == {
        "statements": [{"rows_affected": 1}, {"rows_affected": 1}],
        "rows_affected": 2,
        "transaction": True,
    }
    # Without a transaction each statement commits on its own: the first two stay.
    admin(url, f"DELETE FROM {t}")
    r = await query(url, statements=statements)
    assert r.status == "Failed"
    assert admin(url, f"SELECT count(*) FROM {t}") == [(2,)]


async def test_statements_may_return_rows(db: tuple[str, str]) -> None:
    url, t = db
    r = await query(
        url,
        statements=[
            {"query": f"INSERT INTO {t} (name, n) VALUES ('a', 1)"},
            {"query": f"SELECT name, n FROM {t}"},
        ],
    )
    assert r.ok, r.error
    assert r.summary["statements"][1] == {
        "rows": [{"name": "a", "n": 1}],
        "rowcount": 1,
        "columns": ["name", "n"],
    }
    assert r.records == [{"name": "a", "n": 1}]


async def test_sql_error_carries_the_server_message(db: tuple[str, str]) -> None:
    url, _ = db
    r = await query(url, query="SELECT * FROM gxo_missing_table")
    assert r.status == "Failed"
    safe = url.replace("postgresql:", "postgresql+psycopg:").replace("mysql:", "mysql+pymysql:")
    assert r.error.startswith(f"SQL error on {safe}: ")
    assert r.error.endswith("in: SELECT * FROM gxo_missing_table")
    expected = {
        "sqlite": "no such table: gxo_missing_table",
        "postgresql": 'relation "gxo_missing_table" does not exist',
        "mysql": "Table 'test.gxo_missing_table' doesn't exist (error 1146)",
    }[url.split(":")[0]]
    assert expected in r.error
    r = await query(url, query="SELECT :x AS x")
    assert "A value is required for bind parameter 'x'" in r.error


async def test_non_json_values_become_json_friendly(
    tmp_path: Path, require_service: Callable[..., None]
) -> None:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    sql = (
        "SELECT 12.50::numeric AS price, 3::numeric AS whole, TIMESTAMP '2024-01-02 03:04:05' AS at,"
        " DATE '2024-01-02' AS day, '\\x0001ff'::bytea AS raw,"
        " 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id, INTERVAL '90 seconds' AS wait"
    )
    r = await query(PG, query=sql)
    assert r.ok, r.error
    assert r.records == [
        {
            "price": 12.5,
            "whole": 3,
            "at": "2024-01-02T03:04:05",
            "day": "2024-01-02",
            "raw": "AAH/",
            "id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "wait": 90.0,
        }
    ]
    json.dumps(r.summary)  # the summary is JSON too


async def test_default_url_is_gxo_db_in_the_workspace_and_relative_paths_resolve(
    tmp_path: Path,
) -> None:
    r = await run_module(
        "database:query", {"query": "CREATE TABLE t (x INTEGER)"}, workspace=tmp_path
    )
    assert r.ok, r.error
    assert (tmp_path / "gxo.db").is_file()
    r = await run_module(
        "database:query",
        {"url": "sqlite:///data/app.db", "query": "SELECT 1 AS one"},
        workspace=tmp_path / "..",
    )
    assert r.status == "Failed"  # data/ does not exist under that workspace
    assert (
        r.error
        == f"cannot connect to sqlite:///{tmp_path.parent}/data/app.db: unable to open database file"
    )
    (tmp_path / "data").mkdir()
    r = await run_module(
        "database:query",
        {"url": "sqlite:///data/app.db", "query": "SELECT 1 AS one"},
        workspace=tmp_path,
    )
    assert r.ok and r.records == [{"one": 1}]
    assert (tmp_path / "data" / "app.db").is_file()


async def test_sqlite_connection_is_closed_after_the_run(tmp_path: Path) -> None:
    import psutil

    r = await run_module("database:query", {"query": "SELECT 1 AS one"}, workspace=tmp_path)
    assert r.ok
    open_files = [f.path for f in psutil.Process().open_files()]
    assert not [p for p in open_files if p.startswith(str(tmp_path))]


async def test_postgresql_connection_is_closed_after_the_run(
    require_service: Callable[..., None],
) -> None:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    app = f"gxo_test_{uuid.uuid4().hex[:8]}"
    r = await query(
        f"{PG}?application_name={app}",
        query="SELECT count(*) AS c FROM pg_stat_activity WHERE application_name = :app",
        params={"app": app},
    )
    assert r.records == [{"c": 1}]  # this very connection, while it runs
    assert admin(PG, f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'") == [
        (0,)
    ]


async def test_mariadb_connection_is_closed_after_the_run(
    require_service: Callable[..., None],
) -> None:
    require_service("127.0.0.1", 3306, "MariaDB")
    r = await query(MY, query="SELECT CONNECTION_ID() AS id")
    [[connection_id]] = [[x["id"]] for x in r.records]
    assert admin(
        MY, f"SELECT count(*) FROM information_schema.processlist WHERE id = {int(connection_id)}"
    ) == [(0,)]


async def test_timeout_cancels_the_query_on_the_server(
    require_service: Callable[..., None],
) -> None:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    app = f"gxo_test_{uuid.uuid4().hex[:8]}"
    r = await run_module(
        "database:query",
        {"url": f"{PG}?application_name={app}", "query": "SELECT pg_sleep(30)"},
        workload={"timeout": "500ms"},
    )
    assert r.status == "Failed"
    assert r.error == "timed out after 500ms"
    assert admin(PG, f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'") == [
        (0,)
    ]


async def test_timeout_interrupts_a_long_sqlite_query(tmp_path: Path) -> None:
    import time

    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) AS n FROM c"
    started = time.monotonic()
    r = await run_module(
        "database:query", {"query": endless}, workspace=tmp_path, workload={"timeout": "300ms"}
    )
    assert r.status == "Failed"
    assert r.error == "timed out after 300ms"
    assert time.monotonic() - started < 5


async def test_connection_errors_never_show_the_password() -> None:
    r = await query(
        "postgresql://postgres:s3cr3t-pw@127.0.0.1:1/test", query="SELECT 1", connect_timeout="2s"
    )
    assert r.status == "Failed"
    assert r.error.startswith(
        "cannot connect to postgresql+psycopg://postgres:***@127.0.0.1:1/test: connection failed:"
    )
    assert "s3cr3t-pw" not in r.error


async def test_authentication_error_shows_the_server_text_without_the_password(
    require_service: Callable[..., None],
) -> None:
    require_service("127.0.0.1", 3306, "MariaDB")
    r = await query("mysql://gxo_nobody:s3cr3t-pw@127.0.0.1:3306/test", query="SELECT 1")
    assert r.status == "Failed"
    assert r.error.startswith(
        "cannot connect to mysql+pymysql://gxo_nobody:***@127.0.0.1:3306/test: Access denied for user 'gxo_nobody'"
    )
    assert "s3cr3t-pw" not in r.error


async def test_secret_password_is_redacted_everywhere(
    monkeypatch: pytest.MonkeyPatch, run_yaml: Callable[..., Any]
) -> None:
    monkeypatch.setenv("GXO_TEST_DB_PW", "hunter2-secret")
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: db-secret
        workloads:
          - name: q
            process:
              module: database:query
              params:
                url: "postgresql://postgres:{{ secret('GXO_TEST_DB_PW') }}@127.0.0.1:1/test"
                query: SELECT 1
                connect_timeout: 1s
        """
    )
    state = result.states["q"]
    assert state.status.value == "Failed"
    assert "hunter2-secret" not in state.error
    assert "hunter2-secret" not in json.dumps(state.rendered_params)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "nonsense",
            "invalid database URL 'nonsense': expected e.g. sqlite:///app.db or postgresql://user@host/db",
        ),
        ("::x:pw@", "invalid database URL '::x:***@'"),
        (
            "oracle9://u:pw@h/db",
            "unsupported database URL scheme 'oracle9' (use sqlite, postgresql, mysql or mariadb)",
        ),
        (
            "postgresql+psycopg2://u:pw@h/db",
            "the driver for 'postgresql+psycopg2' is not installed",
        ),
    ],
)
async def test_bad_urls(url: str, message: str) -> None:
    r = await query(url, query="SELECT 1")
    assert r.status == "Failed"
    assert r.error.startswith(message)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "give exactly one of 'query' or 'statements'"),
        (
            {"query": "x", "statements": [{"query": "y"}]},
            "give exactly one of 'query' or 'statements'",
        ),
        ({"query": "x", "params": {}, "many": []}, "give 'params' or 'many', not both"),
        (
            {"statements": [{"query": "y"}], "many": [{}]},
            "with 'statements', give each statement its own params",
        ),
        ({"query": "x", "transaction": True}, "'transaction: true' applies to 'statements'"),
        ({"query": "x", "max_rows": -1}, "max_rows: Input should be greater than or equal to 0"),
        ({"statements": [{"sql": "y"}]}, "sql"),
        ({"query": "x", "connect_timeout": "0s"}, "connect_timeout must be longer than 0s"),
    ],
)
def test_bad_params_are_rejected_at_validation(params: dict, message: str) -> None:
    from gxo.config.loader import load_playbook

    text = f"schemaVersion: '1.0.0'\nname: p\nworkloads:\n  - name: db\n    process:\n      module: database:query\n      params: {json.dumps(params)}\n"
    with pytest.raises(PlaybookValidationError) as err:
        load_playbook(text=text, name="pb.yaml")
    assert message in str(err.value)
    assert "workload 'db'" in str(err.value)
