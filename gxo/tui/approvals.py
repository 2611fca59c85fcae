"""Who answers a paused workload from the UI: the seam between the form and a run.

The Resume tab's form (:class:`~gxo.tui.screens.approval.ApprovalScreen`) checks the
payload against the schema, then hands it to the session's ``approvals`` — an object
with the :class:`Approvals` methods. A local run (``gxo ui PLAYBOOK``) answers through
its own :class:`~gxo.engine.signals.QueueBroker` (:class:`LocalApprovals`); an attached
daemon would answer with its resume call (by token or by run and workload). A session
without ``approvals`` shows pauses it cannot answer, and says so.

Errors are :class:`~gxo.errors.GxoError`: ``InvalidPayload`` (the workload stays
paused), ``PauseClosed`` (already resumed, rejected or timed out); the form shows them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gxo.engine.signals import QueueBroker
    from gxo.tui.model import PausedView

__all__ = ["Approvals", "LocalApprovals"]


class Approvals(Protocol):
    """Answers pauses shown in the UI; each returns a line for a notification."""

    async def resume(self, entry: PausedView, payload: Any) -> str: ...

    async def reject(self, entry: PausedView, reason: str) -> str: ...


class LocalApprovals:
    """The pauses of a run in this process, decided by its :class:`QueueBroker`."""

    def __init__(self, broker: QueueBroker) -> None:
        self.broker = broker

    async def resume(self, entry: PausedView, payload: Any) -> str:
        resolution = self.broker.resume(entry.workload, payload)
        return f"{entry.workload} resumed by {resolution.resumed_by}"

    async def reject(self, entry: PausedView, reason: str) -> str:
        self.broker.reject(entry.workload, reason)
        return f"{entry.workload} rejected: {reason}"
