"""Paused workloads under the daemon: persisted pauses, single-use tokens, one decision.

``control:wait_for_signal`` asks its run's :class:`DaemonBroker` (``Engine(signals=)``,
one per instance). ``wait``:

1. looks for the pause of (playbook, workload, run id) in the state — a daemon that
   restarted while the workload was paused re-runs the instance under the same run id
   (gxo/daemon/restore.py), and its ``wait`` takes up the same open row and token; a
   pause decided while the daemon was away is answered at once;
2. otherwise persists a new ``open`` row with the SHA-256 of a fresh token
   (``<token id>.<192 random bits>``, :mod:`secrets`), and only then
3. announces it: the workload becomes ``Paused`` (its status event carries the token)
   and a ``workload_paused`` event is published. The gRPC layer sends the ``token``
   field only to subscribers allowed to resume that pause (gxo/daemon/server.py);
4. waits for the decision. Resume, reject, the timeout and a stopped run all go
   through ONE conditional UPDATE (``SqlState.decide_pause``): the database lets one
   win and the others are told what happened ("already resumed by alice at ...").
   A decision made by another fleet member is seen by polling the row.

:class:`PauseBook` (``daemon.pauses``) is what the RPCs call: ``list``, ``resume``,
``reject``. A payload that fails the schema is refused and the workload stays paused;
an unknown, reused or expired token is refused with a clear error.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gxo.engine.signals import (
    Announce,
    InvalidPayload,
    PauseClosed,
    PauseRequest,
    Rejected,
    Resolution,
    check_payload,
)

if TYPE_CHECKING:
    from gxo.daemon.core import Daemon

__all__ = ["Caller", "DaemonBroker", "PauseBook", "hash_token", "new_token"]

log = logging.getLogger("gxo.daemon")

POLL_SECONDS = 2.0  # how often a waiting pause looks for a decision made elsewhere (fleet)
TOKEN_BYTES = 24  # 192 random bits


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _epoch(iso: str | None) -> float | None:
    return None if not iso else datetime.fromisoformat(iso).timestamp()


def new_token() -> tuple[str, str]:
    """(token id, token): the id is public (``gxo ctl paused``); the token is the id, a
    dot and 192 random bits, shown once."""
    pid = "p" + secrets.token_hex(8)
    return pid, f"{pid}.{secrets.token_urlsafe(TOKEN_BYTES)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def closed_message(row: dict[str, Any]) -> str:
    """What happened to a pause that is no longer open, in words."""
    where = f"workload '{row['playbook']}/{row['workload']}' (run {row['run_id']})"
    state, by, at = row["state"], row.get("decided_by"), row.get("decided_at")
    if state == "resumed":
        return f"{where} was already resumed by {by} at {at}"
    if state == "rejected":
        return f"{where} was already rejected by {by} at {at}: {row.get('reason') or ''}"
    if state == "expired":
        return f"{where} timed out at {at}: no answer before its timeout"
    return f"{where} is no longer paused: its run ended at {at} ({row.get('reason') or state})"


@dataclass(frozen=True)
class Caller:
    """Who answers a pause: the identity's name and what ``approvers`` may name it by
    (its name, certificate CN, its RBAC role names)."""

    name: str
    aliases: frozenset[str] = field(default_factory=frozenset)

    def approves(self, approvers: list[str]) -> bool:
        return not approvers or bool(self.aliases & set(approvers)) or self.name in approvers


class Refused(Exception):
    """A resume or reject refused: ``code`` is a gRPC status code name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Key = tuple[str, str, str]  # (playbook, workload, run id)


