"""Who answers a paused workload from the UI: the seam between the form and a run.

The Resume tab's form (:class:`~gxo.tui.screens.approval.ApprovalScreen`) checks the
payload against the schema, then hands it to the session's ``approvals`` — an object
with the :class:`Approvals` methods. A local run (``gxo ui PLAYBOOK``) answers through
its own :class:`~gxo.engine.signals.QueueBroker` (:class:`LocalApprovals`); an attached
daemon (``gxo ui --attach``) answers with its ``ResumeWorkload`` / ``RejectWorkload``
RPCs, by token when the daemon sent one, else by workload (:class:`RemoteApprovals`).
A session without ``approvals`` shows pauses it cannot answer, and says so.

Errors are :class:`~gxo.errors.GxoError`: ``InvalidPayload`` (the workload stays
paused), ``PauseClosed`` (already resumed, rejected or timed out); the form shows them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gxo.engine.signals import QueueBroker
    from gxo.tui.model import PausedView

__all__ = ["Approvals", "LocalApprovals", "RemoteApprovals"]


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


class RemoteApprovals:
    """The pauses of an attached daemon, decided by its RPCs (the identity of the ctl
    client: the unix socket's local identity, or a TLS client certificate's CN).

    ``entry.workload`` is ``PLAYBOOK/WORKLOAD``; without a token the daemon finds the
    workload's one open pause. A daemon's refusal becomes ``InvalidPayload`` (the
    payload fails the schema: still paused) or ``PauseClosed`` (decided meanwhile, not
    an approver, unknown token), with the daemon's message."""

    def __init__(self, client: Any, on_change: Callable[[], None] | None = None) -> None:
        self.client = client
        self.on_change = on_change

    def _selector(self, entry: PausedView) -> dict[str, str]:
        if entry.token:
            return {"token": entry.token}
        return {"workload": entry.workload}

    async def _call(self, method: str, request: Any) -> Any:
        from gxo.ctl.client import CtlError
        from gxo.engine.signals import InvalidPayload, PauseClosed

        try:
            reply = await asyncio.to_thread(self.client.call, method, request)
        except CtlError as exc:
            raise (InvalidPayload if exc.exit_code == 2 else PauseClosed)(exc.message) from None
        if self.on_change is not None:
            self.on_change()
        return reply

    async def resume(self, entry: PausedView, payload: Any) -> str:
        from gxo.ctl.client import pb

        request = pb.ResumeWorkloadRequest(
            payload_json=json.dumps(payload), **self._selector(entry)
        )
        reply = await self._call("ResumeWorkload", request)
        return f"{entry.workload} resumed by {reply.decided_by}"

    async def reject(self, entry: PausedView, reason: str) -> str:
        from gxo.ctl.client import pb

        request = pb.RejectWorkloadRequest(reason=reason, **self._selector(entry))
        await self._call("RejectWorkload", request)
        return f"{entry.workload} rejected: {reason}"
