"""The daemon's persistent state: SQLite or PostgreSQL through SQLAlchemy Core.

``SqlState(url)`` holds applied playbooks, workload statuses, run history (the
last ``history_limit`` runs per workload) and registered results. Every method
is synchronous and thread-safe: the daemon calls them through
``asyncio.to_thread``. JSON values are stored as JSON text.

SQLite (``sqlite:///PATH``, ``~`` expanded) runs in WAL mode: a process killed
mid-write (even with SIGKILL) leaves the last committed state intact. The file
is created 0600 and missing parent directories 0700. Writers inside one process
are serialised by a lock (SQLite allows one writer at a time; waiting on a
Python lock is cheaper and fairer than retrying on SQLITE_BUSY); readers use
the pool concurrently. Measured: a fresh connection per call (NullPool) was
10-70x slower, as every close of the last connection checkpoints the WAL. PostgreSQL (``postgresql://user@host/db``) uses psycopg 3
and a connection pool.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, exc, inspect, select, update
from sqlalchemy import text as sql_text
from sqlalchemy.pool import StaticPool

from gxo.state._sql_crypto import check_store_key
from gxo.state._sql_leases import LeaseMixin
from gxo.state._sql_pauses import PauseMixin
from gxo.state._sql_results import SqlResultStore
from gxo.state._sql_schema import (
    RUNNING,
    SCHEMA_VERSION,
    StateError,
    Statements,
    decode,
    encode,
    fires_table,
    make_engine,
    meta_table,
    metadata,
    now_iso,
    parse_url,
    pauses_table,
    playbooks_table,
    redacted,
    results_table,
    runs_table,
    statuses_table,
)
from gxo.state.crypto import PlainCodec, StateCodec

__all__ = ["PlaybookRecord", "SqlResultStore", "SqlState", "StateError"]

FIRE_KEEP = dt.timedelta(days=1)  # fire claims kept this long (a fire is claimed within seconds)
FIRE_PRUNE_EVERY = 600.0


def _utc_iso(text: str) -> str:
    """A fire time as UTC ISO 8601: one instant has one key whatever offset the caller used."""
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise StateError(f"invalid fire time {text!r}: expected ISO 8601") from None
    if moment.tzinfo is None:
        raise StateError(f"invalid fire time {text!r}: no UTC offset")
    return moment.astimezone(dt.UTC).isoformat()


@dataclass(frozen=True)
class PlaybookRecord:
    """An applied playbook as the daemon persisted it."""

    name: str
    source: str
    path: str
    checksum: str
    variables: dict[str, Any]
    applied_at: str


# The columns write_runs() writes (compiled INSERTs name these, not the id).
_RUN_COLUMNS = [
    "run_id",
    "playbook",
    "workload",
    "status",
    "started_at",
    "ended_at",
    "reason",
    "report",
    "member",
]
_STATUS_COLUMNS = ["playbook", "workload", "data"]


class SqlState(LeaseMixin, PauseMixin):
    """Persistent daemon state over SQLAlchemy Core (see the module docstring)."""

    # The fleet member whose runs start_run records (None outside a fleet).
    member: str | None = None

    def __init__(
        self, url: str, history_limit: int = 100, *, codec: StateCodec | None = None
    ) -> None:
        """``codec``: how values are sealed at rest (``gxo.state.crypto``; default none)."""
        if history_limit < 1:
            raise ValueError(f"history_limit must be at least 1, not {history_limit}")
        self.history_limit = history_limit
        self.url = redacted(parse_url(url))
        self._codec: StateCodec = codec if codec is not None else PlainCodec()
        self._engine, self._sqlite = make_engine(url)
        self._sql = Statements(self._sqlite)
        # _many(): statement name -> (driver SQL, parameter order, constant values), or
        # None where it does not apply.
        self._plans: dict[str, tuple[str, tuple[str, ...], dict[str, Any]] | None] = {}
        # SQLite: one writer at a time per process (see the module docstring).
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self._sqlite else contextlib.nullcontext()
        )
        # In-memory SQLite is one connection shared by all threads: reads must not
        # run inside another thread's open write transaction.
        self._read_lock: contextlib.AbstractContextManager[Any] = (
            self._write_lock
            if isinstance(self._engine.pool, StaticPool)
            else contextlib.nullcontext()
        )
        self._results: dict[str, SqlResultStore] = {}
        self._results_lock = threading.Lock()
        self._batch = threading.local()  # batch(): this thread's open transaction
        self._closed = False
        self._next_fire_prune = 0.0  # monotonic time of the next prune of old fire claims
        try:
            self._create_schema()
            check_store_key(self)  # gxo/state/_sql_crypto.py: the key opens this store
        except BaseException as e:
            self._engine.dispose()
            if isinstance(e, Exception) and not isinstance(e, StateError):
                # A file that is a database but not a gxo one (a bad schema_version...).
                raise StateError(f"state database {self.url} is unreadable: {e}") from e
            raise

    def __repr__(self) -> str:
        return f"SqlState({self.url!r})"

    def __enter__(self) -> SqlState:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return "sqlite" if self._sqlite else "postgresql"

    def close(self) -> None:
        self._closed = True
        self._engine.dispose()

    # -- plumbing -----------------------------------------------------------------

    def _error(self, e: exc.SQLAlchemyError) -> StateError:
        detail = str(getattr(e, "orig", None) or e).strip().splitlines()
        return StateError(f"state database {self.url}: {detail[0] if detail else type(e).__name__}")

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """One transaction: committed on success, rolled back on any error."""
        if self._closed:
            raise StateError(f"state database {self.url} is closed")
        shared = getattr(self._batch, "conn", None)
        if shared is not None:  # inside batch(): its transaction, committed at its end
            try:
                yield shared
            except exc.SQLAlchemyError as e:
                raise self._error(e) from e
            return
        try:
            with self._write_lock, self._engine.begin() as conn:
                yield conn
        except exc.SQLAlchemyError as e:
            raise self._error(e) from e

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Several writes of this thread in ONE transaction: every ``_write()`` inside
        reuses it; committed at the end, all rolled back on an error (the daemon's
        write-behind, gxo/daemon/writer.py). Reads inside do not see its writes."""
        if getattr(self._batch, "conn", None) is not None:  # nested: the outer one commits
            yield
            return
        with self._write() as conn:
            self._batch.conn = conn
            try:
                yield
            finally:
                self._batch.conn = None

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        if self._closed:
            raise StateError(f"state database {self.url} is closed")
        try:
            with self._read_lock, self._engine.connect() as conn:
                yield conn
        except exc.SQLAlchemyError as e:
            raise self._error(e) from e

    def _create_schema(self) -> None:
        with self._write() as conn:
            metadata.create_all(conn)
            version = conn.execute(
                select(meta_table.c.value).where(meta_table.c.key == "schema_version")
            ).scalar()
            if version is None:
                conn.execute(
                    meta_table.insert().values(key="schema_version", value=str(SCHEMA_VERSION))
                )
            elif int(version) > SCHEMA_VERSION:
                raise StateError(
                    f"state database {self.url} has schema version {version}; this gxo "
                    f"understands up to {SCHEMA_VERSION} (upgrade gxo or use another --state)"
                )
            elif int(version) < SCHEMA_VERSION:
                self._migrate(conn, int(version))

    def _migrate(self, conn: Connection, version: int) -> None:
        """Upgrade an older schema in place, in the schema transaction (PostgreSQL's DDL is
        transactional: members starting together wait on the table lock, then skip)."""
        if version < 2:  # 2: gxo_runs.member
            if not self._sqlite:
                conn.execute(
                    sql_text("ALTER TABLE gxo_runs ADD COLUMN IF NOT EXISTS member VARCHAR")
                )
            elif "member" not in {c["name"] for c in inspect(conn).get_columns("gxo_runs")}:
                conn.execute(sql_text("ALTER TABLE gxo_runs ADD COLUMN member VARCHAR"))
        # 3: gxo_pauses, a new table: metadata.create_all made it before this migration.
        conn.execute(
            update(meta_table)
            .where(meta_table.c.key == "schema_version")
            .values(value=str(SCHEMA_VERSION))
        )

    # -- playbooks ----------------------------------------------------------------

    def put_playbook(
        self, name: str, *, source: str, path: str, checksum: str, variables: dict[str, Any]
    ) -> None:
        seal = self._codec.seal
        values = {
            "name": name,
            "source": seal(source, "playbooks", name, column="source"),
            "path": seal(path, "playbooks", name, column="path"),
            "checksum": seal(checksum, "playbooks", name, column="checksum"),
            "variables": seal(encode(variables), "playbooks", name, column="variables"),
            "applied_at": now_iso(),
        }
        with self._write() as conn:
            conn.execute(self._sql.upsert_playbook, values)

    def _playbook(self, row: RowMapping) -> PlaybookRecord:
        name = row["name"]

        def value(column: str) -> Any:
            return self._codec.open(row[column], "playbooks", name, column=column)

        return PlaybookRecord(
            name=name,
            source=value("source"),
            path=value("path"),
            checksum=value("checksum"),
            variables=decode(value("variables")),
            applied_at=row["applied_at"],
        )

    def get_playbook(self, name: str) -> PlaybookRecord | None:
        with self._read() as conn:
            row = (
                conn.execute(select(playbooks_table).where(playbooks_table.c.name == name))
                .mappings()
                .first()
            )
        return None if row is None else self._playbook(row)

    def list_playbooks(self) -> list[PlaybookRecord]:
        with self._read() as conn:
            rows = conn.execute(select(playbooks_table).order_by(playbooks_table.c.name))
            return [self._playbook(row) for row in rows.mappings()]

    def delete_playbook(self, name: str) -> bool:
        """Delete a playbook with its statuses, runs and results; False if it was unknown."""
        with self._write() as conn:
            for table in (statuses_table, runs_table, results_table, pauses_table):
                conn.execute(delete(table).where(table.c.playbook == name))
            found = conn.execute(delete(playbooks_table).where(playbooks_table.c.name == name))
        with self._results_lock:
            store = self._results.pop(name, None)
        if store is not None:
            store._forget()
        return bool(found.rowcount)

    def delete_workload(self, playbook: str, workload: str) -> None:
        """Forget a workload removed from its playbook: its status, runs and pauses."""
        with self._write() as conn:
            for table in (statuses_table, runs_table, pauses_table):
                conn.execute(
                    delete(table).where(table.c.playbook == playbook, table.c.workload == workload)
                )

    # -- statuses -----------------------------------------------------------------

    def set_status(self, playbook: str, workload: str, status: dict[str, Any]) -> None:
        """Store a workload's status dict (status, reason, restarts, last_exit, next_run, updated_at)."""
        data = {**status}
        data.setdefault("updated_at", now_iso())
        text = self._codec.seal(encode(data), "statuses", playbook, workload, column="data")
        values = {"playbook": playbook, "workload": workload, "data": text}
        with self._write() as conn:
            conn.execute(self._sql.upsert_status, values)

    def get_status(self, playbook: str, workload: str) -> dict[str, Any] | None:
        with self._read() as conn:
            text = conn.execute(
                self._sql.get_status, {"b_playbook": playbook, "b_workload": workload}
            ).scalar()
        return decode(self._codec.open(text, "statuses", playbook, workload, column="data"))

    def list_statuses(self, playbook: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        """(playbook, workload, status) of every workload (of one playbook), sorted by name."""
        t = statuses_table
        query = select(t.c.playbook, t.c.workload, t.c.data).order_by(t.c.playbook, t.c.workload)
        if playbook is not None:
            query = query.where(t.c.playbook == playbook)
        with self._read() as conn:
            rows = list(conn.execute(query))
        opened = self._codec.open
        return [(p, w, decode(opened(d, "statuses", p, w, column="data"))) for p, w, d in rows]

    # -- runs ---------------------------------------------------------------------

    def _run(self, row: RowMapping) -> dict[str, Any]:
        """A history row; ``member`` (who ran it) only for the runs of a fleet."""
        run = {
            "run_id": row["run_id"],
            "playbook": row["playbook"],
            "workload": row["workload"],
            "status": row["status"],
            "started_at": row["started_at"],
            "ended_at": row["ended_at"],
            "reason": self._codec.open(row["reason"], "runs", row["run_id"], column="reason"),
            "report": decode(
                self._codec.open(row["report"], "runs", row["run_id"], column="report")
            ),
        }
        if row["member"] is not None:
            run["member"] = row["member"]
        return run

    def _prune(self, conn: Connection, playbook: str, workload: str) -> None:
        """Keep the newest ``history_limit`` runs of a workload (running ones are never pruned)."""
        params = {"b_playbook": playbook, "b_workload": workload, "b_keep": self.history_limit}
        conn.execute(self._sql.prune_runs, params)

    def start_run(
        self, playbook: str, workload: str, run_id: str, started_at: str, member: str | None = None
    ) -> None:
        """Record a run as Running; a run id already recorded is an error. ``member``: the
        fleet member running it (default :attr:`member`, set when the daemon joins a fleet)."""
        values = {
            "run_id": run_id,
            "playbook": playbook,
            "workload": workload,
            "status": RUNNING,
            "started_at": started_at,
            "member": member if member is not None else self.member,
        }
        try:
            with self._write() as conn:
                # No pruning here: finish_run prunes, and a running run is never pruned.
                conn.execute(self._sql.insert_run, values)
        except StateError as e:
            if isinstance(e.__cause__, exc.IntegrityError):
                raise StateError(f"run {run_id!r} is already recorded") from None
            raise

    def finish_run(
        self,
        run_id: str,
        status: str,
        ended_at: str,
        report: dict[str, Any] | None,
        reason: str | None = None,
    ) -> bool:
        """Record a run's end; False when the run is unknown (pruned or its playbook removed)."""
        params = {
            "b_run_id": run_id,
            "b_status": status,
            "b_ended_at": ended_at,
            "b_reason": None
            if reason is None
            else self._codec.seal(reason, "runs", run_id, column="reason"),
            "b_report": self._codec.seal(encode(report), "runs", run_id, column="report"),
        }
        with self._write() as conn:
            row = conn.execute(self._sql.finish_run, params).first()
            if row is None:
                return False
            self._prune(conn, row.playbook, row.workload)
        return True

    def write_runs(
        self,
        starts: list[tuple[Any, ...]],
        finishes: list[tuple[Any, ...]],
        statuses: list[tuple[str, str, dict[str, Any]]],
    ) -> list[bool]:
        """Many ``start_run``, ``finish_run`` and ``set_status`` writes (their arguments,
        in order) in a few multi-row statements — the daemon's write-behind batch
        (gxo/daemon/writer.py): one INSERT of the start rows (a run that also ends in the
        lot is inserted ended), one UPDATE per other end row sent together, one prune per
        workload, the statuses upserted together.

        The same rows as the single-row methods called in order, values sealed alike,
        except the prune: a workload is pruned once, after every start and end of the
        lot, so a run started later in the lot counts toward ``history_limit`` (as it
        would at that workload's next end). Returns ``finish_run``'s answer per end.
        One transaction (inside ``batch()``: that one)."""
        member = self.member
        seal = self._codec.seal
        start_rows = [
            {
                "run_id": run_id,
                "playbook": playbook,
                "workload": workload,
                "status": RUNNING,
                "started_at": started_at,
                "ended_at": None,
                "reason": None,
                "report": None,
                "member": rest[0] if rest and rest[0] is not None else member,
            }
            for playbook, workload, run_id, started_at, *rest in starts
        ]
        # A run that starts and ends within the lot (a short instance: the usual case of
        # a scheduled tick) is inserted already ended: one row written, not an insert,
        # a lookup and an update.
        starting = {row["run_id"]: row for row in start_rows}
        finish_rows = []  # those not merged into their start row
        merged: dict[str, tuple[str, str]] = {}
        answers: list[str] = []  # finish_run's answer per end: the run ids, in order
        for run_id, status, ended_at, report, *rest in finishes:
            reason = rest[0] if rest else None
            sealed_reason = (
                None if reason is None else seal(reason, "runs", run_id, column="reason")
            )
            sealed_report = seal(encode(report), "runs", run_id, column="report")
            answers.append(run_id)
            row = starting.get(run_id)
            if row is not None and row["status"] == RUNNING:
                row.update(
                    status=status, ended_at=ended_at, reason=sealed_reason, report=sealed_report
                )
                merged[run_id] = (row["playbook"], row["workload"])
                continue
            finish_rows.append(
                {
                    "b_run_id": run_id,
                    "b_status": status,
                    "b_ended_at": ended_at,
                    "b_reason": sealed_reason,
                    "b_report": sealed_report,
                }
            )
        status_rows = []
        for playbook, workload, record in statuses:
            data = {**record}
            if "updated_at" not in data:  # (the daemon's records carry it: no clock read)
                data["updated_at"] = now_iso()
            text = seal(encode(data), "statuses", playbook, workload, column="data")
            status_rows.append({"playbook": playbook, "workload": workload, "data": text})
        found: dict[str, tuple[str, str]] = dict(merged)
        many = self._many
        with self._write() as conn:
            if start_rows:
                many(conn, "insert_run", start_rows, _RUN_COLUMNS)
            if finish_rows:
                ids = list(dict.fromkeys(row["b_run_id"] for row in finish_rows))
                for lot in range(0, len(ids), 500):  # bound the IN list
                    rows_found = conn.execute(self._sql.find_runs, {"b_ids": ids[lot : lot + 500]})
                    found.update((r, (p, w)) for r, p, w in rows_found)
                rows = [row for row in finish_rows if row["b_run_id"] in found]
                if rows:
                    many(conn, "finish_runs", rows)
            if found:
                keep = self.history_limit
                ended = dict.fromkeys(found[run_id] for run_id in answers if run_id in found)
                prunes = [{"b_playbook": p, "b_workload": w, "b_keep": keep} for p, w in ended]
                many(conn, "prune_runs", prunes)
            if status_rows:
                many(conn, "upsert_status", status_rows, _STATUS_COLUMNS)
        return [run_id in found for run_id in answers]

    def _many(
        self,
        conn: Connection,
        name: str,
        rows: list[dict[str, Any]],
        columns: list[str] | None = None,
    ) -> None:
        """``conn.execute(self._sql.<name>, rows)``. On SQLite, straight to the driver's
        ``executemany`` with the statement compiled once: SQLAlchemy's per-row parameter
        processing cost more than SQLite's work (≈ 14 µs a row; the write-behind sends
        thousands a second). Only for statements whose values need no bind processing
        (text and integers); elsewhere, and on PostgreSQL (whose multi-row INSERT
        SQLAlchemy batches itself), the usual path."""
        plan = self._plans.get(name) if self._sqlite else None
        if plan is None and self._sqlite and name not in self._plans:
            compiled = getattr(self._sql, name).compile(
                dialect=self._engine.dialect, column_keys=columns
            )
            order = compiled.positiontup
            processed = getattr(compiled, "_bind_processors", None)
            if order is not None and len(order) > 1 and not processed:
                plan = (compiled.string, tuple(order), dict(compiled.params))
            self._plans[name] = plan
        if plan is None or not rows:
            conn.execute(getattr(self._sql, name), rows)
            return
        sql, order, defaults = plan
        values = itemgetter(*order)  # rows of one call have the same keys
        if rows[0].keys() >= set(order):
            params = [values(row) for row in rows]
        else:  # a statement's own constants (prune: the Running status, LIMIT 1)
            params = [values({**defaults, **row}) for row in rows]
        conn.exec_driver_sql(sql, params)

    def list_runs(self, playbook: str, workload: str, limit: int = 50) -> list[dict[str, Any]]:
        """A workload's runs, newest first."""
        t = runs_table
        query = (
            select(t)
            .where(t.c.playbook == playbook, t.c.workload == workload)
            .order_by(t.c.id.desc())
            .limit(max(limit, 0))
        )
        with self._read() as conn:
            return [self._run(row) for row in conn.execute(query).mappings()]

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = (
                conn.execute(select(runs_table).where(runs_table.c.run_id == run_id))
                .mappings()
                .first()
            )
        return None if row is None else self._run(row)

    def fail_unfinished_runs(
        self,
        reason: str = "daemon restarted",
        member: str | None = None,
        spare: frozenset[str] = frozenset(),
    ) -> list[dict[str, Any]]:
        """Mark every run still Running as Failed (called on start after a crash); returns them.
        ``member``: only that fleet member's runs (a fleet member's restart must not fail
        the runs of the live others). ``spare``: engine run ids whose rows
        (``<run id>.<workload>``) stay Running (a paused run the daemon re-runs)."""
        t = runs_table
        ended = now_iso()
        mine = t.c.status == RUNNING
        if member is not None:
            mine = mine & (t.c.member == member)
        with self._write() as conn:
            rows = conn.execute(select(t).where(mine).order_by(t.c.id)).mappings()
            failed = [
                self._run(row)
                for row in rows
                if row["run_id"].rpartition(".")[0] not in spare
                and row["run_id"].partition(".")[0] not in spare
            ]
            for run in failed:  # one row at a time: each reason is sealed for its own row
                sealed = self._codec.seal(reason, "runs", run["run_id"], column="reason")
                conn.execute(
                    update(t)
                    .where(t.c.run_id == run["run_id"])
                    .values(status="Failed", ended_at=ended, reason=sealed)
                )
        for run in failed:
            run.update(status="Failed", ended_at=ended, reason=reason)
        return failed

    # -- scheduled fires (fleet) --------------------------------------------------

    def claim_fire(self, playbook: str, workload: str, fire_time_iso: str, member: str) -> bool:
        """Claim one fire of a scheduled workload for ``member``; False when another member
        (or an earlier call) already did. The unique (playbook, workload, fire_time) row is
        what makes a fire run once fleet-wide. Claims older than a day are pruned here,
        at most every :data:`FIRE_PRUNE_EVERY` seconds."""
        fire = _utc_iso(fire_time_iso)
        values = {
            "playbook": playbook,
            "workload": workload,
            "fire_time": fire,
            "member": member,
            "claimed_at": now_iso(),
        }
        now = time.monotonic()
        with self._write() as conn:
            claimed = conn.execute(self._sql.claim_fire, values).first() is not None
            if now >= self._next_fire_prune:
                self._next_fire_prune = now + FIRE_PRUNE_EVERY
                self._prune_fires(conn)
        return claimed

    def prune_fires(self, keep: dt.timedelta = FIRE_KEEP) -> int:
        """Delete fire claims older than ``keep``; the number deleted."""
        with self._write() as conn:
            return self._prune_fires(conn, keep)

    def _prune_fires(self, conn: Connection, keep: dt.timedelta = FIRE_KEEP) -> int:
        before = (dt.datetime.now(dt.UTC) - keep).isoformat()
        result = conn.execute(self._sql.prune_fires, {"b_before": before})
        return max(result.rowcount, 0)

    def fire_member(self, playbook: str, workload: str, fire_time_iso: str) -> str | None:
        """The member that claimed a fire, or None."""
        t = fires_table
        query = select(t.c.member).where(
            t.c.playbook == playbook,
            t.c.workload == workload,
            t.c.fire_time == _utc_iso(fire_time_iso),
        )
        with self._read() as conn:
            return conn.execute(query).scalar()

    # -- registered results -------------------------------------------------------

    def results(self, playbook: str) -> SqlResultStore:
        """The playbook's registered results as a ``Store`` (one shared object per playbook)."""
        with self._results_lock:
            store = self._results.get(playbook)
            if store is None:
                store = self._results[playbook] = SqlResultStore(self, playbook)
            return store

    def _load_results(self, playbook: str) -> dict[str, Any]:
        t = results_table
        with self._read() as conn:
            rows = conn.execute(select(t.c.key, t.c.value).where(t.c.playbook == playbook))
            opened = self._codec.open
            return {
                key: decode(opened(value, "results", playbook, key, column="value"))
                for key, value in rows
            }

    def _put_result(self, playbook: str, key: str, value: str) -> None:
        values = {"playbook": playbook, "key": key, "value": value}
        with self._write() as conn:
            conn.execute(self._sql.upsert_result, values)

    def _delete_results(self, playbook: str, key: str | None) -> None:
        t = results_table
        query = delete(t).where(t.c.playbook == playbook)
        if key is not None:
            query = query.where(t.c.key == key)
        with self._write() as conn:
            conn.execute(query)

    # -- runs of a dead daemon or fleet member ------------------------------------

    def fail_status_of_run(self, playbook: str, workload: str, run_id: str, reason: str) -> bool:
        """The workload's status becomes ``Failed`` with ``reason`` if it still shows the run
        ``run_id`` (a history row id, ``<instance>.<workload>``) as Running; True if it did.
        Read and write in one transaction, the row locked on PostgreSQL: a member that took
        the workload over meanwhile (a newer status) is never overwritten."""
        s = statuses_table
        query = select(s.c.data).where(s.c.playbook == playbook, s.c.workload == workload)
        with self._write() as conn:
            sealed = conn.execute(query.with_for_update()).scalar()
            data = decode(self._codec.open(sealed, "statuses", playbook, workload, column="data"))
            last = str((data or {}).get("last_run_id") or "")
            if not data or data.get("status") != RUNNING or not last:
                return False
            if run_id != last and not run_id.startswith(last + "."):
                return False
            data.update(status="Failed", reason=reason, next_run=None, updated_at=now_iso())
            text = self._codec.seal(encode(data), "statuses", playbook, workload, column="data")
            values = {"playbook": playbook, "workload": workload, "data": text}
            conn.execute(self._sql.upsert_status, values)
        return True
