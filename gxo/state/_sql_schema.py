"""Tables, engine set-up and JSON encoding of the SQL state store (see ``gxo.state.sql``)."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    exc,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from gxo.errors import GxoError

__all__ = [
    "RUNNING",
    "SCHEMA_VERSION",
    "StateError",
    "Statements",
    "decode",
    "encode",
    "fires_table",
    "make_engine",
    "metadata",
    "pauses_table",
]

SCHEMA_VERSION = 3  # 2: gxo_runs.member (the fleet member that ran it); 3: gxo_pauses
RUNNING = "Running"
BUSY_TIMEOUT_MS = 10_000  # how long a SQLite writer waits for another process's lock


class StateError(GxoError):
    """The daemon's state database cannot be opened, read or written."""


metadata = MetaData()
# Portable across SQLite and PostgreSQL; the JSON columns are plain text so both
# backends store exactly what ``encode`` wrote (no driver-specific JSON coercion).
_Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY = rowid

meta_table = Table(
    "gxo_meta",
    metadata,
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
)
playbooks_table = Table(
    "gxo_playbooks",
    metadata,
    Column("name", String, primary_key=True),
    Column("source", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("checksum", String, nullable=False),
    Column("variables", Text, nullable=False),
    Column("applied_at", String, nullable=False),
)
statuses_table = Table(
    "gxo_statuses",
    metadata,
    Column("playbook", String, primary_key=True),
    Column("workload", String, primary_key=True),
    Column("data", Text, nullable=False),
)
runs_table = Table(
    "gxo_runs",
    metadata,
    # Insertion order gives "newest first" without trusting callers' clocks.
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("run_id", String, nullable=False, unique=True),
    Column("playbook", String, nullable=False),
    Column("workload", String, nullable=False),
    Column("status", String, nullable=False),
    Column("started_at", String, nullable=False),
    Column("ended_at", String),
    Column("reason", Text),
    Column("report", Text),
    # The fleet member running it (NULL outside a fleet): a member that dies leaves its
    # runs to the others' sweep (gxo/daemon/fleet.py). Added by schema version 2.
    Column("member", String),
    Index("ix_gxo_runs_workload", "playbook", "workload", "id"),
    Index("ix_gxo_runs_status", "status"),
)
results_table = Table(
    "gxo_results",
    metadata,
    Column("playbook", String, primary_key=True),
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
)
# One row per scheduled fire claimed by a fleet member: the unique key is what makes a
# fire run once fleet-wide (the database decides, no member's clock or leader logic).
fires_table = Table(
    "gxo_fires",
    metadata,
    Column("playbook", String, primary_key=True),
    Column("workload", String, primary_key=True),
    Column("fire_time", String, primary_key=True),  # UTC ISO 8601, so text order is time order
    Column("member", String, nullable=False),
    Column("claimed_at", String, nullable=False),
    Index("ix_gxo_fires_time", "fire_time"),
)

# One row per paused workload under the daemon (control:wait_for_signal): the token is
# stored only as its SHA-256; ``state`` moves from ``open`` exactly once, by a conditional
# UPDATE (resumed | rejected | expired | cancelled), so the database decides the races
# across a fleet. Added by schema version 3 (create_all makes it in an older store).
pauses_table = Table(
    "gxo_pauses",
    metadata,
    Column("id", String, primary_key=True),  # the token id (public: `gxo ctl paused`)
    Column("playbook", String, nullable=False),
    Column("workload", String, nullable=False),
    Column("run_id", String, nullable=False),
    Column("token_hash", String, nullable=False),
    Column("prompt", Text, nullable=False),
    Column("schema", Text),
    Column("since", String, nullable=False),
    Column("expires_at", String),  # UTC ISO 8601, NULL: no timeout
    Column("approvers", Text, nullable=False),  # JSON list
    Column("state", String, nullable=False),
    Column("decided_by", String),
    Column("decided_at", String),
    Column("payload", Text),
    Column("reason", Text),
    Index("ix_gxo_pauses_workload", "playbook", "workload", "run_id"),
    Index("ix_gxo_pauses_state", "state"),
)


class Statements:
    """The hot-path statements, built once: building a SQLAlchemy expression per call
    cost more than executing it (about half of a start_run + finish_run on SQLite).
    Parameters are ``b_*`` bind names (a bind may not share its column's name)."""

    def __init__(self, sqlite: bool) -> None:
        insert = sqlite_insert if sqlite else pg_insert

        def upsert(table: Table, keys: list[str]) -> Any:
            stmt = insert(table)
            changed = {c.name: stmt.excluded[c.name] for c in table.c if c.name not in keys}
            return stmt.on_conflict_do_update(index_elements=keys, set_=changed)

        self.upsert_playbook = upsert(playbooks_table, ["name"])
        self.upsert_status = upsert(statuses_table, ["playbook", "workload"])
        self.upsert_result = upsert(results_table, ["playbook", "key"])
        # DO NOTHING rather than catching the unique violation: PostgreSQL would log
        # an ERROR for every fire another member claimed first.
        # RETURNING: a row back means this call inserted it (psycopg's rowcount is -1 here).
        self.claim_fire = (
            insert(fires_table)
            .on_conflict_do_nothing(index_elements=["playbook", "workload", "fire_time"])
            .returning(fires_table.c.member)
        )
        self.prune_fires = delete(fires_table).where(
            fires_table.c.fire_time < bindparam("b_before")
        )
        self.insert_run = runs_table.insert()
        r = runs_table
        # Without RETURNING for a batch (executemany: sent as one lot).
        self.finish_runs = (
            update(r)
            .where(r.c.run_id == bindparam("b_run_id"))
            .values(
                status=bindparam("b_status"),
                ended_at=bindparam("b_ended_at"),
                reason=bindparam("b_reason"),
                report=bindparam("b_report"),
            )
        )
        self.finish_run = self.finish_runs.returning(r.c.playbook, r.c.workload)
        self.find_runs = select(r.c.run_id, r.c.playbook, r.c.workload).where(
            r.c.run_id.in_(bindparam("b_ids", expanding=True))
        )
        # Keep the newest b_keep runs of a workload; running ones are never pruned.
        newer = runs_table.alias("newer")
        cutoff = (
            select(newer.c.id)
            .where(newer.c.playbook == bindparam("b_playbook"))
            .where(newer.c.workload == bindparam("b_workload"))
            .order_by(newer.c.id.desc())
            .offset(bindparam("b_keep", type_=Integer))
            .limit(1)
            .scalar_subquery()
        )
        self.prune_runs = delete(r).where(
            r.c.playbook == bindparam("b_playbook"),
            r.c.workload == bindparam("b_workload"),
            r.c.status != RUNNING,
            r.c.id <= cutoff,
        )
        s = statuses_table
        self.get_status = select(s.c.data).where(
            s.c.playbook == bindparam("b_playbook"), s.c.workload == bindparam("b_workload")
        )


def _default(obj: Any) -> Any:
    """JSON for the few non-JSON values a summary may hold (a restart reads them back as text)."""
    if isinstance(obj, dt.datetime | dt.date | dt.time):
        return obj.isoformat()
    if isinstance(obj, bytes | bytearray):
        return base64.b64encode(bytes(obj)).decode("ascii")
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=repr)
    return str(obj)


