"""Leases in the SQL state store: one member of a fleet owns a named job at a time.

A lease row (name, holder, expires_at) is taken with one ``INSERT ... ON CONFLICT DO
UPDATE ... WHERE`` statement that only overwrites an expired row or the caller's own,
so two members can never both hold it. Expiry is computed and compared with the
DATABASE clock (``now()``), never a member's: members with skewed clocks still agree.
``expires_at`` is epoch seconds (a float) so the same SQL runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Column, Float, String, Table, text

from gxo.state._sql_schema import metadata

__all__ = ["DIED", "MEMBER_LEASE", "LeaseMixin", "leases_table", "member_lease"]

# A fleet member's liveness lease is named ``member:ID`` (renewed by its heartbeat); the
# runs it leaves Running when it dies are failed with reason ``fleet member ID died``.
MEMBER_LEASE = "member:"
DIED = "died"


def member_lease(member: str) -> str:
    return MEMBER_LEASE + member


leases_table = Table(
    "gxo_leases",
    metadata,
    Column("name", String, primary_key=True),
    Column("holder", String, nullable=False),
    Column("expires_at", Float, nullable=False),
)

_NOW = {
    "postgresql": "extract(epoch from clock_timestamp())",
    # julianday('now') is the database's clock too (the server is the file's process).
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}


def _statements(backend: str) -> dict[str, Any]:
    now = _NOW[backend]
    return {
        "acquire": text(
            "INSERT INTO gxo_leases (name, holder, expires_at) "
            f"VALUES (:name, :holder, {now} + :ttl) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
            "expires_at = excluded.expires_at "
            f"WHERE gxo_leases.expires_at < {now} OR gxo_leases.holder = excluded.holder "
            "RETURNING holder"
        ),
        "renew": text(
            f"UPDATE gxo_leases SET expires_at = {now} + :ttl "
            "WHERE name = :name AND holder = :holder RETURNING holder"
        ),
        "release": text("DELETE FROM gxo_leases WHERE name = :name AND holder = :holder"),
        "holder": text(f"SELECT holder FROM gxo_leases WHERE name = :name AND expires_at >= {now}"),
        # Runs of fleet members whose liveness lease (``member:ID``) is expired or gone,
        # locked: two members sweeping at once fail each run once (PostgreSQL re-checks
        # the WHERE of a row another transaction updated meanwhile; SQLite has one writer).
        "dead_runs": text(
            "SELECT id, run_id, playbook, workload, member FROM gxo_runs "
            "WHERE status = 'Running' AND member IS NOT NULL AND member <> :me "
            "AND NOT EXISTS (SELECT 1 FROM gxo_leases WHERE "
            f"gxo_leases.name = '{MEMBER_LEASE}' || gxo_runs.member AND expires_at >= {now}) "
            "ORDER BY id" + (" FOR UPDATE" if backend == "postgresql" else "")
        ),
        # Both conditional on the dead member still owning the row: of two members
        # sweeping at once, the one whose UPDATE lands first decides, the other's matches
        # nothing (the database decides; no protocol of our own).
        "fail_run": text(
            "UPDATE gxo_runs SET status = 'Failed', ended_at = :ended, reason = :reason "
            "WHERE id = :id AND status = 'Running' AND member = :dead RETURNING id"
        ),
        "take_run": text(
            "UPDATE gxo_runs SET member = :me "
            "WHERE id = :id AND status = 'Running' AND member = :dead RETURNING id"
        ),
        "stored": text("SELECT 1 FROM gxo_playbooks WHERE name = :name"),
        "forget": text(
            f"DELETE FROM gxo_leases WHERE name LIKE '{MEMBER_LEASE}%' AND expires_at < {now}"
        ),
    }


class LeaseMixin:
    """``SqlState``'s lease methods (they use its ``_write``/``_read`` transactions)."""

    _lease_sql: dict[str, Any] | None = None

    def _lease(self, which: str) -> Any:
        if self._lease_sql is None:
            self._lease_sql = _statements(self.backend)  # type: ignore[attr-defined]
        return self._lease_sql[which]

    def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take ``name`` for ``ttl`` seconds if it is free, expired or already ours."""
        params = {"name": name, "holder": holder, "ttl": float(ttl)}
        with self._write() as conn:  # type: ignore[attr-defined]
            return conn.execute(self._lease("acquire"), params).first() is not None

    def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Extend our lease by ``ttl`` from now; False when another member holds it now."""
        params = {"name": name, "holder": holder, "ttl": float(ttl)}
        with self._write() as conn:  # type: ignore[attr-defined]
            return conn.execute(self._lease("renew"), params).first() is not None

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up (only ours): another member may take it at once."""
        with self._write() as conn:  # type: ignore[attr-defined]
            conn.execute(self._lease("release"), {"name": name, "holder": holder})

    def lease_holder(self, name: str) -> str | None:
        """Who holds ``name`` now (None when free or expired)."""
        with self._read() as conn:  # type: ignore[attr-defined]
            return conn.execute(self._lease("holder"), {"name": name}).scalar()

    def fail_runs_of_dead_members(self, me: str) -> list[dict[str, Any]]:
        """Every run left ``Running`` by a fleet member whose liveness lease expired becomes
        ``Failed``, paused or not (:meth:`sweep_dead_members` without taking over)."""
        return self.sweep_dead_members(me, take_over=False)[0]

    def sweep_dead_members(
        self, me: str, *, take_over: bool = True, applied: Collection[str] = ()
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The runs left ``Running`` by fleet members whose liveness lease expired:
        (failed, taken over).

        A run whose paused workload (``control:wait_for_signal``, a row in ``gxo_pauses``)
        is still ``Running`` is taken over by ``me`` (its rows' ``member`` becomes ``me``,
        by a conditional UPDATE from the dead member's id: exactly one sweeper wins),
        unless its playbook is stored but not applied here yet (``applied``: left for a
        later sweep, once the playbook sync took it up). Every other run becomes
        ``Failed`` with reason ``fleet member ID died``. Taken over: one entry per engine
        run (run_id, playbook, member (the dead one), pauses). Failed: one per row
        (run_id, playbook, workload, member, reason). ``me`` (alive: it is asking) is
        never swept. Expired member leases are deleted in the same transaction (a
        missing one counts as dead)."""
        from gxo.state._sql_schema import now_iso

        ended = now_iso()
        failed: list[dict[str, Any]] = []
        taken: dict[str, dict[str, Any]] = {}
        with self._write() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(self._lease("dead_runs"), {"me": me}).mappings().all()
            paused = self._paused_runs(conn, rows) if take_over and rows else {}
            waiting = {
                run
                for run, (playbook, _) in paused.items()
                if playbook not in applied
                and conn.execute(self._lease("stored"), {"name": playbook}).first() is not None
            }
            for row in rows:
                run = _engine_run(row["run_id"], row["workload"])
                params = {"id": row["id"], "dead": row["member"]}
                if run in waiting:
                    continue
                if run in paused:
                    if conn.execute(self._lease("take_run"), {**params, "me": me}).first():
                        entry = taken.setdefault(
                            run,
                            {
                                "run_id": run,
                                "playbook": row["playbook"],
                                "member": row["member"],
                                "pauses": paused[run][1],
                            },
                        )
                        entry.setdefault("workloads", []).append(row["workload"])
                    continue
                reason = f"fleet member {row['member']} {DIED}"
                params["ended"] = ended
                params["reason"] = self._seal_reason(row["run_id"], reason)
                if conn.execute(self._lease("fail_run"), params).first():
                    failed.append(
                        {
                            "run_id": row["run_id"],
                            "playbook": row["playbook"],
                            "workload": row["workload"],
                            "member": row["member"],
                            "reason": reason,
                        }
                    )
            conn.execute(self._lease("forget"))
        return failed, list(taken.values())

    def _paused_runs(
        self, conn: Any, rows: Sequence[Any]
    ) -> dict[str, tuple[str, list[dict[str, Any]]]]:
        """Of the engine runs of ``rows`` (Running), those whose paused workload is among
        them: engine run id -> (playbook, its pause rows). The pause may be open or
        decided while its member was dying (the decision not taken up yet)."""
        from sqlalchemy import select

        from gxo.state._sql_schema import pauses_table as t

        running = {(_engine_run(r["run_id"], r["workload"]), r["workload"]) for r in rows}
        runs = sorted({run for run, _ in running})
        found: dict[str, tuple[str, list[dict[str, Any]]]] = {}
        query = select(t).where(t.c.run_id.in_(runs)).order_by(t.c.since, t.c.id)
        for pause in conn.execute(query).mappings():
            if (pause["run_id"], pause["workload"]) in running:
                entry = found.setdefault(pause["run_id"], (pause["playbook"], []))
                entry[1].append(self._pause(pause))  # type: ignore[attr-defined]
        return found

    def _seal_reason(self, run_id: str, reason: str) -> str:
        """A run's reason as the store keeps it (sealed when the store is encrypted)."""
        codec = getattr(self, "_codec", None)
        return reason if codec is None else codec.seal(reason, "runs", run_id, column="reason")


def _engine_run(row_run_id: str, workload: str) -> str:
    """The engine run id of a history row (``<run id>.<workload>``)."""
    suffix = "." + workload
    return row_run_id[: -len(suffix)] if row_run_id.endswith(suffix) else row_run_id