class PauseBook:
    """The daemon's pauses: waiters of this process and the RPCs' decisions."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.waiters: dict[Key, asyncio.Future[dict[str, Any]]] = {}
        self.open: dict[Key, dict[str, Any]] = {}  # announced here, not decided yet
        self.stopping = False  # shutdown: a cancelled wait leaves its pause open

    def broker(self, playbook: str) -> DaemonBroker:
        return DaemonBroker(self, playbook)

    def paused(self, playbook: str, workload: str) -> dict[str, Any] | None:
        """The open pause of a workload waiting in this process (its status shows it)."""
        for (p, w, _), row in self.open.items():
            if (p, w) == (playbook, workload):
                return row
        return None

    async def _db(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def list(self) -> list[dict[str, Any]]:
        return list(await self._db(self.daemon.state.list_pauses))

    # -- finding a pause ------------------------------------------------------------------

    async def find(self, *, token: str = "", run_id: str = "", workload: str = "") -> dict:
        """The pause a request names: by token (checked in constant time), or by run id
        and workload (``WORKLOAD`` or ``PLAYBOOK/WORKLOAD``; run id "" = its only open
        pause)."""
        state = self.daemon.state
        if token:
            pid, dot, _ = token.partition(".")
            row = await self._db(state.get_pause, pid) if dot and pid else None
            # compare_digest even when the id is unknown: no timing difference to learn from
            stored = row["token_hash"] if row else hash_token("")
            if not hmac.compare_digest(hash_token(token), stored) or row is None:
                raise Refused(
                    "NOT_FOUND", "unknown resume token (check it, or use --run/--workload)"
                )
            return dict(row)
        if not workload:
            raise Refused("INVALID_ARGUMENT", "give a token, or a run id and a workload")
        playbook, _, name = workload.rpartition("/")
        if run_id.endswith("." + name):  # a history row id (`gxo ctl runs`): <run>.<workload>
            run_id = run_id[: -len(name) - 1]
        rows = await self._db(state.list_pauses, None)
        matches = [
            r
            for r in rows
            if r["workload"] == name
            and (not playbook or r["playbook"] == playbook)
            and (not run_id or r["run_id"] == run_id)
        ]
        opened = [r for r in matches if r["state"] == "open"]
        if len(opened) > 1:
            choices = ", ".join(
                f"{r['playbook']}/{r['workload']} run {r['run_id']}" for r in opened
            )
            raise Refused("FAILED_PRECONDITION", f"several pauses match: {choices}; give --run")
        if opened:
            return dict(opened[0])
        if matches:  # decided already: say how
            return dict(matches[-1])
        what = f"workload '{workload}'" + (f" in run {run_id}" if run_id else "")
        raise Refused("NOT_FOUND", f"{what} is not paused")

    def _check_open(self, row: dict[str, Any]) -> None:
        if row["state"] != "open":
            raise Refused("FAILED_PRECONDITION", closed_message(row))

    async def _expire_if_due(self, row: dict[str, Any]) -> None:
        """A pause past its time that its waiter has not closed yet (a busy loop, a daemon
        that was down): the timeout wins now, through the same decision."""
        expires = _epoch(row.get("expires_at"))
        if expires is not None and time.time() >= expires:
            await self.decide(row, "expired", by=None)
            fresh = await self._db(self.daemon.state.get_pause, row["id"])
            raise Refused("FAILED_PRECONDITION", closed_message(fresh or row))

    # -- decisions --------------------------------------------------------------------------

    async def decide(
        self,
        row: dict[str, Any],
        state: str,
        *,
        by: str | None,
        payload: Any = None,
        reason: str | None = None,
    ) -> dict[str, Any] | None:
        """The one conditional UPDATE; the decided row, or None when another decision won."""
        at = now_iso()
        won = await asyncio.shield(
            self._db(
                self.daemon.state.decide_pause,
                row["id"],
                state,
                by=by,
                at=at,
                payload=payload,
                reason=reason,
            )
        )
        if not won:
            return None
        decided = {
            **row,
            "state": state,
            "decided_by": by,
            "decided_at": at,
            "payload": payload,
            "reason": reason,
        }
        key = (row["playbook"], row["workload"], row["run_id"])
        waiter = self.waiters.get(key)
        if waiter is not None and not waiter.done():
            waiter.set_result(decided)
        return decided

    async def _checked(self, caller: Caller, row: dict[str, Any]) -> None:
        if not caller.approves(list(row.get("approvers") or [])):
            raise Refused(
                "PERMISSION_DENIED",
                f"{caller.name} is not an approver of '{row['playbook']}/{row['workload']}' "
                f"(approvers: {', '.join(row['approvers'])})",
            )
        self._check_open(row)
        await self._ended_if_gone(row)
        await self._expire_if_due(row)

    async def _ended_if_gone(self, row: dict[str, Any]) -> None:
        """A pause whose run is over (a fleet member died and the sweep failed its run):
        closed now, so a resume never "succeeds" with nothing left to resume."""
        state = self.daemon.state
        # Read after the daemon's queued history writes (gxo/daemon/writer.py).
        run = await self.daemon._db(state.get_run, f"{row['run_id']}.{row['workload']}")
        if run is None or run["status"] == "Running":
            return
        reason = f"{run['status']}: {run.get('reason') or 'no reason'}"
        await self.decide(row, "cancelled", by=None, reason=reason)
        await self._lost(row)

    async def resume(self, caller: Caller, row: dict[str, Any], payload: Any) -> dict[str, Any]:
        await self._checked(caller, row)
        try:
            check_payload(row.get("schema"), payload)
        except InvalidPayload as exc:
            raise Refused(
                "INVALID_ARGUMENT", f"{exc} ('{row['playbook']}/{row['workload']}' is still paused)"
            ) from None
        decided = await self.decide(row, "resumed", by=caller.name, payload=payload)
        if decided is None:
            await self._lost(row)
        assert decided is not None
        log.info(
            "%s/%s (run %s) resumed by %s",
            row["playbook"],
            row["workload"],
            row["run_id"],
            caller.name,
        )
        return decided

    async def reject(self, caller: Caller, row: dict[str, Any], reason: str) -> dict[str, Any]:
        await self._checked(caller, row)
        decided = await self.decide(row, "rejected", by=caller.name, reason=reason or "rejected")
        if decided is None:
            await self._lost(row)
        assert decided is not None
        log.info(
            "%s/%s (run %s) rejected by %s",
            row["playbook"],
            row["workload"],
            row["run_id"],
            caller.name,
        )
        return decided

    async def _lost(self, row: dict[str, Any]) -> None:
        fresh = await self._db(self.daemon.state.get_pause, row["id"])
        raise Refused("FAILED_PRECONDITION", closed_message(fresh or row))

    def redacted(self, run_id: str, payload: Any) -> Any:
        """The payload as the audit shows it: values the run knows as secret() redacted."""
        instance = self.daemon.instances.get(run_id)
        if instance is None:
            return payload
        return instance.engine.secrets.redact(payload)


class DaemonBroker:
    """The :class:`gxo.engine.signals.SignalBroker` of one daemon instance."""

    def __init__(self, book: PauseBook, playbook: str) -> None:
        self.book = book
        self.playbook = playbook

    async def wait(self, request: PauseRequest, announce: Announce) -> Resolution:
        book = self.book
        state = book.daemon.state
        key = (self.playbook, request.workload, request.run_id)
        loop = asyncio.get_running_loop()
        if key in book.waiters:
            raise PauseClosed(f"workload {request.workload!r} is already paused")
        # Registered before the row is read: a decision landing meanwhile finds it.
        waiter: asyncio.Future[dict[str, Any]] = loop.create_future()
        book.waiters[key] = waiter
        try:
            row = await book._db(state.pause_of_run, *key)
            token = ""
            if row is None:
                pid, token = new_token()
                since = time.time()
                expires = None if request.timeout is None else since + request.timeout
                await book._db(
                    state.create_pause,
                    pid,
                    playbook=self.playbook,
                    workload=request.workload,
                    run_id=request.run_id,
                    token_hash=hash_token(token),
                    # What `gxo ctl paused` shows: secret() values of the run redacted.
                    prompt=book.redacted(request.run_id, request.prompt),
                    schema=None if request.schema is None else dict(request.schema),
                    since=_iso(since),
                    expires_at=None if expires is None else _iso(expires),
                    approvers=list(request.approvers),
                )
                row = await book._db(state.get_pause, pid)
                assert row is not None
            elif row["state"] != "open":  # decided while this daemon was away
                return _outcome(row)
            book.open[key] = row
            self._announce(row, token, announce)
            decided = await self._wait(row, waiter)
        except asyncio.CancelledError:
            row = book.open.get(key)
            if row is not None and not book.stopping:  # ctl stop, a new version, removal
                await book.decide(row, "cancelled", by=None, reason="the run was stopped")
            raise
        finally:
            book.waiters.pop(key, None)
            book.open.pop(key, None)
        return _outcome(decided)

    def _announce(self, row: dict[str, Any], token: str, announce: Announce) -> None:
        data: dict[str, Any] = {
            "token_id": row["id"],
            "since": row["since"],
            "approvers": list(row["approvers"]),
        }
        if token:  # issued now: delivered once, to those allowed to resume
            data["token"] = token
        announce(**data)
        event = {
            "prompt": row["prompt"],
            "payload_schema": row["schema"],
            "expires_at": row["expires_at"],
            **{k: v for k, v in data.items() if k != "token"},
        }
        event = self.book.redacted(row["run_id"], event)  # the bus's own redaction, as events
        if token:
            # Not redacted: a paused() hook of the run made the token a secret of the run
            # (redacted everywhere else), but this event is where it is delivered.
            event["token"] = token
        self.book.daemon.publish_raw(
            "workload_paused", self.playbook, row["workload"], row["run_id"], event
        )

    async def _wait(
        self, row: dict[str, Any], waiter: asyncio.Future[dict[str, Any]]
    ) -> dict[str, Any]:
        book = self.book
        expires = _epoch(row.get("expires_at"))
        while True:
            remaining = None if expires is None else expires - time.time()
            if remaining is not None and remaining <= 0:
                decided = await book.decide(row, "expired", by=None)
                if decided is not None:
                    return decided
                if waiter.done():  # decided here just before the timeout
                    return waiter.result()
                fresh = await book._db(book.daemon.state.get_pause, row["id"])
                return fresh or row
            step = POLL_SECONDS if remaining is None else min(POLL_SECONDS, remaining)
            done, _ = await asyncio.wait([waiter], timeout=step)
            if done:
                return waiter.result()
            # Another fleet member (or an older daemon) may have decided it.
            fresh = await book._db(book.daemon.state.get_pause, row["id"])
            if fresh is not None and fresh["state"] != "open":
                return fresh


def _outcome(row: dict[str, Any]) -> Resolution:
    state = row["state"]
    if state == "resumed":
        return Resolution(
            row.get("payload"), resumed_by=row.get("decided_by"), resumed_at=row["decided_at"]
        )
    if state == "rejected":
        raise Rejected(row.get("reason") or "rejected", row.get("decided_by") or "?")
    if state == "expired":
        return Resolution(None, resumed_by=None, resumed_at=row["decided_at"], timed_out=True)
    raise PauseClosed(closed_message(row))
