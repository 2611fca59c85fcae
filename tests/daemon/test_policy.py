"""Restart decisions of supervised workloads: back-off bounds, restart policy, crash-loop guard."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gxo.config.models import LifecyclePolicy, RestartPolicy
from gxo.daemon.policy import (
    BackoffPolicy,
    CrashLoopGuard,
    Decision,
    RestartTracker,
    should_restart,
)

backoffs = st.builds(
    BackoffPolicy,
    initial=st.floats(0, 100, allow_nan=False),
    max=st.floats(0, 10_000, allow_nan=False),
    factor=st.floats(1, 10, allow_nan=False),
    jitter=st.floats(0, 1, allow_nan=False),
)


@given(backoffs, st.integers(0, 100_000), st.integers(0, 2**32))
def test_delay_is_never_negative_nor_above_max(
    policy: BackoffPolicy, restarts: int, seed: int
) -> None:
    delay = policy.delay(restarts, random.Random(seed))
    assert 0.0 <= delay <= policy.max


@given(backoffs, st.integers(0, 10_000))
def test_base_delay_is_monotonic_and_capped(policy: BackoffPolicy, restarts: int) -> None:
    assert policy.base_delay(restarts) <= policy.base_delay(restarts + 1) <= max(policy.max, 0.0)


@given(backoffs, st.integers(0, 200), st.integers(0, 2**32))
def test_jitter_stays_within_its_fraction(policy: BackoffPolicy, restarts: int, seed: int) -> None:
    base = policy.base_delay(restarts)
    delay = policy.delay(restarts, random.Random(seed))
    tolerance = 1e-9 * max(1.0, base)
    assert base * (1 - policy.jitter) - tolerance <= delay <= base * (1 + policy.jitter) + tolerance


def test_default_delays_grow_from_1s_to_the_5m_cap() -> None:
    policy = BackoffPolicy()
    assert [policy.base_delay(n) for n in range(10)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert policy.base_delay(10**9) == 300  # no OverflowError after very many restarts


def test_delays_are_jittered_not_in_lock_step() -> None:
    policy = BackoffPolicy(initial=10, max=100, jitter=0.2)
    rng = random.Random(7)
    delays = {round(policy.delay(0, rng), 6) for _ in range(50)}
    assert len(delays) > 40
    assert min(delays) >= 8 and max(delays) <= 12
    # Both sides of the base are used.
    assert min(delays) < 9 and max(delays) > 11


def test_jitter_at_the_cap_only_shortens() -> None:
    policy = BackoffPolicy(initial=1, max=60, jitter=0.5)
    rng = random.Random(1)
    delays = [policy.delay(50, rng) for _ in range(200)]
    assert max(delays) <= 60 and min(delays) >= 30 and min(delays) < 45


def test_zero_jitter_is_exact() -> None:
    policy = BackoffPolicy(initial=0.5, max=3, factor=3, jitter=0)
    assert [policy.delay(n, random.Random()) for n in range(4)] == [0.5, 1.5, 3, 3]


@pytest.mark.parametrize(
    ("policy", "succeeded", "expected"),
    [
        ("always", True, True),
        ("always", False, True),
        ("on_failure", True, False),
        ("on_failure", False, True),
        ("never", True, False),
        ("never", False, False),
        (RestartPolicy.on_failure, False, True),
    ],
)
def test_should_restart(policy: str, succeeded: bool, expected: bool) -> None:
    assert should_restart(policy, succeeded) is expected


def test_should_restart_rejects_an_unknown_policy() -> None:
    with pytest.raises(ValueError):
        should_restart("sometimes", False)


def test_guard_allows_max_restarts_within_the_window_then_refuses() -> None:
    guard = CrashLoopGuard(max_restarts=3, window=10)
    assert [guard.record(t) for t in (0, 1, 2)] == [True, True, True]
    assert guard.record(3) is False
    assert guard.hit
    assert "more than 3 restarts within 10s" in guard.reason
    assert "max_restarts: 3" in guard.reason and "restart_window: 10s" in guard.reason


def test_guard_window_slides() -> None:
    guard = CrashLoopGuard(max_restarts=2, window=10)
    assert guard.record(0) and guard.record(5)
    assert guard.record(9.9) is False
    # At t=10 the restart at t=0 has left the window.
    assert guard.record(10) is True
    assert guard.recent(10) == 2
    assert guard.recent(100) == 0


def test_guard_with_zero_restarts_refuses_the_first() -> None:
    guard = CrashLoopGuard(max_restarts=0, window=60)
    assert guard.record(0) is False
    assert "more than 0 restarts within 1m" in guard.reason


@pytest.mark.parametrize(("burst", "window"), [(-1, 10), (1, 0), (1, -5)])
def test_guard_rejects_bad_limits(burst: int, window: float) -> None:
    with pytest.raises(ValueError):
        CrashLoopGuard(burst, window)


def tracker(**kw) -> RestartTracker:
    kw.setdefault("backoff", BackoffPolicy(initial=1, max=8, factor=2, jitter=0, reset_after=30))
    return RestartTracker(rng=random.Random(0), **kw)


def test_failing_service_backs_off_then_hits_the_crash_loop_limit() -> None:
    t = tracker(max_restarts=5, restart_window=60)
    now, decisions = 0.0, []
    while True:
        d = t.on_exit(succeeded=False, ran_for=0.1, now=now)
        decisions.append(d)
        if not d.restart:
            break
        now += d.delay + 0.1
    assert [d.delay for d in decisions[:-1]] == [1, 2, 4, 8, 8]
    assert [d.restarts for d in decisions] == [1, 2, 3, 4, 5, 5]
    last = decisions[-1]
    assert last == Decision(False, 0.0, last.reason, 5, crash_loop=True)
    assert "more than 5 restarts within 1m" in (last.reason or "")


def test_default_settings_hit_the_limit_on_a_service_that_fails_at_once() -> None:
    # With 1s, 2s, 4s, 8s, 16s the sixth failure comes within 60s of the first restart.
    t = RestartTracker(rng=random.Random(3))
    now, restarted = 0.0, 0
    for _ in range(10):
        d = t.on_exit(False, 0.05, now)
        if not d.restart:
            break
        restarted += 1
        now += d.delay + 0.05
    assert restarted == 5 and d.crash_loop


def test_success_under_on_failure_is_not_restarted() -> None:
    d = tracker().on_exit(succeeded=True, ran_for=1, now=0)
    assert not d.restart and not d.crash_loop and d.restarts == 0
    assert d.reason == "exited successfully; restart_policy on_failure does not restart it"


def test_never_does_not_restart_a_failure() -> None:
    d = tracker(restart_policy="never").on_exit(succeeded=False, ran_for=1, now=0)
    assert not d.restart and d.reason == "failed; restart_policy never does not restart it"


def test_always_restarts_a_success_and_the_guard_still_applies() -> None:
    t = tracker(restart_policy="always", max_restarts=2, restart_window=60)
    assert t.on_exit(True, 0.1, 0).restart
    assert t.on_exit(True, 0.1, 1).restart
    assert t.on_exit(True, 0.1, 2).crash_loop


def test_a_healthy_run_resets_the_back_off_but_not_the_restart_count() -> None:
    t = tracker(max_restarts=100, restart_window=60)
    assert [t.on_exit(False, 1, n).delay for n in range(4)] == [1, 2, 4, 8]
    # Ran for reset_after (30s): the next crash is treated as a first one again.
    d = t.on_exit(False, 30, 100)
    assert (d.delay, d.restarts) == (1, 5)
    assert t.on_exit(False, 29.9, 101).delay == 2


def test_slow_crashes_never_hit_the_limit() -> None:
    t = tracker(max_restarts=2, restart_window=10)
    for n in range(20):
        assert t.on_exit(False, 0.5, n * 11.0).restart


def test_reset_forgets_everything() -> None:
    t = tracker(max_restarts=1, restart_window=60)
    assert t.on_exit(False, 0, 0).restart
    assert t.on_exit(False, 0, 1).crash_loop
    t.reset()
    d = t.on_exit(False, 0, 2)
    assert d.restart and d.restarts == 1 and d.delay == 1


def test_from_lifecycle_uses_the_workloads_settings() -> None:
    lc = LifecyclePolicy.model_validate(
        {
            "policy": "supervise",
            "restart_policy": "always",
            "backoff": {
                "initial": "2s",
                "max": "10s",
                "factor": 3,
                "jitter": 0,
                "reset_after": "5s",
            },
            "max_restarts": 1,
            "restart_window": "30s",
        }
    )
    t = RestartTracker.from_lifecycle(lc, random.Random(0))
    assert t.backoff == BackoffPolicy(2, 10, 3, 0, 5)
    assert (t.guard.max_restarts, t.guard.window, t.restart_policy) == (1, 30, "always")
    assert t.on_exit(True, 0, 0).delay == 2
    assert t.on_exit(True, 0, 1).crash_loop


def test_from_lifecycle_defaults() -> None:
    t = RestartTracker.from_lifecycle(LifecyclePolicy(policy="supervise"))
    assert t.backoff == BackoffPolicy()
    assert (t.guard.max_restarts, t.guard.window, t.restart_policy) == (5, 60, "on_failure")


def test_base_delay_with_a_tiny_max_does_not_crash() -> None:
    """max / initial underflowed to 0 and math.log raised (found by hypothesis)."""
    policy = BackoffPolicy(initial=2.0, max=5e-324, factor=2.0, jitter=0.0)
    assert policy.base_delay(0) == policy.base_delay(3) == 5e-324
