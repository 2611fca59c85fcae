"""SqlState: the SQLite file (mode, WAL, ``~``) and the errors a bad --state URL gives."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from gxo.state.sql import SqlState, StateError

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sqlite_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        tmp_mode = _mode(tmp_path)
        path = tmp_path / "a" / "b" / "state.db"
        state = SqlState(f"sqlite:///{path}")
        state.set_status("p", "w", {"status": "Running"})
        assert _mode(path) == 0o600
        assert _mode(path.parent) == 0o700 and _mode(path.parent.parent) == 0o700
        assert _mode(tmp_path) == tmp_mode  # an existing directory is left as it was
        wal = path.with_name("state.db-wal")
        assert wal.exists() and _mode(wal) == 0o600  # SQLite copies the main file's mode
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        state.close()
    finally:
        os.umask(old)


def test_existing_file_keeps_its_data_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SqlState(f"sqlite:///{path}") as state:
        state.set_status("p", "w", {"status": "Completed"})
    path.chmod(0o640)  # the operator's choice is respected
    with SqlState(f"sqlite:///{path}") as state:
        assert state.get_status("p", "w")["status"] == "Completed"
    assert _mode(path) == 0o640


def test_tilde_is_expanded_to_home(tmp_path: Path) -> None:
    with SqlState("sqlite:///~/.gxo/state.db") as state:
        state.set_status("p", "w", {"status": "Running"})
    assert (Path.home() / ".gxo" / "state.db").is_file()
    assert _mode(Path.home() / ".gxo") == 0o700


def test_in_memory_sqlite_is_shared_between_threads() -> None:
    errors: list[BaseException] = []
    with SqlState("sqlite://") as state:

        def work(t: int) -> None:
            try:
                for i in range(100):
                    state.start_run("p", f"w{t}", f"{t}-{i}", "t")
                    state.set_status("p", f"w{t}", {"status": "Running", "restarts": i})
                    assert state.get_status("p", f"w{t}")["restarts"] == i
                    assert state.get_run(f"{t}-{i}")["status"] == "Running"
                    state.finish_run(f"{t}-{i}", "Completed", "t", {})
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert [len(state.list_runs("p", f"w{t}", limit=200)) for t in range(4)] == [100] * 4


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nonsense", "invalid state URL 'nonsense': expected sqlite:///PATH or postgresql://"),
        ("mysql://u@127.0.0.1/db", "unsupported state URL scheme 'mysql' (use sqlite:///PATH"),
    ],
)
def test_bad_url_is_a_clear_error(url: str, message: str) -> None:
    with pytest.raises(StateError) as info:
        SqlState(url)
    assert message in str(info.value)


def test_uncreatable_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StateError, match=r"cannot create state database .*/file/state\.db: "):
        SqlState(f"sqlite:///{tmp_path / 'file' / 'state.db'}")


def test_unreachable_postgresql_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(StateError) as info:
        SqlState("postgresql://postgres:s3cr3t@127.0.0.1:1/gxo?connect_timeout=2")
    text = str(info.value)
    assert text.startswith("state database postgresql+psycopg://postgres:***@127.0.0.1:1/gxo")
    assert "s3cr3t" not in text and "\n" not in text


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqlState(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE gxo_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StateError, match="has schema version 99; this gxo understands up to 3"):
        SqlState(f"sqlite:///{path}")


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(
        StateError, match=r"state database sqlite:///.*state\.db: file is not a database"
    ):
        SqlState(f"sqlite:///{path}")


def test_postgresql_connections_killed_by_the_server_are_replaced(
    require_service: Callable[..., None], request: pytest.FixtureRequest
) -> None:
    # A PostgreSQL restart (or an idle-session timeout) kills pooled connections;
    # the next call must not fail on one of them.
    from sqlalchemy import create_engine, text

    require_service("127.0.0.1", 5432, "PostgreSQL")
    url = request.getfixturevalue("pg_database")
    with SqlState(url) as state:
        state.set_status("p", "w", {"status": "Running"})
        assert state.get_status("p", "w")["status"] == "Running"  # a second pooled connection
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            killed = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": url.rsplit("/", 1)[1]},
            ).scalar()
        admin.dispose()
        assert killed >= 1
        state.set_status("p", "w", {"status": "Completed"})
        assert state.get_status("p", "w")["status"] == "Completed"
