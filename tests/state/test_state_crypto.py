"""The encrypted state store (gxo/state/crypto.py, _sql_crypto.py) on SQLite and PostgreSQL:
what reaches the database, tampering, wrong and missing keys, plaintext stores."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from gxo.state._sql_crypto import verify_store
from gxo.state._sql_schema import parse_url
from gxo.state.crypto import AesGcmCodec, generate_key, key_id
from gxo.state.sql import SqlState, StateError

KEY, OTHER = generate_key(), generate_key()
SECRET = "hunter2-not-in-the-database"


@contextmanager
def raw_db(url: str) -> Iterator[Any]:
    """A DB-API connection straight to the store (sqlite3 or psycopg): what an attacker
    with the file or the database sees, without gxo in between."""
    if url.startswith("sqlite"):
        conn: Any = sqlite3.connect(parse_url(url).database or "", isolation_level=None)
        mark = "?"
    else:
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
        mark = "%s"
    try:
        yield conn, mark
    finally:
        conn.close()


def fill(state: SqlState) -> None:
    state.put_playbook(
        "web",
        source=f"password: {SECRET}",
        path="/srv/web.gxo.yaml",
        checksum="abc123",
        variables={"token": SECRET},
    )
    state.put_playbook("db", source="x: 1", path="/srv/db.gxo.yaml", checksum="d", variables={})
    state.set_status("web", "server", {"status": "Running", "reason": SECRET})
    state.set_status("web", "worker", {"status": "Completed"})
    state.start_run("web", "server", "r1", "2026-01-01T00:00:00+00:00")
    state.finish_run("r1", "Failed", "2026-01-01T00:00:01+00:00", {"out": SECRET}, SECRET)
    state.start_run("web", "server", "r2", "2026-01-01T00:00:02+00:00")
    state.results("web").set("login", {"token": SECRET})
    state.results("web").set("other", [1, 2, 3])


def dump(conn: Any) -> str:
    out = []
    for table in ("gxo_playbooks", "gxo_statuses", "gxo_runs", "gxo_results", "gxo_meta"):
        out.extend(repr(row) for row in conn.execute(f"SELECT * FROM {table}").fetchall())
    return "\n".join(out)


def test_values_reach_the_database_only_as_ciphertext(open_state: Callable[..., Any]) -> None:
    state = open_state(codec=AesGcmCodec(KEY))
    fill(state)
    with raw_db(state_url_of(state)) as (conn, _):
        text = dump(conn)
        source = conn.execute("SELECT source, path, variables FROM gxo_playbooks").fetchall()
        run = conn.execute("SELECT status, reason, report FROM gxo_runs ORDER BY id").fetchall()
    assert SECRET not in text and "/srv/web" not in text and "abc123" not in text
    assert all(v.startswith(f"gxo1:{key_id(KEY)}:") for row in source for v in row)
    # Queried columns stay plaintext; a Running run has no reason or report yet (NULL).
    assert run[0][0] == "Failed" and run[0][1].startswith("gxo1:") and run[1][1:] == (None, None)
    # Everything reads back as written.
    record = state.get_playbook("web")
    assert record.source == f"password: {SECRET}" and record.variables == {"token": SECRET}
    assert record.path == "/srv/web.gxo.yaml" and record.checksum == "abc123"
    assert state.get_status("web", "server") == {
        "status": "Running",
        "reason": SECRET,
        "updated_at": state.get_status("web", "server")["updated_at"],
    }
    assert [r["reason"] for r in state.list_runs("web", "server")] == [None, SECRET]
    assert state.get_run("r1")["report"] == {"out": SECRET}
    failed = state.fail_unfinished_runs("daemon restarted")
    assert [r["run_id"] for r in failed] == ["r2"]
    assert state.get_run("r2")["reason"] == "daemon restarted"
    state.close()
    again = open_state(codec=AesGcmCodec(KEY))
    assert again.results("web").snapshot() == {"login": {"token": SECRET}, "other": [1, 2, 3]}
    assert verify_store(again) == 2 * 4 + 2 + 2 * 2 + 2


def state_url_of(state: SqlState) -> str:
    return state._engine.url.render_as_string(hide_password=False).replace("+psycopg", "")


def test_a_wrong_key_or_no_key_is_refused_at_open(open_state: Callable[..., Any]) -> None:
    fill(open_state(codec=AesGcmCodec(KEY)))
    with pytest.raises(StateError) as wrong:
        open_state(codec=AesGcmCodec(OTHER))
    assert f"encrypted with key {key_id(KEY)}, not with the key given ({key_id(OTHER)})" in str(
        wrong.value
    )
    assert "--state-key-file FILE or --state-key-cmd CMD" in str(wrong.value)
    with pytest.raises(StateError, match=r"is encrypted \(key \w{8}\): pass its key with"):
        open_state()


def _tamper(state: SqlState, sql: str, *params: Any) -> None:
    with raw_db(state_url_of(state)) as (conn, mark):
        conn.execute(sql.replace("?", mark), params)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("flip", "state row statuses/web/server (data) fails authentication"),
        ("truncate", "state row statuses/web/server (data) "),
        ("swap", "state row statuses/web/server (data) fails authentication"),
        ("other-table", "state row statuses/web/server (data) fails authentication"),
        ("plaintext", "state row statuses/web/server (data) is not encrypted"),
        ("other-key", f"was encrypted with key {key_id(OTHER)}, not with the key given"),
    ],
    ids=["flip", "truncate", "swap", "other-table", "plaintext", "other-key"],
)
def test_a_damaged_value_is_an_error_naming_its_row(
    open_state: Callable[..., Any], damage: str, message: str
) -> None:
    state = open_state(codec=AesGcmCodec(KEY))
    fill(state)
    with raw_db(state_url_of(state)) as (conn, mark):
        q = f"SELECT data FROM gxo_statuses WHERE workload = {mark}"
        server = conn.execute(q, ("server",)).fetchone()[0]
        worker = conn.execute(q, ("worker",)).fetchone()[0]
        result = conn.execute("SELECT value FROM gxo_results").fetchone()[0]
    body = server.rsplit(":", 1)[1]
    new = {
        # one bit of the ciphertext (inside the base64: keep it valid base64)
        "flip": server[:-10] + ("A" if server[-10] != "A" else "B") + server[-9:],
        "truncate": server[: len(server) - len(body) // 2],
        "swap": worker,  # another row's value, same key, same table
        "other-table": result,  # a results value moved into statuses
        "plaintext": '{"status":"Completed"}',
        "other-key": AesGcmCodec(OTHER).seal('{"a":1}', "statuses", "web", "server", column="data"),
    }[damage]
    _tamper(state, "UPDATE gxo_statuses SET data = ? WHERE workload = ?", new, "server")
    with pytest.raises(StateError, match=message.replace("(", r"\(").replace(")", r"\)")):
        state.get_status("web", "server")
    with pytest.raises(StateError, match="statuses/web/server"):
        verify_store(state)
    assert state.get_status("web", "worker")["status"] == "Completed"  # the others still read


def test_two_runs_reports_swapped_are_refused(open_state: Callable[..., Any]) -> None:
    state = open_state(codec=AesGcmCodec(KEY))
    fill(state)
    state.finish_run("r2", "Completed", "t", {"out": "fine"}, "ok")
    with raw_db(state_url_of(state)) as (conn, _):
        (a, ra), (b, rb) = conn.execute("SELECT report, reason FROM gxo_runs ORDER BY id")
    _tamper(state, "UPDATE gxo_runs SET report = ?, reason = ? WHERE run_id = ?", b, rb, "r1")
    _tamper(state, "UPDATE gxo_runs SET report = ?, reason = ? WHERE run_id = ?", a, ra, "r2")
    with pytest.raises(StateError, match=r"state row runs/r1 \(reason\) fails authentication"):
        state.get_run("r1")
    # reason and report of one row swapped with each other: the column is bound too
    _tamper(state, "UPDATE gxo_runs SET report = ?, reason = ? WHERE run_id = ?", ra, a, "r1")
    with pytest.raises(StateError, match=r"runs/r1 \(reason\) fails authentication"):
        state.get_run("r1")


def test_a_plaintext_store_opened_with_a_key_is_encrypted_in_place(
    open_state: Callable[..., Any],
) -> None:
    plain = open_state()
    fill(plain)
    plain.close()
    state = open_state(codec=AesGcmCodec(KEY))
    with raw_db(state_url_of(state)) as (conn, _):
        assert SECRET not in dump(conn)
    assert state.get_run("r1")["reason"] == SECRET
    assert state.results("web").get("login") == {"token": SECRET}
    assert verify_store(state) == 16


def test_a_missing_key_check_row_with_encrypted_values_is_refused(
    open_state: Callable[..., Any],
) -> None:
    state = open_state(codec=AesGcmCodec(KEY))
    fill(state)
    _tamper(state, "DELETE FROM gxo_meta WHERE key = ?", "key_check")
    state.close()
    with pytest.raises(StateError, match="holds encrypted values but no key check row"):
        open_state(codec=AesGcmCodec(KEY))


def test_a_truncated_sqlite_file_is_a_state_error(tmp_path: Any) -> None:
    path = tmp_path / "s.db"
    url = f"sqlite:///{path}"
    with SqlState(url, codec=AesGcmCodec(KEY)) as state:
        for i in range(300):
            state.set_status("p", f"w{i}", {"status": "Completed", "pad": "x" * 200})
    size = path.stat().st_size
    assert size > 40_000
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(StateError, match=r"state database sqlite:///.*s\.db"):
        state = SqlState(url, codec=AesGcmCodec(KEY))
        try:
            verify_store(state)
        finally:
            state.close()
