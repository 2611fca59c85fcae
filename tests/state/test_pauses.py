"""Paused workloads of the daemon (``gxo.daemon.pauses``) on a real state store, SQLite and
PostgreSQL: one decision per pause whatever races (resume against the timeout 100 times,
two resumes of one token), tokens stored only as hashes, refusals that say what
happened, a pause taken up again after a restart, and the schema 2 → 3 migration."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from gxo.daemon.core import Daemon
from gxo.daemon.pauses import Caller, PauseBook, Refused, hash_token
from gxo.engine.signals import PauseClosed, PauseRequest, Rejected, Resolution
from gxo.state._sql_schema import parse_url
from gxo.state.sql import SqlState

pytestmark = pytest.mark.timeout(300)

SCHEMA = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}, "replicas": {"type": "integer", "minimum": 1}},
    "required": ["approved", "replicas"],
}
ALICE = Caller("alice", frozenset({"alice", "operator"}))


class Pause:
    """One ``wait`` of a broker running in a task, and what it announced."""

    def __init__(self, book: PauseBook, run_id: str, **options: Any) -> None:
        self.announced = asyncio.Event()
        self.data: dict[str, Any] = {}
        request = PauseRequest(run_id, "approve", "Deploy?", SCHEMA, **options)
        self.task = asyncio.create_task(book.broker("pb").wait(request, self._announce))

    def _announce(self, **data: Any) -> None:
        self.data = data
        self.announced.set()

    async def ready(self) -> dict[str, Any]:
        await asyncio.wait_for(self.announced.wait(), 10)
        return self.data


async def _resume(book: PauseBook, token: str, payload: Any, who: Caller = ALICE) -> Any:
    row = await book.find(token=token)
    return await book.resume(who, row, payload)


def test_resume_racing_the_timeout_100_times_decides_once(
    open_state: Callable[..., SqlState],
) -> None:
    state = open_state()
    outcomes = {"resumed": 0, "expired": 0}

    async def main() -> None:
        book = Daemon(state).pauses
        rng = random.Random(12)
        for i in range(100):
            pause = Pause(book, f"run{i}", timeout=0.03, on_timeout="continue")
            token = (await pause.ready())["token"]
            await asyncio.sleep(rng.uniform(0.0, 0.06))
            resumed: Any = None
            refused: Refused | None = None
            try:
                resumed = await _resume(book, token, {"approved": True, "replicas": i + 1})
            except Refused as exc:
                refused = exc
            # Never stuck: the wait ends whatever won.
            resolution: Resolution = await asyncio.wait_for(pause.task, 10)
            row = state.get_pause(token.partition(".")[0])
            assert row is not None
            if resolution.timed_out:  # the timeout won: the resume was told so
                assert resumed is None and refused is not None, i
                assert refused.code == "FAILED_PRECONDITION"
                assert "timed out at" in refused.message
                assert row["state"] == "expired" and row["payload"] is None
            else:  # the resume won: the timeout never fired after it
                assert refused is None and resumed["state"] == "resumed", i
                assert resolution.payload == {"approved": True, "replicas": i + 1}
                assert resolution.resumed_by == "alice"
                assert row["state"] == "resumed" and row["decided_by"] == "alice"
            outcomes[row["state"]] += 1
            assert book.waiters == {} and book.open == {}

    asyncio.run(main())
    assert sum(outcomes.values()) == 100
    # Both sides won some: the test really raced them.
    assert outcomes["resumed"] > 0 and outcomes["expired"] > 0, outcomes


def test_two_resumes_of_one_token_one_wins_and_the_other_is_told(
    open_state: Callable[..., SqlState],
) -> None:
    state = open_state()

    async def main() -> None:
        book = Daemon(state).pauses
        for i in range(20):
            pause = Pause(book, f"twice{i}")
            token = (await pause.ready())["token"]
            bob = Caller("bob", frozenset({"bob"}))
            results = await asyncio.gather(
                _resume(book, token, {"approved": True, "replicas": 1}),
                _resume(book, token, {"approved": False, "replicas": 2}, bob),
                return_exceptions=True,
            )
            won = [r for r in results if isinstance(r, dict)]
            lost = [r for r in results if isinstance(r, Refused)]
            assert len(won) == 1 and len(lost) == 1, results
            assert f"already resumed by {won[0]['decided_by']} at" in lost[0].message
            resolution = await asyncio.wait_for(pause.task, 10)
            assert resolution.payload == won[0]["payload"]

    asyncio.run(main())


def test_refusals_leave_the_workload_paused_and_say_why(
    open_state: Callable[..., SqlState],
) -> None:
    state = open_state()

    async def main() -> None:
        book = Daemon(state).pauses
        pause = Pause(book, "r1", approvers=("release-managers", "carol"))
        data = await pause.ready()
        token = data["token"]
        pid = data["token_id"]
        assert token.startswith(pid + ".") and len(token.partition(".")[2]) >= 32
        row = state.get_pause(pid)
        assert row is not None and row["token_hash"] == hash_token(token)
        assert token not in str(row)  # only its hash is stored

        for bad in ("nope", pid + ".wrong", token + "x", ""):
            with pytest.raises(Refused) as info:
                await book.find(token=bad) if bad else await book.find()
            assert info.value.code in ("NOT_FOUND", "INVALID_ARGUMENT")
        with pytest.raises(Refused, match="alice is not an approver") as info:
            await _resume(book, token, {"approved": True, "replicas": 1})
        assert info.value.code == "PERMISSION_DENIED"
        carol = Caller("carol", frozenset({"carol"}))
        manager = Caller("dave", frozenset({"dave", "release-managers"}))
        with pytest.raises(Refused, match="replicas: 0 is less than the minimum of 1") as info:
            await _resume(book, token, {"approved": True, "replicas": 0}, carol)
        assert info.value.code == "INVALID_ARGUMENT" and "still paused" in info.value.message
        assert state.get_pause(pid)["state"] == "open"  # type: ignore[index]
        assert not pause.task.done()

        # By run and workload (no token), by a role the approvers name.
        row = await book.find(run_id="r1", workload="pb/approve")
        rejected = await book.reject(manager, row, "not today")
        assert rejected["state"] == "rejected"
        with pytest.raises(Rejected, match="rejected by dave: not today"):
            await asyncio.wait_for(pause.task, 10)
        with pytest.raises(Refused, match=r"already rejected by dave at .*: not today"):
            await _resume(book, token, {"approved": True, "replicas": 1}, carol)
        # A history row id (`gxo ctl runs`) names the run too.
        row = await book.find(run_id="r1.approve", workload="approve")
        assert row["state"] == "rejected"
        with pytest.raises(Refused, match="'other' is not paused"):
            await book.find(workload="other")

    asyncio.run(main())


def test_a_restarted_daemon_takes_up_the_open_pause_with_the_same_token(
    open_state: Callable[..., SqlState],
) -> None:
    state = open_state()

    async def first() -> str:
        book = Daemon(state).pauses
        pause = Pause(book, "r7", timeout=3600)
        token = (await pause.ready())["token"]
        book.stopping = True  # a daemon shutting down: the pause stays open
        pause.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pause.task
        return str(token)

    token = asyncio.run(first())
    pid = token.partition(".")[0]
    assert state.get_pause(pid)["state"] == "open"  # type: ignore[index]

    async def second() -> Resolution:
        book = Daemon(state).pauses
        pause = Pause(book, "r7", timeout=3600)
        data = await pause.ready()
        assert data["token_id"] == pid and "token" not in data  # shown once, not again
        assert [r["id"] for r in await book.list()] == [pid]
        await _resume(book, token, {"approved": True, "replicas": 3})
        return await asyncio.wait_for(pause.task, 10)

    resolution = asyncio.run(second())
    assert resolution.payload == {"approved": True, "replicas": 3}

    async def stopped() -> None:  # a run stopped by a user: its pause is closed
        book = Daemon(state).pauses
        pause = Pause(book, "r8")
        token = (await pause.ready())["token"]
        pause.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pause.task
        with pytest.raises(Refused, match="no longer paused: its run ended"):
            await _resume(book, token, {"approved": True, "replicas": 1})

    asyncio.run(stopped())


def test_a_pause_decided_while_the_daemon_was_away_is_answered_at_once(
    open_state: Callable[..., SqlState],
) -> None:
    state = open_state()
    state.create_pause(
        "pgone",
        playbook="pb",
        workload="approve",
        run_id="r9",
        token_hash=hash_token("pgone.x"),
        prompt="Deploy?",
        schema=SCHEMA,
        since="2026-01-01T00:00:00+00:00",
        expires_at=None,
        approvers=[],
    )
    assert state.decide_pause(
        "pgone", "resumed", by="erin", at="2026-01-01T00:01:00+00:00", payload={"ok": 1}
    )
    assert not state.decide_pause("pgone", "expired", by=None, at="2026-01-01T00:02:00+00:00")

    async def main() -> Resolution:
        book = Daemon(state).pauses
        pause = Pause(book, "r9")
        started = time.monotonic()
        resolution = await asyncio.wait_for(pause.task, 10)
        assert time.monotonic() - started < 5 and not pause.announced.is_set()
        return resolution

    resolution = asyncio.run(main())
    assert resolution.payload == {"ok": 1} and resolution.resumed_by == "erin"


def test_an_overdue_pause_is_expired_by_a_late_resume(open_state: Callable[..., SqlState]) -> None:
    state = open_state()
    state.create_pause(
        "plate",
        playbook="pb",
        workload="approve",
        run_id="r10",
        token_hash=hash_token("plate.y"),
        prompt="p",
        schema=None,
        since="2026-01-01T00:00:00+00:00",
        expires_at="2026-01-01T00:00:01+00:00",
        approvers=[],
    )

    async def main() -> None:
        book = Daemon(state).pauses
        with pytest.raises(Refused, match="timed out at"):
            await _resume(book, "plate.y", None)

    asyncio.run(main())
    assert state.get_pause("plate")["state"] == "expired"  # type: ignore[index]


def test_version_2_database_gets_the_pauses_table_in_place(state_url: str) -> None:
    SqlState(state_url).close()
    engine = create_engine(parse_url(state_url))
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE gxo_pauses"))
            conn.execute(text("UPDATE gxo_meta SET value = '2' WHERE key = 'schema_version'"))
    finally:
        engine.dispose()
    state = SqlState(state_url)
    try:
        assert state.list_pauses() == []
        engine = create_engine(parse_url(state_url))
        try:
            with engine.connect() as conn:
                version = conn.execute(
                    text("SELECT value FROM gxo_meta WHERE key = 'schema_version'")
                ).scalar()
        finally:
            engine.dispose()
        assert version == "3"
    finally:
        state.close()


def test_a_pause_whose_run_ended_elsewhere_is_closed_not_resumed(
    open_state: Callable[..., SqlState],
) -> None:
    """A fleet member died while paused and the survivors' sweep failed its run: a resume
    must not succeed with nothing left to resume (Argo #12863)."""
    state = open_state()

    async def main() -> None:
        book = Daemon(state).pauses
        pause = Pause(book, "r11")
        token = (await pause.ready())["token"]
        state.start_run("pb", "approve", "r11.approve", "2026-01-01T00:00:00+00:00")
        state.finish_run("r11.approve", "Failed", "2026-01-01T00:01:00+00:00", None, "swept")
        with pytest.raises(Refused, match=r"no longer paused: its run ended .*Failed: swept"):
            await _resume(book, token, {"approved": True, "replicas": 1})
        with pytest.raises(PauseClosed):
            await asyncio.wait_for(pause.task, 10)

    asyncio.run(main())
    assert state.list_pauses() == []


def test_a_decision_made_by_another_daemon_on_the_shared_state_is_seen(
    open_state: Callable[..., SqlState],
) -> None:
    """A fleet: the member waiting on the pause sees a resume another member decided
    (through the shared row, polled while it waits), and the other's late timeout loses."""
    waiting, other = open_state(), open_state()

    async def main() -> None:
        here, there = Daemon(waiting).pauses, Daemon(other).pauses
        pause = Pause(here, "r12", timeout=3600)
        token = (await pause.ready())["token"]
        started = time.monotonic()
        decided = await _resume(there, token, {"approved": True, "replicas": 2})
        assert decided["state"] == "resumed" and there.waiters == {}
        resolution = await asyncio.wait_for(pause.task, 10)
        assert resolution.payload == {"approved": True, "replicas": 2}
        assert time.monotonic() - started < 5  # POLL_SECONDS, not the timeout
        row = await there.find(token=token)
        assert await there.decide(row, "expired", by=None) is None  # the timeout lost

    asyncio.run(main())
