"""Human in the loop: how a paused workload (``control:wait_for_signal``) gets its answer.

The module asks the run's :class:`SignalBroker` — whoever can answer in this setting:

- ``gxo run`` on a terminal: a prompt on the terminal (``gxo.console_prompt``);
- ``gxo run --resume-payload-file F``: :class:`PayloadFileBroker`, non-interactive;
- ``gxo ui`` / ``gxo repl``: the workbench's form or ``:resume`` command
  (:class:`QueueBroker`, answered from the front end);
- the daemon: a persisted pause with a single-use token.

Every broker decides a pause **exactly once**: the answer, a rejection or the timeout —
whichever comes first wins, and later attempts get :class:`PauseClosed` naming what
happened. A payload that fails ``payload_schema`` is refused (:class:`InvalidPayload`)
and the workload stays paused.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from gxo.errors import GxoError

__all__ = [
    "Announce",
    "InvalidPayload",
    "NoAnswer",
    "PauseClosed",
    "PauseRequest",
    "PayloadFileBroker",
    "Pending",
    "QueueBroker",
    "Rejected",
    "Resolution",
    "SignalBroker",
    "check_payload",
    "load_payload_file",
    "now_iso",
]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class NoAnswer(GxoError):
    """Nobody can answer this pause here (``gxo run`` without a terminal)."""


class InvalidPayload(GxoError):
    """The payload does not match ``payload_schema``; the workload stays paused."""


class PauseClosed(GxoError):
    """The pause was already decided (resumed, rejected or timed out)."""


class Rejected(GxoError):
    """A human rejected the pause: the workload fails with this reason."""

    def __init__(self, reason: str, rejected_by: str) -> None:
        super().__init__(f"rejected by {rejected_by}: {reason}")
        self.reason = reason
        self.rejected_by = rejected_by


@dataclass(frozen=True)
class PauseRequest:
    """What a paused workload waits for."""

    run_id: str
    workload: str
    prompt: str
    schema: Mapping[str, Any] | None = None
    timeout: float | None = None
    on_timeout: str = "fail"  # fail | continue | default
    default_payload: Any = None
    approvers: tuple[str, ...] = ()

    @property
    def expires_at(self) -> float | None:
        return None if self.timeout is None else time.time() + self.timeout


@dataclass(frozen=True)
class Resolution:
    """How a pause ended: a payload from someone, or the timeout (``timed_out``)."""

    payload: Any
    resumed_by: str | None
    resumed_at: str = field(default_factory=now_iso)
    timed_out: bool = False


Announce = Callable[..., None]


class SignalBroker(Protocol):
    """Answers pauses. ``wait`` returns the decision or raises :class:`Rejected`
    (or :class:`NoAnswer` when nobody can answer here). It owns the timeout: a broker
    that persists pauses (the daemon) must decide resume-versus-timeout itself.

    ``announce(**data)`` makes the workload ``Paused`` (a ``workload_status`` event
    carrying ``data``: prompt, schema, expires_at, a token where there is one). The
    broker calls it once the pause can be answered — never before — so nobody can see
    a pause they cannot yet resume."""

    async def wait(self, request: PauseRequest, announce: Announce) -> Resolution: ...


def check_payload(schema: Mapping[str, Any] | None, payload: Any) -> None:
    """Validate ``payload`` against ``schema`` (JSON Schema); :class:`InvalidPayload` if not."""
    if not schema:
        return
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(payload), key=lambda e: list(e.path))
    if errors:
        details = "; ".join(
            f"{'/'.join(str(p) for p in e.path) or '(payload)'}: {e.message}" for e in errors[:5]
        )
        raise InvalidPayload(f"payload does not match payload_schema: {details}")


def load_payload_file(path: str | Path) -> Any:
    """A ``--resume-payload-file``: JSON or YAML; a clear error when unreadable or invalid."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise NoAnswer(f"--resume-payload-file {p}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except ValueError:
        pass
    from gxo.config.yamlsafe import load_yaml_text

    try:
        return load_yaml_text(text, str(p))
    except GxoError as exc:
        raise NoAnswer(f"--resume-payload-file {p}: not JSON or YAML: {exc}") from None


