"""Write-behind for the daemon's state writes: many writes, one transaction.

An instance of a trivial workload costs less than one state transaction, and it makes
several (its history row at start, its end with the history prune, statuses). The
:class:`StateWriter` takes those writes off the instance's path: :meth:`submit` queues a
write and returns at once (a future says when it is committed); one drain task at a
time takes every queued write and runs them **in one transaction** on a worker thread
(``SqlState.batch()``), then the next lot. So the batch grows with the load: one write
alone is committed at once, a burst of 1,000 instances is a handful of commits.

What holds:

* **Order.** Writes are committed in the order they were submitted (one drain at a
  time, batches in FIFO order): a run's end never lands before its start, and a
  workload's statuses land in order. A ``set_status`` of a workload whose previous
  status is still queued (not yet taken by a batch) updates that queued write in place
  (one write, not two: the row is an upsert, only the latest record matters); it then
  lands at the earlier write's place in the order, so with the lot it was queued in.
  Within a batch, earlier ``set_status`` writes of a workload superseded by a later one
  are dropped.
* **Read your writes.** The daemon's own reads of the state go through
  ``Daemon._db``, which first waits for the writes queued before it (:meth:`flush`);
  :meth:`pending_status` serves a workload's status that is queued but not committed.
* **Shutdown and removal.** While writes are pending, the drain task is listed in the
  daemon's ``_status_writes`` under the key ``("", "")``: the daemon waits for those at
  shutdown (before the store is closed), and every direct state call waits through
  ``_db`` (a playbook's delete lands after its queued rows).
* **Crash.** A kill -9 loses what was queued and not yet committed: the batch being
  committed and the writes queued behind it. A write waits in the queue only while the
  previous batch commits (a short queue also waits :data:`GATHER_S` for more writes: a
  commit costs more than the writes it carries — with 1,000 fires a second this cut the
  writer's CPU from ≈ 30 % to ≈ 11 % of a core), so that is the last batch window — a few ms on SQLite or a
  local PostgreSQL at moderate rates (bench/RESULTS.md). When the store cannot keep up,
  at most :data:`QUEUE_MAX` writes wait (instance starts then wait for room), so the
  window is bounded by the time to commit them. A lost start row means the run is not in history (nothing
  for ``fail_unfinished_runs`` to fail); a lost end row leaves it Running, which the
  next start records as Failed "daemon restarted" — both as after a crash before.
* **Errors.** If a write of a batch fails, the batch is rolled back as a whole and its
  writes are run again one transaction each, so one bad write (a playbook removed
  meanwhile) costs only itself; its future carries the error, which is logged.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gxo.daemon.core import Daemon

__all__ = ["BATCH_MAX", "QUEUE_MAX", "StateWriter", "writer_of"]

log = logging.getLogger("gxo.daemon")

BATCH_MAX = 2000  # writes per transaction at most (a burst is cut into several)
# Writes waiting at most before new instances wait for room (:meth:`StateWriter.room`):
# when the store cannot keep up, instance starts slow down instead of the queue (memory,
# and what a crash loses) growing without bound.
QUEUE_MAX = 4 * BATCH_MAX
GATHER_S = 0.002  # a short queue waits this long for company before it is committed
GATHER_BELOW = 200
DRAIN_KEY = ("", "")  # the writer's entry in Daemon._status_writes (no workload is "")


class _Write:
    __slots__ = ("args", "fn", "future", "status_key", "taken")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        future: asyncio.Future[Any],
        status_key: tuple[str, str] | None,
    ) -> None:
        self.fn = fn
        self.args = args
        self.future = future
        self.status_key = status_key
        self.taken = False  # in a batch being committed: no longer updated in place


class StateWriter:
    """Queued state writes of one daemon, committed in batches (see the module docstring)."""

    def __init__(self, state: Any, on_drain: Callable[[asyncio.Task[None]], None] | None = None):
        self.state = state
        self._queue: list[_Write] = []
        self._drain: asyncio.Task[None] | None = None
        self._last: asyncio.Future[Any] | None = None
        self._on_drain = on_drain
        # Statuses queued or being committed: (playbook, workload) -> (record, its write).
        self._statuses: dict[tuple[str, str], tuple[dict[str, Any], _Write]] = {}
        self._room: asyncio.Event | None = None  # set when the queue is below QUEUE_MAX
        self.batches = 0  # transactions committed (bench and tests read it)
        self.writes = 0

    def __repr__(self) -> str:
        return f"<StateWriter {len(self._queue)} queued, {self.batches} batches>"

    @property
    def pending(self) -> int:
        return len(self._queue) + (0 if self._drain is None else 1)

    # -- queueing ---------------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Queue ``fn(*args)`` (a ``SqlState`` write method); the future resolves with its
        result once committed. Never blocks; call it from the loop."""
        loop = asyncio.get_running_loop()
        write = _Write(fn, args, loop.create_future(), None)
        self._queue.append(write)
        self._last = write.future
        if self._drain is None:
            self._drain = loop.create_task(self._run(), name="gxo-state-writer")
            if self._on_drain is not None:
                self._on_drain(self._drain)
        return write.future

    def set_status(
        self, playbook: str, workload: str, record: dict[str, Any]
    ) -> asyncio.Future[Any]:
        """Queue a workload's status row; :meth:`pending_status` serves it until committed.

        A status of the workload still queued (not yet taken by a batch) is updated in
        place instead: it carries the new record and its future is this one's."""
        key = (playbook, workload)
        entry = self._statuses.get(key)
        if entry is not None and not entry[1].taken:
            write = entry[1]
            write.args = (playbook, workload, record)
            self._statuses[key] = (record, write)
            return write.future
        future = self.submit(self.state.set_status, playbook, workload, record)
        write = self._queue[-1]
        write.status_key = key
        self._statuses[key] = (record, write)
        return future

    def pending_status(self, playbook: str, workload: str) -> dict[str, Any] | None:
        entry = self._statuses.get((playbook, workload))
        return None if entry is None else dict(entry[0])

    @property
    def full(self) -> bool:
        """Whether :meth:`room` would wait."""
        return len(self._queue) >= QUEUE_MAX

    async def room(self) -> None:
        """Wait while :data:`QUEUE_MAX` writes are queued (back-pressure on instance starts)."""
        while len(self._queue) >= QUEUE_MAX:
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            await self._room.wait()

    async def flush(self) -> None:
        """Wait until every write submitted before this call is committed (or failed)."""
        last = self._last
        if last is not None and not last.done():
            await asyncio.wait([last])

    # -- draining ---------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while self._queue:
                if len(self._queue) < GATHER_BELOW:
                    # A trickle of writes: gather a few ms of them into one transaction
                    # (a commit costs more than the writes it carries).
                    await asyncio.sleep(GATHER_S)
                batch, self._queue = self._queue[:BATCH_MAX], self._queue[BATCH_MAX:]
                if self._room is not None and len(self._queue) < QUEUE_MAX:
                    self._room.set()
                batch = self._coalesce(batch)
                try:
                    results = await asyncio.to_thread(self._commit, batch)
                except BaseException as exc:  # cancelled (loop closing) or a thread failure
                    for write in batch:
                        if not write.future.done():
                            write.future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                finally:
                    for write in batch:
                        if write.status_key is not None:
                            entry = self._statuses.get(write.status_key)
                            if entry is not None and entry[1] is write:
                                del self._statuses[write.status_key]
                for write, (ok, value) in zip(batch, results, strict=True):
                    if write.future.done():
                        continue
                    if ok:
                        write.future.set_result(value)
                    else:
                        write.future.set_exception(value)
                        # Nobody may await it (write-behind): retrieved here, logged once.
                        write.future.exception()
                        log.warning("state write %s failed: %s", _name(write.fn), value)
        finally:
            self._drain = None  # cancelled with writes left: the next submit starts a drain

    def _coalesce(self, batch: list[_Write]) -> list[_Write]:
        """Mark the batch's writes taken; drop a ``set_status`` superseded by a later one
        of the same workload in ``batch`` (its future resolves with the later one's)."""
        latest: dict[tuple[str, str], _Write] = {}
        for write in batch:
            write.taken = True
            if write.status_key is not None:
                latest[write.status_key] = write
        if len(latest) == sum(1 for w in batch if w.status_key is not None):
            return batch
        kept: list[_Write] = []
        for write in batch:
            key = write.status_key
            if key is not None and latest[key] is not write:
                _chain(latest[key].future, write.future)
                continue
            kept.append(write)
        return kept

    def _commit(self, batch: list[_Write]) -> list[tuple[bool, Any]]:
        """In a worker thread: the batch in one transaction; on an error, one by one."""
        results: list[tuple[bool, Any]] = []
        try:
            with self.state.batch():
                grouped = self._grouped(batch)
                if grouped is not None:
                    results = grouped
                else:
                    for write in batch:
                        results.append((True, write.fn(*write.args)))
        except Exception:
            results = []
            for write in batch:
                try:
                    results.append((True, write.fn(*write.args)))
                except Exception as exc:
                    results.append((False, exc))
        self.batches += 1
        self.writes += len(batch)
        return results

    def _grouped(self, batch: list[_Write]) -> list[tuple[bool, Any]] | None:
        """A batch of only history rows and statuses in a few multi-row statements
        (``SqlState.write_runs``; the same rows as one call each: see there); None for
        a batch with any other write (run one call each, in order)."""
        state = self.state
        write_runs = getattr(state, "write_runs", None)
        if write_runs is None or len(batch) < 2:
            return None
        start, finish, status = state.start_run, state.finish_run, state.set_status
        starts: list[tuple[Any, ...]] = []
        finishes: list[tuple[Any, ...]] = []
        statuses: list[tuple[Any, ...]] = []
        kinds: list[int] = []
        for write in batch:
            fn = write.fn
            if fn == start:
                starts.append(write.args)
                kinds.append(0)
            elif fn == finish:
                finishes.append(write.args)
                kinds.append(1)
            elif fn == status:
                statuses.append(write.args)
                kinds.append(2)
            else:
                return None
        ended = iter(write_runs(starts, finishes, statuses))
        return [(True, next(ended) if kind == 1 else None) for kind in kinds]


