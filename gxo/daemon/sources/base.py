"""The event-source interface of the ``event_driven`` lifecycle (docs: DAEMON.md §6).

A source turns a broker subscription into :class:`Delivery` objects, one per message;
the reconciler (:mod:`gxo.daemon.reconcile_events`) pulls them with ``get()``, starts
one instance per event and acks it after the instance ended (``nak`` when it Failed).
Back-pressure is by not calling ``get()``: a source must not read ahead of its consumer
by more than about ``max_concurrency`` messages.

Each source module registers its URL scheme(s) with :func:`register_source` at import;
:func:`open_source` imports the module of a scheme lazily, so a broker's client library
is imported only by daemons that use it.

Two sources live inside the daemon rather than on a broker: ``webhook:/PATH`` (requests to
the daemon's ``--http`` listener) and ``workload:NAME`` (records of another workload's
output stream). Their factories are registered with ``contextual=True`` and receive a
:class:`SourceContext`: the daemon's :class:`~gxo.daemon.sources.hub.SourceHub` and a view
of the reconciler's queue. The other factories are called exactly as before.
"""

from __future__ import annotations

import base64
import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from gxo.daemon.logsetup import REDACTED, redact_url
from gxo.errors import GxoError

__all__ = [
    "AtMostOnce",
    "Delivery",
    "Event",
    "EventSource",
    "SourceContext",
    "SourceError",
    "decode_payload",
    "now_iso",
    "open_source",
    "register_source",
]


