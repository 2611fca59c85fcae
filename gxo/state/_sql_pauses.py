"""``SqlState``'s paused workloads (``gxo_pauses``, schema version 3).

A pause is created ``open`` with the SHA-256 of its single-use token; it is decided by
ONE conditional ``UPDATE ... WHERE id = ? AND state = 'open'``: resume, reject, the
timeout and a cancelled run all race through it and the database lets exactly one
win, on SQLite as on PostgreSQL, in one daemon as across a fleet. The loser reads the
row back to say what happened. Prompt, schema, payload and reason are sealed per cell
like every value of the store (``gxo.state._sql_crypto.CELLS``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import RowMapping, select, update

from gxo.state._sql_schema import decode, encode, pauses_table

__all__ = ["OPEN", "PauseMixin"]

OPEN = "open"
DECIDED = frozenset({"resumed", "rejected", "expired", "cancelled"})


class PauseMixin:
    """Pause rows (they use ``SqlState``'s ``_write``/``_read`` and its codec)."""

    def _pause(self, row: RowMapping) -> dict[str, Any]:
        codec = self._codec  # type: ignore[attr-defined]
        pid = row["id"]

        def opened(column: str) -> Any:
            return codec.open(row[column], "pauses", pid, column=column)

        schema, payload = opened("schema"), opened("payload")
        return {
            "id": pid,
            "playbook": row["playbook"],
            "workload": row["workload"],
            "run_id": row["run_id"],
            "token_hash": row["token_hash"],
            "prompt": opened("prompt") or "",
            "schema": decode(schema),
            "since": row["since"],
            "expires_at": row["expires_at"],
            "approvers": decode(row["approvers"]) or [],
            "state": row["state"],
            "decided_by": row["decided_by"],
            "decided_at": row["decided_at"],
            "payload": decode(payload),
            "reason": opened("reason"),
        }

    def create_pause(
        self,
        pause_id: str,
        *,
        playbook: str,
        workload: str,
        run_id: str,
        token_hash: str,
        prompt: str,
        schema: Any,
        since: str,
        expires_at: str | None,
        approvers: list[str],
    ) -> None:
        seal = self._codec.seal  # type: ignore[attr-defined]
        values = {
            "id": pause_id,
            "playbook": playbook,
            "workload": workload,
            "run_id": run_id,
            "token_hash": token_hash,
            "prompt": seal(prompt, "pauses", pause_id, column="prompt"),
            "schema": None
            if schema is None
            else seal(encode(schema), "pauses", pause_id, column="schema"),
            "since": since,
            "expires_at": expires_at,
            "approvers": encode(list(approvers)),
            "state": OPEN,
        }
        with self._write() as conn:  # type: ignore[attr-defined]
            conn.execute(pauses_table.insert().values(**values))

    def get_pause(self, pause_id: str) -> dict[str, Any] | None:
        t = pauses_table
        with self._read() as conn:  # type: ignore[attr-defined]
            row = conn.execute(select(t).where(t.c.id == pause_id)).mappings().first()
        return None if row is None else self._pause(row)

    def pause_of_run(self, playbook: str, workload: str, run_id: str) -> dict[str, Any] | None:
        """The newest pause of ``workload`` in run ``run_id`` (any state), or None."""
        t = pauses_table
        query = (
            select(t)
            .where(t.c.playbook == playbook, t.c.workload == workload, t.c.run_id == run_id)
            .order_by(t.c.since.desc())
            .limit(1)
        )
        with self._read() as conn:  # type: ignore[attr-defined]
            row = conn.execute(query).mappings().first()
        return None if row is None else self._pause(row)

    def list_pauses(self, state: str | None = OPEN) -> list[dict[str, Any]]:
        """Pauses in ``state`` (None: all), oldest first. Each names the fleet ``member``
        running its workload now (None outside a fleet or once its run ended): a dead
        member's paused run taken over by another (gxo/daemon/fleet.py) names the new one."""
        from gxo.state._sql_schema import runs_table as r

        t = pauses_table
        query = select(t).order_by(t.c.since, t.c.id)
        if state is not None:
            query = query.where(t.c.state == state)
        with self._read() as conn:  # type: ignore[attr-defined]
            pauses = [self._pause(row) for row in conn.execute(query).mappings()]
            rows = [f"{p['run_id']}.{p['workload']}" for p in pauses]
            members = {}
            if rows:
                running = select(r.c.run_id, r.c.member).where(
                    r.c.run_id.in_(rows), r.c.status == "Running"
                )
                members = {row.run_id: row.member for row in conn.execute(running)}
        for p in pauses:
            p["member"] = members.get(f"{p['run_id']}.{p['workload']}")
        return pauses

    def decide_pause(
        self,
        pause_id: str,
        state: str,
        *,
        by: str | None,
        at: str,
        payload: Any = None,
        reason: str | None = None,
    ) -> bool:
        """Close an open pause as ``state``; True when this call decided it, False when
        it was no longer open (someone else decided first)."""
        if state not in DECIDED:
            raise ValueError(f"not a decision: {state!r}")
        seal = self._codec.seal  # type: ignore[attr-defined]
        t = pauses_table
        stmt = (
            update(t)
            .where(t.c.id == pause_id, t.c.state == OPEN)
            .values(
                state=state,
                decided_by=by,
                decided_at=at,
                payload=None
                if payload is None
                else seal(encode(payload), "pauses", pause_id, column="payload"),
                reason=None
                if reason is None
                else seal(reason, "pauses", pause_id, column="reason"),
            )
            .returning(t.c.id)
        )
        with self._write() as conn:  # type: ignore[attr-defined]
            return conn.execute(stmt).first() is not None

    def runs_of(self, run_id: str) -> list[dict[str, Any]]:
        """The history rows of one engine run (``<run_id>.<workload>``), oldest first."""
        from gxo.state._sql_schema import runs_table

        t = runs_table
        query = select(t).where(t.c.run_id.startswith(run_id + ".", autoescape=True))
        with self._read() as conn:  # type: ignore[attr-defined]
            return [
                self._run(row)  # type: ignore[attr-defined]
                for row in conn.execute(query.order_by(t.c.id)).mappings()
            ]

    def forget_runs(self, run_ids: list[str]) -> None:
        """Delete history rows (a paused run re-run under the same ids after a restart)."""
        from sqlalchemy import delete

        from gxo.state._sql_schema import runs_table

        if not run_ids:
            return
        with self._write() as conn:  # type: ignore[attr-defined]
            conn.execute(delete(runs_table).where(runs_table.c.run_id.in_(run_ids)))