class PayloadFileBroker:
    """Answers from a file, at once: ``gxo run --resume-payload-file F``.

    The file holds the payload. When several workloads wait, a mapping with an entry
    per waiting workload name (and nothing else) answers each its own entry.
    """

    def __init__(self, payload: Any, *, source: str, waiting: set[str] | None = None) -> None:
        self.payload = payload
        self.source = source
        self.per_workload = (
            isinstance(payload, dict)
            and bool(waiting)
            and bool(payload)
            and set(payload) <= set(waiting or ())
        )

    async def wait(self, request: PauseRequest, announce: Announce) -> Resolution:
        announce(answered_by=self.source)
        if self.per_workload:
            if request.workload not in self.payload:
                raise NoAnswer(f"{self.source} has no entry for workload {request.workload!r}")
            payload = self.payload[request.workload]
        else:
            payload = self.payload
        try:
            check_payload(request.schema, payload)
        except InvalidPayload as exc:
            raise NoAnswer(f"{self.source}: {exc}") from None
        return Resolution(payload, resumed_by=f"file:{self.source}")


@dataclass
class Pending:
    """One open pause of a :class:`QueueBroker`."""

    request: PauseRequest
    since: float
    future: asyncio.Future[Resolution]


class QueueBroker:
    """Pauses answered by a front end (the TUI's form, the REPL's ``:resume``).

    ``pending`` lists the open pauses; :meth:`resume` / :meth:`reject` decide one. The
    timeout is decided here too, under the same rule: the first decision wins.
    """

    def __init__(self, identity: str = "local") -> None:
        self.identity = identity
        self.pending: dict[str, Pending] = {}
        self.changed = asyncio.Event()

    async def wait(self, request: PauseRequest, announce: Announce) -> Resolution:
        loop = asyncio.get_running_loop()
        if request.workload in self.pending:
            raise PauseClosed(f"workload {request.workload!r} is already paused")
        future: asyncio.Future[Resolution] = loop.create_future()
        self.pending[request.workload] = Pending(request, time.time(), future)
        announce()
        self.changed.set()
        timer = None
        if request.timeout is not None:
            timer = loop.call_later(request.timeout, self._expire, request.workload, future)
        try:
            return await future
        finally:
            if timer is not None:
                timer.cancel()
            if self.pending.get(request.workload, None) is not None and (
                self.pending[request.workload].future is future
            ):
                del self.pending[request.workload]
            self.changed.set()

    def _expire(self, workload: str, future: asyncio.Future[Resolution]) -> None:
        if not future.done():
            future.set_result(Resolution(None, resumed_by=None, timed_out=True))

    def _open(self, workload: str) -> Pending:
        pending = self.pending.get(workload)
        if pending is None:
            raise PauseClosed(f"workload {workload!r} is not paused")
        if pending.future.done():
            raise PauseClosed(f"workload {workload!r} was already {_outcome(pending.future)}")
        return pending

    def resume(self, workload: str, payload: Any, *, by: str | None = None) -> Resolution:
        """Answer ``workload``'s pause; :class:`InvalidPayload` leaves it paused."""
        pending = self._open(workload)
        check_payload(pending.request.schema, payload)
        resolution = Resolution(payload, resumed_by=by or self.identity)
        pending.future.set_result(resolution)
        return resolution

    def reject(self, workload: str, reason: str, *, by: str | None = None) -> None:
        pending = self._open(workload)
        pending.future.set_exception(Rejected(reason or "rejected", by or self.identity))


def _outcome(future: asyncio.Future[Resolution]) -> str:
    if future.cancelled():
        return "cancelled"
    if future.exception() is not None:
        return "rejected"
    return "timed out" if future.result().timed_out else "resumed"