class SourceError(GxoError):
    """A source cannot be opened or read: the message names the (redacted) URL."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Event:
    id: str  # broker message id / stream entry id / sequence: stable across redelivery
    source: str  # the source URL with credentials redacted
    subject: str  # subject / topic / stream key / routing key / path
    data: Any  # decoded JSON if the payload is JSON, else text; None for bytes (data_b64)
    headers: dict[str, str] = field(default_factory=dict)
    received_at: str = field(default_factory=now_iso)  # ISO 8601 UTC
    data_b64: str | None = None  # base64 of a payload that is not UTF-8 text
    # Source-specific keys beside the standard ones (webhook: ``method``, ``query``).
    extra: dict[str, Any] = field(default_factory=dict)

    def as_template_value(self) -> dict[str, Any]:
        """What templates see as ``_gxo.event``."""
        value: dict[str, Any] = {**self.extra}
        value.update(
            {
                "id": self.id,
                "source": self.source,
                "subject": self.subject,
                "data": self.data,
                "headers": dict(self.headers),
                "received_at": self.received_at,
            }
        )
        if self.data_b64 is not None:
            value["data_b64"] = self.data_b64
        return value


@runtime_checkable
class Delivery(Protocol):
    event: Event

    async def ack(self) -> None:
        """After the instance ended (any status but Failed)."""

    async def nak(self, delay: float | None = None) -> None:
        """Failed: redeliver later (a no-op where the broker cannot)."""


class AtMostOnce:
    """The delivery of a source that cannot deliver again (core NATS, a webhook request,
    a workload's record): nothing to acknowledge, nothing to redeliver."""

    __slots__ = ("event",)

    def __init__(self, event: Event) -> None:
        self.event = event

    async def ack(self) -> None:
        return None

    async def nak(self, delay: float | None = None) -> None:
        return None


@runtime_checkable
class EventSource(Protocol):
    async def start(self) -> None:
        """Connect/subscribe; raise :class:`SourceError` (clear, credentials redacted)."""

    async def get(self) -> Delivery:
        """Wait for the next delivery (no unbounded read-ahead: prefetch <= max_concurrency)."""

    async def close(self) -> None:
        """Idempotent; cancels internal tasks, closes connections."""


def decode_payload(payload: bytes) -> tuple[Any, str | None]:
    """``(data, data_b64)``: JSON when the payload parses, else text, else base64 bytes."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None, base64.b64encode(payload).decode("ascii")
    if text.strip():
        try:
            return json.loads(text), None
        except ValueError:
            pass
    return text, None


@dataclass
class SourceContext:
    """What a daemon-internal source (``webhook:``, ``workload:``) needs beyond its URL.

    ``hub``: the daemon's :class:`~gxo.daemon.sources.hub.SourceHub` (webhook router,
    stream taps). ``room()``: how many more events the reconciler's queue takes now;
    ``count(key)``: adds one to a counter of the reconciler's status (``received``,
    ``dropped``, ``unauthorized``). ``capacity`` and ``overflow``: the lifecycle's
    ``queue`` and ``overflow``.
    """

    playbook: str
    workload: str
    hub: Any = None
    overflow: str = "block"
    capacity: int = 1000
    room: Callable[[], int] = field(default=lambda: 1)
    count: Callable[[str], None] = field(default=lambda key: None)


SourceFactory = Callable[..., EventSource]
# factory(url, *, name: str, max_concurrency: int, group: str | None) -> EventSource;
# a contextual one also takes ``context: SourceContext | None``.
_FACTORIES: dict[str, SourceFactory] = {}
_CONTEXTUAL: set[str] = set()
# Scheme → module registering it; imported on first use so client libraries stay lazy.
_MODULES: dict[str, str] = {
    "nats": "gxo.daemon.sources.nats",
    "nats+jetstream": "gxo.daemon.sources.nats",
    "redis": "gxo.daemon.sources.redis_streams",
    "mqtt": "gxo.daemon.sources.mqtt",
    "amqp": "gxo.daemon.sources.amqp",
    "file": "gxo.daemon.sources.files",
    "webhook": "gxo.daemon.sources.webhook",
    "workload": "gxo.daemon.sources.workload",
}


def register_source(scheme: str, factory: SourceFactory, *, contextual: bool = False) -> None:
    """``contextual``: the factory also takes ``context=`` (a :class:`SourceContext`)."""
    _FACTORIES[scheme.lower()] = factory
    if contextual:
        _CONTEXTUAL.add(scheme.lower())


_QUERY_SECRET = re.compile(r"(?P<key>[?&](?:secret|password|token)=)[^&#]*", re.I)


def _shown(url: str) -> str:
    """``url`` fit for a message: credentials of the authority and of the query
    (``?secret=`` of a webhook) redacted."""
    return _QUERY_SECRET.sub(lambda m: m.group("key") + REDACTED, redact_url(url))


def source_scheme(url: str) -> str:
    return urlsplit(url).scheme.lower()


def open_source(
    url: str,
    *,
    name: str,
    max_concurrency: int = 4,
    group: str | None = None,
    context: SourceContext | None = None,
) -> EventSource:
    """Build (not start) the source for ``url``; unknown schemes are a :class:`SourceError`.

    ``context`` reaches only the factories registered ``contextual``."""
    scheme = source_scheme(url)
    if scheme not in _FACTORIES and scheme in _MODULES:
        try:
            importlib.import_module(_MODULES[scheme])
        except ImportError as exc:
            raise SourceError(
                f"event source {_shown(url)!r}: cannot load the {scheme!r} source: {exc}",
                workload=name,
            ) from exc
    factory = _FACTORIES.get(scheme)
    if factory is None:
        known = ", ".join(sorted(set(_FACTORIES) | set(_MODULES)))
        raise SourceError(
            f"event source {_shown(url)!r}: unknown scheme {scheme!r} (known: {known})",
            workload=name,
        )
    extra: dict[str, Any] = {"context": context} if scheme in _CONTEXTUAL else {}
    try:
        return factory(url, name=name, max_concurrency=max_concurrency, group=group, **extra)
    except SourceError:
        raise
    except (ValueError, TypeError) as exc:
        raise SourceError(f"event source {_shown(url)!r}: {exc}", workload=name) from exc