def encode(value: Any) -> str:
    # json escapes control characters, so NUL never reaches PostgreSQL's text type.
    return json.dumps(value, default=_default, separators=(",", ":"))


def decode(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def redacted(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def parse_url(raw: str) -> URL:
    try:
        url = make_url(raw)
    except exc.ArgumentError:
        raise StateError(
            f"invalid state URL {raw!r}: expected sqlite:///PATH or postgresql://user@host/db"
        ) from None
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return url.set(drivername="postgresql+psycopg")
    if url.drivername in ("sqlite", "sqlite+pysqlite"):
        return url
    raise StateError(
        f"unsupported state URL scheme {url.drivername!r} (use sqlite:///PATH or postgresql://...)"
    )


def _prepare_sqlite_file(url: URL) -> URL:
    """Create the database file 0600 (and missing parent dirs 0700) before SQLite does.

    SQLite would create it with the umask's mode; its -wal and -shm files copy the
    main file's mode, so fixing the main file covers all three.
    """
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return url
    path = Path(database).expanduser()
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for directory in missing:
            os.chmod(directory, 0o700)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as e:
        raise StateError(f"cannot create state database {path}: {e.strerror or e}") from None
    return url.set(database=str(path))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer and a killed process leaves a consistent
    # file; synchronous=NORMAL is durable against process crashes (only a power cut
    # may lose the last commits, never corrupt the file).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def make_engine(raw_url: str) -> tuple[Engine, bool]:
    """(engine, is_sqlite) for a state URL; the file of a SQLite URL is created first."""
    url = parse_url(raw_url)
    if url.get_backend_name() == "sqlite":
        url = _prepare_sqlite_file(url)
        memory = (url.database or ":memory:") == ":memory:"
        options: dict[str, Any] = {
            # Threads share the pool; writes are serialised by SqlState's lock.
            "connect_args": {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        }
        if memory:  # one shared connection, or every checkout sees an empty database
            options["poolclass"] = StaticPool
        engine = create_engine(url, **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine, True
    try:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    except ImportError as e:  # pragma: no cover - psycopg is a dependency
        raise StateError(f"the driver for {url.drivername!r} is not installed: {e}") from None
    return engine, False
