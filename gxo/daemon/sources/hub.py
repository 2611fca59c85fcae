"""What one daemon shares with its daemon-internal event sources, and their apply checks.

:class:`SourceHub` holds the webhook router (set when the daemon listens with ``--http``)
and the stream taps of ``workload:`` sources. :meth:`SourceHub.check` runs at apply,
before anything is stored: a ``webhook:`` source without ``--http``, a webhook path
served twice, or a ``workload:NAME`` naming no workload of the playbook is refused with
the file and line of the ``source``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gxo.config.loader import LoadedPlaybook
from gxo.config.models import Policy
from gxo.daemon.sources.base import SourceError, source_scheme
from gxo.daemon.sources.webhook import WebhookRouter, check_webhook_url, webhook_path
from gxo.daemon.sources.workload import StreamTaps, producer_name

__all__ = ["SourceHub"]


def _event_sources(loaded: LoadedPlaybook) -> Iterator[tuple[Any, str, str]]:
    """(workload, scheme, url) of every event_driven workload."""
    for w in loaded.playbook.workloads:
        lc = w.lifecycle
        if lc.policy == Policy.event_driven and lc.source:
            yield w, source_scheme(lc.source), lc.source


def _webhook_paths(loaded: LoadedPlaybook) -> dict[str, str]:
    """path -> workload, for a playbook already applied (its URLs passed the check)."""
    paths: dict[str, str] = {}
    for w, scheme, url in _event_sources(loaded):
        if scheme == "webhook":
            try:
                paths[webhook_path(url)] = w.name
            except ValueError:
                continue
    return paths


@dataclass
class SourceHub:
    webhooks: WebhookRouter | None = None  # None: the daemon has no --http listener
    taps: StreamTaps = field(default_factory=StreamTaps)
    listener: Any = None  # the HttpListener serving ``webhooks``

    async def close(self) -> None:
        """Daemon shutdown: the HTTP listener stops first (no request starts anything)."""
        listener, self.listener = self.listener, None
        if listener is not None:
            await listener.close()

    def check(
        self, loaded: LoadedPlaybook, applied: Mapping[str, Any], *, listening: bool = True
    ) -> None:
        """Raise a :class:`SourceError` (with the source's location) for a playbook that
        cannot be served; else :meth:`declare` it. ``applied``: name →
        :class:`~gxo.daemon.core.Applied` of the playbooks the daemon holds.
        ``listening=False``: a fleet member taking up another member's apply does not
        refuse a ``webhook:`` source for want of ``--http`` (the playbook is already
        stored; the workload's status then says what is missing)."""
        name = loaded.playbook.name
        others: dict[str, str] = {}
        for other, app in applied.items():
            if other != name:
                for path, workload in _webhook_paths(app.loaded).items():
                    others[path] = f"{other}/{workload}"
        names = {w.name for w in loaded.playbook.workloads}
        mine: dict[str, str] = {}
        for w, scheme, url in _event_sources(loaded):
            where = loaded.workload_location(w.name, "lifecycle", "source")

            def fail(message: str, w: Any = w, where: Any = where) -> SourceError:
                return SourceError(message, location=where, workload=w.name)

            if scheme == "webhook":
                try:
                    path = check_webhook_url(url)
                except ValueError as exc:
                    raise fail(str(exc)) from None
                if self.webhooks is None and listening:
                    raise fail(
                        f"source webhook:{path} needs the daemon's HTTP listener: start "
                        "`gxo daemon` with --http HOST:PORT (e.g. --http 127.0.0.1:8080)"
                    )
                owner = mine.get(path) or others.get(path)
                if owner is not None:
                    raise fail(f"webhook path {path} is already served by workload '{owner}'")
                mine[path] = f"{name}/{w.name}"
            elif scheme == "workload":
                try:
                    producer = producer_name(url)
                except ValueError as exc:
                    raise fail(str(exc)) from None
                if producer not in names:
                    raise fail(
                        f"source workload:{producer}: no workload '{producer}' in playbook "
                        f"'{name}' (a workload: source reads a workload of the same playbook)"
                    )
                if producer == w.name:
                    raise fail(f"source workload:{producer}: a workload cannot read its own output")
        self.declare(loaded)

    def declare(self, loaded: LoadedPlaybook) -> None:
        """The playbook's ``workload:`` consumers, so that a producer's run started before
        its consumer's source (at apply, at daemon start) is tapped all the same."""
        consumers: dict[str, tuple[str, int, int, str]] = {}
        for w, scheme, url in _event_sources(loaded):
            if scheme != "workload":
                continue
            try:
                producer = producer_name(url)
            except ValueError:
                continue
            lc = w.lifecycle
            consumers[w.name] = (
                producer,
                int(lc.max_concurrency or 4),
                int(lc.queue or 1000),
                str(getattr(lc.overflow, "value", lc.overflow) or "block"),
            )
        self.taps.declare(loaded.playbook.name, consumers)

    def forget(self, playbook: str) -> None:
        """The playbook was removed: its parked taps go."""
        self.taps.forget(playbook)
