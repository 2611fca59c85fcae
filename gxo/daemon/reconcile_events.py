"""``event_driven``: one instance per event of a source (DAEMON.md §6, issue 10).

Two kinds of task per workload:

- the *reader* pulls deliveries from the source (:mod:`gxo.daemon.sources.base`),
  evaluates ``filter`` and appends the accepted ones to a bounded queue of ``queue``
  deliveries. When the queue is full, ``overflow`` decides: ``block`` stops calling
  ``get()`` (the broker keeps what waits: memory stays flat), ``drop_new`` acks and
  drops the incoming delivery, ``drop_oldest`` acks and drops the oldest queued one.
  A dropped or filtered-out event is *acked*: dropping is the user's choice, and an
  unacked one would come back forever. Both are counted.
- one *instance* task per event, at most ``max_concurrency`` at once, started as soon as
  a slot is free (no dispatcher task: the reader and each ending instance start the
  next ones). The delivery is acked after the instance ended, unless it ``Failed``:
  then it is nak'ed with a back-off delay (the broker redelivers it later; the count of
  consecutive failures drives the delay, reset by a success).

A source error (the broker went away) does not end the workload: the reader closes the
source, waits a capped back-off and opens it again; ``reason`` says what happened.

Counters are in the status (``received, filtered, dropped, in_flight, queued, completed,
failed, last_event_at``); they change on every event, so they are published to
``on_status`` at most every :data:`PUBLISH_EVERY` seconds (a status write per event
would cost a database write per event); a change of ``status``/``reason`` is published
at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from gxo.config.models import OverflowStrategy
from gxo.daemon.logsetup import add_secret, redact
from gxo.daemon.policy import BackoffPolicy
from gxo.daemon.reconcile_base import STOP_MARGIN, InstanceOutcome, ReconcilerBase
from gxo.daemon.sources.base import (
    Delivery,
    EventSource,
    SourceContext,
    now_iso,
    open_source,
)

__all__ = ["PUBLISH_EVERY", "EventDrivenReconciler"]

log = logging.getLogger("gxo.daemon")

PUBLISH_EVERY = 0.5  # seconds between two publications of changed counters
ACK_TIMEOUT = 5.0  # an ack/nak at stop must not hold the stop forever
# Re-opening a failed source: capped exponential back-off (the defaults of supervise's).
REOPEN = BackoffPolicy(initial=1.0, max=30.0, factor=2.0, jitter=0.2)
# The nak delay of a failed instance, by consecutive failures.
NAK = BackoffPolicy(initial=1.0, max=60.0, factor=2.0, jitter=0.2)

SourceOpener = Callable[..., EventSource]


class EventDrivenReconciler(ReconcilerBase):
    kind = "event_driven"

    def __init__(
        self,
        playbook: str,
        workload: Any,
        *,
        open_source: SourceOpener = open_source,
        group: str | None = None,
        variables: dict[str, Any] | None = None,
        hub: Any = None,
        **kwargs: Any,
    ) -> None:
        """``run_instance`` is called as ``run_instance(root, *, run_id, reason, event)``.
        ``open_source``: builds the source (tests pass an in-memory one). ``group``: the
        consumer group shared by a fleet (default: the source's choice, the workload's
        name). ``variables``: the playbook's variables, visible to ``filter``. ``hub``: the
        daemon's :class:`~gxo.daemon.sources.hub.SourceHub` (webhook: and workload:)."""
        super().__init__(playbook, workload, **kwargs)
        lc = self.lifecycle
        self.url: str = lc.source or ""
        self.max_concurrency = int(lc.max_concurrency or 4)
        self.capacity = int(lc.queue or 1000)
        self.overflow = OverflowStrategy(lc.overflow or OverflowStrategy.block)
        self.filter = lc.filter
        self.variables = dict(variables or {})
        self.group = group
        self._open = open_source
        self.hub = hub
        self.source: EventSource | None = None
        self.queue: deque[Delivery] = deque()
        self.instances: set[asyncio.Task[None]] = set()
        self._space = asyncio.Event()  # set while the queue has room (block)
        self._space.set()
        self._reader: asyncio.Task[None] | None = None
        self._publish: asyncio.TimerHandle | None = None
        self._failures = 0  # consecutive failed instances: the nak delay
        self.counters = {
            "received": 0,
            "filtered": 0,
            "dropped": 0,
            "completed": 0,
            "failed": 0,
        }
        self._status.update(self.counters, in_flight=0, queued=0, last_event_at=None)
        self._templates: Any = None

    # -- public -------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        self._refresh()
        return dict(self._status)

    async def start(self) -> None:
        if self._reader is not None and not self._reader.done():
            return
        self._stopping = False
        self._set(status="Running", reason=None)
        self._reader = asyncio.create_task(
            self._read(), name=f"gxo-events:{self.playbook}/{self.name}"
        )

    async def stop(self, reason: str = "stopped by request") -> None:
        self._stopping = True
        if self._reader is not None:
            await self._cancel_and_wait([self._reader], STOP_MARGIN)
            self._reader = None
        await self._cancel_and_wait(list(self.instances), self.stop_timeout + STOP_MARGIN)
        # Queued events never started: hand them back now rather than at the broker's
        # ack timeout.
        queued = list(self.queue)
        self.queue.clear()
        for delivery in queued:
            await self._settle(delivery, ack=False, delay=0.0)
        await self._close_source()
        if self._publish is not None:
            self._publish.cancel()
            self._publish = None
        self._refresh()
        self._set(status="Stopped", reason=reason)

    # -- reading ------------------------------------------------------------------------

    async def _read(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                if self.source is None:
                    source = self._open(
                        self._resolved_url(),
                        name=self.name,
                        max_concurrency=self.max_concurrency,
                        group=self.group,
                        **self._source_context(),
                    )
                    self.source = source
                    await source.start()
                    if attempt:
                        self._set(status="Running", reason=None)
                    attempt = 0
                await self._pump(self.source)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the source failed: reopen it after a back-off
                delay = REOPEN.delay(attempt, self.rng)
                attempt += 1
                message = redact(str(exc) or type(exc).__name__)
                log.warning(
                    "%s/%s: event source failed: %s (retrying in %.1fs)",
                    self.playbook,
                    self.name,
                    message,
                    delay,
                )
                self._set(
                    status="Running",
                    reason=f"event source unavailable: {message}; retrying in {delay:.1f}s",
                )
                await self._close_source()
                await asyncio.sleep(delay)

    def _source_context(self) -> dict[str, Any]:
        """``context=`` for the daemon-internal sources (only when the daemon gave a hub:
        a test's in-memory opener takes the four keywords alone)."""
        if self.hub is None:
            return {}
        if self.url.lower().startswith("webhook:"):
            self.counters.setdefault("unauthorized", 0)  # failed signature checks

        def count(key: str) -> None:
            self.counters[key] = self.counters.get(key, 0) + 1
            if key == "received":
                self._status["last_event_at"] = now_iso()
            self._changed()

        return {
            "context": SourceContext(
                playbook=self.playbook,
                workload=self.name,
                hub=self.hub,
                overflow=self.overflow.value,
                capacity=self.capacity,
                room=lambda: self.capacity - len(self.queue),
                count=count,
            )
        }

    def _resolved_url(self) -> str:
        """The source URL with its templates rendered (``secret('…')`` for credentials).

        Rendered at each (re)open, so a rotated secret is picked up; every secret value
        read is registered with the daemon's log redaction."""
        from gxo.template import SecretRegistry, TemplateEngine, is_template
        from gxo.template.secrets import env_provider

        if not is_template(self.url):
            return self.url
        seen: list[str] = []

        def provider(name: str) -> str | None:
            value = env_provider(name)
            if value:
                seen.append(value)
            return value

        try:
            url = TemplateEngine(SecretRegistry(provider)).render(
                self.url, self.variables, path="lifecycle.source", workload=self.name
            )
        finally:
            for value in seen:
                add_secret(value)
        return str(url)

    async def _pump(self, source: EventSource) -> None:
        while True:
            if self.overflow == OverflowStrategy.block:
                while len(self.queue) >= self.capacity:
                    self._space.clear()
                    await self._space.wait()
            delivery = await source.get()
            self.counters["received"] += 1
            self._status["last_event_at"] = now_iso()
            if not self._accepts(delivery):
                self.counters["filtered"] += 1
                await self._settle(delivery, ack=True)
                self._changed()
                continue
            if len(self.queue) >= self.capacity:
                if self.overflow == OverflowStrategy.drop_new:
                    self.counters["dropped"] += 1
                    await self._settle(delivery, ack=True)
                    self._changed()
                    continue
                if self.overflow == OverflowStrategy.drop_oldest:
                    oldest = self.queue.popleft()
                    self.counters["dropped"] += 1
                    await self._settle(oldest, ack=True)
            self.queue.append(delivery)
            self._dispatch()
            self._changed()

    def _accepts(self, delivery: Delivery) -> bool:
        condition = self.filter
        if condition is None or condition is True:
            return True
        if condition is False:
            return False
        if self._templates is None:
            from gxo.template import TemplateEngine

            self._templates = TemplateEngine()
        event = delivery.event.as_template_value()
        context = {**self.variables, "event": event, "_gxo": {"event": event}}
        try:
            return bool(
                self._templates.truthy(
                    condition, context, path="lifecycle.filter", workload=self.name
                )
            )
        except Exception as exc:  # a filter failing on one event drops that event only
            message = redact(str(exc))
            log.warning(
                "%s/%s: filter failed on event %s: %s",
                self.playbook,
                self.name,
                delivery.event.id,
                message,
            )
            self._status["reason"] = f"filter failed on event {delivery.event.id}: {message}"
            return False

    # -- instances ----------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start queued events while a slot is free."""
        while self.queue and len(self.instances) < self.max_concurrency and not self._stopping:
            delivery = self.queue.popleft()
            task = asyncio.create_task(
                self._instance(delivery), name=f"gxo-instance:{self.playbook}/{self.name}"
            )
            self.instances.add(task)
            task.add_done_callback(self._ended)
        if len(self.queue) < self.capacity:
            self._space.set()

    def _ended(self, task: asyncio.Task[None]) -> None:
        self.instances.discard(task)
        if not self._stopping:
            self._dispatch()
            self._changed()

    async def _instance(self, delivery: Delivery) -> None:
        event = delivery.event
        run_id = self._run_id()
        self._status["last_run_id"] = run_id
        started = self.clock()
        run: Any = self.run_instance  # takes event= (see __init__), beyond RunInstance
        try:
            outcome = await run(
                self.name,
                run_id=run_id,
                reason=f"event {event.id} from {event.source}",
                event=event.as_template_value(),
            )
        except asyncio.CancelledError:
            # Stopped before the end: the event goes back to the broker at once.
            await asyncio.shield(self._settle(delivery, ack=False, delay=0.0))
            raise
        except Exception as exc:  # a bug in the instance must not end the reconciler
            log.exception("instance %s of %s/%s raised", run_id, self.playbook, self.name)
            outcome = InstanceOutcome("Failed", run_id, f"{type(exc).__name__}: {exc}")
        if not isinstance(outcome, InstanceOutcome):
            outcome = InstanceOutcome("Failed", run_id, f"run_instance returned {outcome!r}")
        outcome.started_at = outcome.started_at or started
        self._status["last_exit"] = outcome.last_exit
        if outcome.status == "Failed":
            self.counters["failed"] += 1
            delay = NAK.delay(self._failures, self.rng)
            self._failures += 1
            self._status["reason"] = (
                f"instance {run_id} for event {event.id} failed: {outcome.error}"
                f" (nak, redelivery in {delay:.1f}s)"
            )
            await self._settle(delivery, ack=False, delay=delay)
        else:
            self.counters["completed"] += 1
            self._failures = 0
            await self._settle(delivery, ack=True)

    async def _settle(self, delivery: Delivery, *, ack: bool, delay: float | None = None) -> None:
        """Ack or nak one delivery; a broker error is logged (it will redeliver)."""
        try:
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for swallows a
            # cancellation that lands as the ack completes, and the reader then kept
            # reading after stop() had cancelled it.
            async with asyncio.timeout(ACK_TIMEOUT):
                if ack:
                    await delivery.ack()
                else:
                    await delivery.nak(delay)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "%s/%s: %s of event %s failed: %s",
                self.playbook,
                self.name,
                "ack" if ack else "nak",
                delivery.event.id,
                redact(str(exc) or type(exc).__name__),
            )

    async def _close_source(self) -> None:
        source, self.source = self.source, None
        if source is not None:
            try:
                async with asyncio.timeout(ACK_TIMEOUT):
                    await source.close()
            except Exception as exc:
                log.debug("%s/%s: closing the source: %s", self.playbook, self.name, exc)

    # -- status -------------------------------------------------------------------------

    def _set(self, **changes: Any) -> None:
        self._refresh()  # a published status carries current counters
        super()._set(**changes)

    def _refresh(self) -> None:
        self._status.update(self.counters, in_flight=len(self.instances), queued=len(self.queue))

    def _changed(self) -> None:
        """Counters changed: publish them soon (at most every PUBLISH_EVERY seconds)."""
        if self._publish is None and self.on_status is not None and not self._stopping:
            loop = asyncio.get_running_loop()
            self._publish = loop.call_later(PUBLISH_EVERY, self._flush)

    def _flush(self) -> None:
        self._publish = None
        self._refresh()
        if self.on_status is not None:
            with contextlib.suppress(Exception):  # a broken listener must not stop the events
                self.on_status(dict(self._status))
