"""Fleet fire claims (SqlState.claim_fire): one member per fire time, on both backends."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest

from gxo.state._sql_schema import StateError, fires_table


def test_a_fire_is_claimed_once(open_state: Callable[..., Any]) -> None:
    state = open_state()
    fire = "2026-11-30T22:00:00+00:00"
    assert state.claim_fire("pb", "tick", fire, "m1") is True
    assert state.claim_fire("pb", "tick", fire, "m2") is False
    assert state.claim_fire("pb", "tick", fire, "m1") is False  # a retry is not a new fire
    assert state.fire_member("pb", "tick", fire) == "m1"
    # Another fire time, another workload, another playbook: separate keys.
    assert state.claim_fire("pb", "tick", "2026-11-30T22:00:01+00:00", "m2") is True
    assert state.claim_fire("pb", "tock", fire, "m2") is True
    assert state.claim_fire("other", "tick", fire, "m2") is True


def test_one_instant_is_one_key_whatever_the_offset(open_state: Callable[..., Any]) -> None:
    state = open_state()
    assert state.claim_fire("pb", "tick", "2026-11-30T23:00:00+01:00", "m1") is True
    assert state.claim_fire("pb", "tick", "2026-11-30T22:00:00Z", "m2") is False
    with pytest.raises(StateError, match="no UTC offset"):
        state.claim_fire("pb", "tick", "2026-11-30T22:00:00", "m1")
    with pytest.raises(StateError, match="invalid fire time"):
        state.claim_fire("pb", "tick", "yesterday", "m1")


def test_claims_are_shared_between_state_objects(open_state: Callable[..., Any]) -> None:
    # Two daemons = two SqlState objects on one database.
    first, second = open_state(), open_state()
    fire = "2026-11-30T22:00:00+00:00"
    assert first.claim_fire("pb", "tick", fire, "m1") is True
    assert second.claim_fire("pb", "tick", fire, "m2") is False


def test_three_threads_racing_for_one_fire_one_wins(open_state: Callable[..., Any]) -> None:
    states = [open_state() for _ in range(3)]
    for round_ in range(20):
        fire = f"2026-11-30T22:00:{round_:02d}+00:00"
        barrier = threading.Barrier(3)
        won: list[str] = []
        errors: list[BaseException] = []

        def claim(
            index: int,
            fire: str = fire,
            barrier: threading.Barrier = barrier,
            won: list[str] = won,
            errors: list[BaseException] = errors,
        ) -> None:
            try:
                barrier.wait()
                if states[index].claim_fire("pb", "tick", fire, f"m{index}"):
                    won.append(f"m{index}")
            except BaseException as e:  # reported below, not lost in the thread
                errors.append(e)

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(won) == 1, (round_, won)
        assert states[0].fire_member("pb", "tick", fire) == won[0]


def test_claims_older_than_a_day_are_pruned(open_state: Callable[..., Any]) -> None:
    state = open_state()
    now = dt.datetime.now(dt.UTC)
    old = (now - dt.timedelta(days=1, minutes=1)).isoformat()
    recent = (now - dt.timedelta(hours=23)).isoformat()
    state.claim_fire("pb", "tick", old, "m1")
    state.claim_fire("pb", "tick", recent, "m1")
    assert state.prune_fires() >= 0  # psycopg may not report the count
    assert state.fire_member("pb", "tick", old) is None
    assert state.fire_member("pb", "tick", recent) == "m1"
    # claim_fire itself prunes (the first call of a SqlState does, then every 10 min).
    fresh = open_state()
    state.claim_fire("pb", "tick", old, "m1")
    fresh.claim_fire("pb", "tick", now.isoformat(), "m2")
    with fresh._read() as conn:
        times = {row.fire_time for row in conn.execute(fires_table.select())}
    assert dt.datetime.fromisoformat(old).isoformat() not in times
    assert len(times) == 2
