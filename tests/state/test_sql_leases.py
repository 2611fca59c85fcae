"""Leases (fleet ownership) on SQLite and the real PostgreSQL: one holder at a time,
expiry by the database clock, renew fails once another member took over."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def test_one_holder_until_expiry(open_state: Callable[..., Any]) -> None:
    a, b = open_state(), open_state()
    assert a.acquire_lease("supervise:p/w", "A", 0.6)
    assert not b.acquire_lease("supervise:p/w", "B", 0.6)
    assert b.lease_holder("supervise:p/w") == "A"
    assert a.acquire_lease("supervise:p/w", "A", 0.6)  # re-acquiring our own renews it
    assert a.renew_lease("supervise:p/w", "A", 0.6)
    time.sleep(0.8)
    assert a.lease_holder("supervise:p/w") is None  # expired, by the database's clock
    assert b.acquire_lease("supervise:p/w", "B", 5)
    assert not a.renew_lease("supervise:p/w", "A", 5)  # lost: another member took it
    assert a.lease_holder("supervise:p/w") == "B"


def test_release_frees_only_our_lease(open_state: Callable[..., Any]) -> None:
    a, b = open_state(), open_state()
    assert a.acquire_lease("x", "A", 30)
    b.release_lease("x", "B")  # not B's: no effect
    assert b.lease_holder("x") == "A"
    a.release_lease("x", "A")
    assert b.lease_holder("x") is None
    assert b.acquire_lease("x", "B", 30)
    assert a.lease_holder("x") == "B"
    assert a.acquire_lease("other", "A", 30)  # leases are independent by name


def test_concurrent_acquire_has_one_winner(open_state: Callable[..., Any]) -> None:
    states = [open_state() for _ in range(4)]
    with ThreadPoolExecutor(8) as pool:
        won = list(
            pool.map(
                lambda i: states[i % 4].acquire_lease("race", f"m{i}", 30),
                range(16),
            )
        )
    assert won.count(True) == 1
    assert states[0].lease_holder("race") == f"m{won.index(True)}"
