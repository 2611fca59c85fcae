"""Shared parts of the reconcilers (see :mod:`gxo.daemon.reconcile`).

Kept apart so the two reconciler modules and :mod:`gxo.daemon.reconcile` (which
registers them) import it without a cycle.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gxo.config.models import Workload
    from gxo.engine.scheduler import RunResult

__all__ = [
    "InstanceOutcome",
    "Reconciler",
    "RunInstance",
    "iso",
    "iso_now",
    "outcome_from_result",
]

log = logging.getLogger("gxo.daemon")

# Extra wait after stop_timeout for the instance to settle (the engine sends SIGKILL at
# stop_timeout; reaping and writing history take a moment more).
STOP_MARGIN = 2.0
DEFAULT_STOP_TIMEOUT = 10.0
SUCCEEDED = frozenset({"Completed", "Skipped"})
_RUN_IDS = random.Random()  # instance run ids (seeded from urandom)


@dataclass
class InstanceOutcome:
    """How one instance ended. ``started_at``/``ended_at`` are ``time.monotonic()`` values."""

    status: str
    run_id: str
    error: str | None = None
    last_exit: int | None = None
    started_at: float = 0.0
    ended_at: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.status in SUCCEEDED


class RunInstance(Protocol):
    def __call__(self, root: str, *, run_id: str, reason: str) -> Awaitable[InstanceOutcome]: ...


class Reconciler(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> dict[str, Any]: ...


def outcome_from_result(
    result: RunResult, root: str, *, started_at: float = 0.0, ended_at: float = 0.0
) -> InstanceOutcome:
    """An engine run of an instance → its outcome, judged by the root workload.

    An interrupted run (the engine was cancelled: a stop, a shutdown) is ``Stopped``,
    not ``Failed``: a supervisor must not count it as a crash. ``last_exit``: the root's
    ``exit_code`` (an ``exec`` summary), else 0/1 for Completed/Failed, else None.
    """
    state = result.states.get(root)
    status = str(state.status) if state is not None else str(result.status)
    error = state.error if state is not None else None
    interrupted = str(result.status) == "Interrupted"
    if interrupted and status != "Completed" and (error is None or error.startswith("cancelled")):
        status = "Stopped"
    summary = state.summary if state is not None else None
    last_exit: int | None = None
    if isinstance(summary, dict) and isinstance(summary.get("exit_code"), int):
        last_exit = summary["exit_code"]
    elif status in ("Completed", "Failed"):
        last_exit = 0 if status == "Completed" else 1
    return InstanceOutcome(
        status, result.run_id, error, last_exit, started_at, ended_at or time.monotonic()
    )


# Formatted instants, by millisecond since the epoch. Schedules fire on shared instants
# and a burst of 1,000 fires formats the same few milliseconds over and over (each status
# record, history row and next_run): each is formatted once (bounded: cleared when full).
_ISO: dict[int, str] = {}
_ISO_MAX = 4096
_NOW: tuple[int, str] = (-1, "")  # the last iso_now(): (millisecond, text)


def iso(dt: datetime | None) -> str | None:
    """``dt`` in UTC, ISO 8601 to the millisecond (truncated), e.g.
    ``2026-12-01T04:22:59.727+00:00``."""
    if dt is None:
        return None
    # The exact microsecond count (a float timestamp holds it exactly), truncated to ms.
    ms = round(dt.timestamp() * 1_000_000) // 1000
    text = _ISO.get(ms)
    if text is None:
        if len(_ISO) >= _ISO_MAX:
            _ISO.clear()
        text = _ISO[ms] = dt.astimezone(UTC).isoformat(timespec="milliseconds")
    return text


def iso_now() -> str:
    """Now, as :func:`iso` formats it; formatted once per millisecond."""
    global _NOW
    ns = time.time_ns()
    ms = ns // 1_000_000
    last = _NOW  # one tuple: a reader in another thread sees a matching pair
    if last[0] == ms:
        return last[1]
    text = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
    last = _NOW = (ms, text.isoformat(timespec="milliseconds"))
    return last[1]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ReconcilerBase:
    """What both reconcilers share: identity, injected collaborators, the status record."""

    kind = "reconciler"

    def __init__(
        self,
        playbook: str,
        workload: Workload,
        *,
        run_instance: RunInstance | Callable[..., Awaitable[InstanceOutcome]],
        on_status: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        self.playbook = playbook
        self.workload = workload
        self.name = workload.name
        self.lifecycle = workload.lifecycle
        self.run_instance = run_instance
        self.on_status = on_status
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        self.wall = wall
        timeout = self.lifecycle.stop_timeout
        self.stop_timeout = DEFAULT_STOP_TIMEOUT if timeout is None else float(timeout)
        self._status: dict[str, Any] = {
            "status": "Pending",
            "reason": None,
            "restarts": 0,
            "last_exit": None,
            "next_run": None,
            "last_run_id": None,
        }
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.playbook}/{self.name} {self._status['status']}>"

    def status(self) -> dict[str, Any]:
        return dict(self._status)

    def _set(self, **changes: Any) -> None:
        status = self._status
        for key, value in changes.items():
            if status.get(key) != value:
                break
        else:
            return  # nothing changed
        status.update(changes)
        if self.on_status is not None:
            try:
                self.on_status(dict(self._status))
            except Exception:  # a broken listener must not stop supervision
                log.exception("status listener of %s/%s failed", self.playbook, self.name)

    def _run_id(self) -> str:
        # 48 random bits, as the engine's run ids (uuid4().hex[:12]), from one generator
        # seeded from urandom (a urandom call per instance cost 5-25 µs of system call).
        return f"{_RUN_IDS.getrandbits(48):012x}"

    async def _call(self, run_id: str, reason: str) -> InstanceOutcome:
        """``run_instance`` with its errors turned into a Failed outcome (never raises,
        except CancelledError)."""
        started = self.clock()
        try:
            outcome = await self.run_instance(self.name, run_id=run_id, reason=reason)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in the instance must not end the reconciler
            log.exception("instance %s of %s/%s raised", run_id, self.playbook, self.name)
            outcome = InstanceOutcome("Failed", run_id, f"{type(exc).__name__}: {exc}")
        if not isinstance(outcome, InstanceOutcome):
            outcome = InstanceOutcome("Failed", run_id, f"run_instance returned {outcome!r}")
        if not outcome.started_at:
            outcome.started_at = started
        if not outcome.ended_at:
            outcome.ended_at = self.clock()
        return outcome

    async def _cancel_and_wait(self, tasks: list[asyncio.Task[Any]], grace: float) -> None:
        """Cancel ``tasks`` and wait up to ``grace`` seconds for them; log the ones still alive."""
        tasks = [t for t in tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        if pending:
            log.warning(
                "%s/%s: %d task(s) still running %.1fs after cancel",
                self.playbook,
                self.name,
                len(pending),
                grace,
            )
