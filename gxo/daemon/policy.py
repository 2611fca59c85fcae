"""Restart decisions of ``supervise`` workloads: back-off, restart policy, crash-loop guard.

Pure logic, no tasks and no clock of its own: the reconciler passes the time
(``time.monotonic()``) and a random generator, so every decision is reproducible in tests.

- :class:`BackoffPolicy` — capped exponential delay with ± jitter (supervisord has neither
  a cap nor jitter; a fleet of crashed services should not restart in lock-step).
- :func:`should_restart` — ``always`` / ``on_failure`` / ``never``.
- :class:`CrashLoopGuard` — systemd's StartLimitBurst/StartLimitIntervalSec: more than
  ``max_restarts`` restarts within ``restart_window`` and the workload is given up (Failed).
- :class:`RestartTracker` — the three together, per workload, with ``reset_after``: a run
  that stayed up that long was healthy, so the next crash starts the back-off from
  ``initial`` again.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gxo.config.durations import format_duration
from gxo.config.models import RestartPolicy

if TYPE_CHECKING:
    from gxo.config.models import BackoffConfig, LifecyclePolicy

__all__ = [
    "BackoffPolicy",
    "CrashLoopGuard",
    "Decision",
    "RestartTracker",
    "should_restart",
]


@dataclass(frozen=True)
class BackoffPolicy:
    """Delay before restart number ``restarts`` (0-based): ``initial * factor**restarts``,
    capped at ``max``, then randomised by ± ``jitter`` and capped again, so a delay is
    never negative and never longer than ``max``."""

    initial: float = 1.0
    max: float = 300.0
    factor: float = 2.0
    jitter: float = 0.2
    reset_after: float = 60.0

    @classmethod
    def from_config(cls, config: BackoffConfig | None) -> BackoffPolicy:
        if config is None:
            return cls()
        return cls(config.initial, config.max, config.factor, config.jitter, config.reset_after)

    def base_delay(self, restarts: int) -> float:
        """The delay without jitter: non-decreasing in ``restarts``, at most ``max``."""
        restarts = max(0, restarts)
        if self.initial <= 0 or self.max <= 0:
            return 0.0
        if self.initial >= self.max:  # also: max / initial may underflow to 0 (log domain)
            return self.max
        if self.factor > 1 and restarts > math.log(self.max / self.initial) / math.log(self.factor):
            # Past the cap: also keeps factor**restarts from overflowing after many restarts.
            return self.max
        try:
            return min(self.max, self.initial * self.factor**restarts)
        except OverflowError:  # a tiny initial with a huge exponent: still past the cap
            return self.max

    def delay(self, restarts: int, rng: random.Random) -> float:
        base = self.base_delay(restarts)
        spread = base * self.jitter * rng.uniform(-1.0, 1.0)
        return min(self.max, max(0.0, base + spread))


def should_restart(restart_policy: RestartPolicy | str, succeeded: bool) -> bool:
    """Whether an exit calls for a restart under ``restart_policy``."""
    policy = RestartPolicy(restart_policy)
    if policy == RestartPolicy.always:
        return True
    if policy == RestartPolicy.on_failure:
        return not succeeded
    return False


class CrashLoopGuard:
    """At most ``max_restarts`` restarts within any ``window`` seconds.

    ``record(now)`` asks for one more restart at time ``now``: True if it is allowed (and
    counted), False if it would be one too many — the limit is hit and ``reason`` says so.
    """

    def __init__(self, max_restarts: int, window: float) -> None:
        if max_restarts < 0:
            raise ValueError("max_restarts must not be negative")
        if window <= 0:
            raise ValueError("window must be longer than 0s")
        self.max_restarts = max_restarts
        self.window = window
        self._times: deque[float] = deque()
        self.hit = False

    @property
    def reason(self) -> str:
        return (
            f"crash loop: more than {self.max_restarts} restarts within "
            f"{format_duration(self.window)} (max_restarts: {self.max_restarts}, "
            f"restart_window: {format_duration(self.window)})"
        )

    @property
    def times(self) -> tuple[float, ...]:
        """The restarts in the window, oldest first (persisted by the supervisor)."""
        return tuple(self._times)

    def recent(self, now: float) -> int:
        """Restarts counted in the window ending at ``now``."""
        self._expire(now)
        return len(self._times)

    def record(self, now: float) -> bool:
        self._expire(now)
        if len(self._times) >= self.max_restarts:
            self.hit = True
            return False
        self._times.append(now)
        return True

    def reset(self) -> None:
        self._times.clear()
        self.hit = False

    def _expire(self, now: float) -> None:
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()


@dataclass(frozen=True)
class Decision:
    """What to do after a supervised instance ended.

    ``restart``: start it again after ``delay`` seconds (status Restarting, next start
    shown). Otherwise ``reason`` says why not; ``crash_loop`` is True when the guard gave
    up (status Failed). ``restarts`` is the workload's restart count for its status.
    """

    restart: bool
    delay: float
    reason: str | None
    restarts: int
    crash_loop: bool = False


class RestartTracker:
    """One supervised workload's restart state; call :meth:`on_exit` when an instance ends.

    A stop asked for by the user (``gxo ctl stop``, a new apply, daemon shutdown) is not an
    exit to report here. ``restarts`` counts every restart since the tracker was made or
    :meth:`reset` (what the status shows); the back-off exponent counts only the restarts
    since the last healthy run (one that lasted ``reset_after``).
    """

    def __init__(
        self,
        restart_policy: RestartPolicy | str = RestartPolicy.on_failure,
        backoff: BackoffPolicy | None = None,
        max_restarts: int = 5,
        restart_window: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        self.restart_policy = RestartPolicy(restart_policy)
        self.backoff = backoff or BackoffPolicy()
        self.guard = CrashLoopGuard(max_restarts, restart_window)
        self.rng = rng or random.Random()
        self.restarts = 0
        self.consecutive = 0

    @classmethod
    def from_lifecycle(
        cls, lifecycle: LifecyclePolicy, rng: random.Random | None = None
    ) -> RestartTracker:
        """A tracker with a supervise lifecycle's settings (defaults where unset)."""
        return cls(
            lifecycle.restart_policy or RestartPolicy.on_failure,
            BackoffPolicy.from_config(lifecycle.backoff),
            5 if lifecycle.max_restarts is None else lifecycle.max_restarts,
            lifecycle.restart_window or 60.0,
            rng,
        )

    def on_exit(self, succeeded: bool, ran_for: float, now: float) -> Decision:
        """Decide about an instance that ended at ``now`` after running ``ran_for`` seconds."""
        if ran_for >= self.backoff.reset_after:
            self.consecutive = 0
        if not should_restart(self.restart_policy, succeeded):
            outcome = "exited successfully" if succeeded else "failed"
            return Decision(
                False,
                0.0,
                f"{outcome}; restart_policy {self.restart_policy.value} does not restart it",
                self.restarts,
            )
        if not self.guard.record(now):
            return Decision(False, 0.0, self.guard.reason, self.restarts, crash_loop=True)
        delay = self.backoff.delay(self.consecutive, self.rng)
        self.consecutive += 1
        self.restarts += 1
        return Decision(True, delay, None, self.restarts)

    def reset(self) -> None:
        """Forget the history (a user's ``start`` after a crash loop, a changed definition)."""
        self.restarts = 0
        self.consecutive = 0
        self.guard.reset()
