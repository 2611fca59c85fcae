"""The daemon's events and logs feeds (a part of :class:`gxo.daemon.core.Daemon`).

Every engine event of every instance goes to the events feed (``gxo ctl events``,
``StreamEvents``) and each log line also to the logs feed, per workload (``gxo ctl
logs``, ``GetLogs``); both are bounded rings (:class:`gxo.daemon.feeds.Feed`) that
followers read live.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from gxo.engine.events import Event, EventKind

if TYPE_CHECKING:
    from gxo.daemon.feeds import Feed

__all__ = ["FeedsMixin"]


class FeedsMixin:
    """``publish``, ``stream_events`` and ``stream_logs`` of the daemon."""

    events: Feed
    logs: Feed
    _seq: int

    if TYPE_CHECKING:

        def resolve(self, ref: str) -> tuple[str, str]: ...

    def publish(self, playbook: str, run_id: str, event: Event) -> None:
        """An engine event → the events feed (and the logs feed for a log line)."""
        self._seq += 1
        entry = {
            "seq": self._seq,
            "time": event.time,
            "kind": event.kind._value_,  # its text (str() goes through Enum.__str__)
            "playbook": playbook,
            "workload": event.workload or "",
            "run_id": run_id,
            "data": event.data,
        }
        self.events.push(entry)
        if event.kind is EventKind.LOG and event.workload:
            line = {
                "seq": self._seq,
                "time": event.time,
                "playbook": playbook,
                "workload": event.workload,
                "run_id": run_id,
                "stream": event.data.get("stream", "log"),
                "level": event.data.get("level", "info"),
                "line": event.data.get("line", ""),
            }
            self.logs.push(line, key=(playbook, event.workload))

    def publish_raw(
        self, kind: str, playbook: str, workload: str, run_id: str, data: dict[str, Any]
    ) -> None:
        """A daemon's own event (``workload_paused``) → the events feed."""
        self._seq += 1
        entry = {
            "seq": self._seq,
            "time": time.time(),
            "kind": kind,
            "playbook": playbook,
            "workload": workload,
            "run_id": run_id,
            "data": data,
        }
        self.events.push(entry)

    def stream_events(
        self, playbook: str, workload: str, follow: bool, tail: int
    ) -> AsyncIterator[dict[str, Any]]:
        def match(e: dict[str, Any]) -> bool:
            return (not playbook or e["playbook"] == playbook) and (
                not workload or e["workload"] == workload
            )

        return self.events.read(match, 200 if tail == 0 else max(tail, 0), follow)

    def stream_logs(self, ref: str, tail: int, follow: bool) -> AsyncIterator[dict[str, Any]]:
        key = self.resolve(ref)

        def match(e: dict[str, Any]) -> bool:
            return (e["playbook"], e["workload"]) == key

        return self.logs.read(match, 100 if tail == 0 else max(tail, 0), follow, key=key)