def _chain(source: asyncio.Future[Any], target: asyncio.Future[Any]) -> None:
    def copy(done: asyncio.Future[Any]) -> None:
        if target.done():
            return
        if done.cancelled():
            target.cancel()
        elif done.exception() is not None:
            target.set_exception(done.exception())  # type: ignore[arg-type]
            target.exception()
        else:
            target.set_result(done.result())

    source.add_done_callback(copy)


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", repr(fn))


_WRITERS: weakref.WeakKeyDictionary[Any, StateWriter] = weakref.WeakKeyDictionary()


def writer_of(daemon: Daemon) -> StateWriter:
    """The daemon's writer (one per daemon, made on first use). Its drain task is listed
    in ``daemon._status_writes`` while it runs, so shutdown and removal wait for it."""
    writer: StateWriter | None = getattr(daemon, "_gxo_state_writer", None)
    if writer is not None:  # the fast path: an attribute, not a weak-key lookup per write
        return writer
    writer = _WRITERS.get(daemon)
    if writer is None:

        def track(task: asyncio.Task[None]) -> None:
            daemon._status_writes[DRAIN_KEY] = task
            task.add_done_callback(
                lambda t: (
                    daemon._status_writes.pop(DRAIN_KEY, None)
                    if daemon._status_writes.get(DRAIN_KEY) is t
                    else None
                )
            )

        writer = _WRITERS[daemon] = StateWriter(daemon.state, track)
    try:
        daemon._gxo_state_writer = writer  # type: ignore[attr-defined]
    except AttributeError:  # an object without a __dict__: the weak-key table only
        pass
    return writer
