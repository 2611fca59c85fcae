"""Fixtures for the SQL state store: every test runs on SQLite and on PostgreSQL.

PostgreSQL tests get a database created for the test module (uniquely named,
dropped afterwards) and empty tables for each test. With CI=true a missing
PostgreSQL fails the tests (``require_service``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test module; its URL as the daemon would get it."""
    from sqlalchemy import create_engine, text

    name = f"gxo_test_state_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _drop_tables(url: str) -> None:
    from sqlalchemy import create_engine

    from gxo.state._sql_schema import metadata, parse_url

    engine = create_engine(parse_url(url))
    try:
        metadata.drop_all(engine)
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(
    request: pytest.FixtureRequest, tmp_path: Path, require_service: Callable[..., None]
) -> Iterator[str]:
    """The URL of an empty state database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'state.db'}"
        return
    require_service("127.0.0.1", 5432, "PostgreSQL")
    url = request.getfixturevalue("pg_database")
    _drop_tables(url)
    yield url
    _drop_tables(url)


@pytest.fixture
def open_state(state_url: str) -> Iterator[Callable[..., object]]:
    """``open_state(**options)`` → a SqlState on ``state_url``; all are closed after the test."""
    from gxo.state.sql import SqlState

    opened: list[SqlState] = []

    def open_(**options: object) -> SqlState:
        state = SqlState(state_url, **options)  # type: ignore[arg-type]
        opened.append(state)
        return state

    yield open_
    for state in opened:
        state.close()
