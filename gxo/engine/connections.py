"""The connection manager: network handles a run holds by ``connection_id``.

One per run (``RunContext.connections``; a daemon instance is a run, so one per
instance). Modules register what they open (a TCP stream, a listening server, an
SSH connection) and hand the returned ``connection_id`` to later workloads in their
summaries or records; whatever is still open when the run ends -- completed, failed
or cancelled -- is closed by ``aclose()``, so a playbook never leaks a socket.

``limit`` bounds the number of handles open at once: registering one more is a
``ModuleError`` (an accepting listener refuses the connection instead of growing
without bound).

::

    cid = ctx.connections.add("tcp", (reader, writer), close=closer, info={"remote_addr": ...})
    reader, writer = ctx.connections.get(cid, "tcp")
    await ctx.connections.close(cid)
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gxo.errors import ModuleError

__all__ = ["DEFAULT_LIMIT", "ConnectionManager"]

DEFAULT_LIMIT = 1024
CLOSE_GRACE = 5.0  # seconds one handle's close may take at run end


@dataclass(slots=True)
class _Entry:
    kind: str
    handle: Any
    close: Callable[[], Awaitable[None]] | None
    key: str | None
    info: dict[str, Any] = field(default_factory=dict)


class ConnectionManager:
    """One per run (RunContext) or daemon instance; closes everything at the end."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("connection limit must be at least 1")
        self.limit = limit
        self._entries: dict[str, _Entry] = {}
        self._keys: dict[tuple[str, str], str] = {}
        self._closed = False

    def add(
        self,
        kind: str,
        handle: Any,
        close: Callable[[], Awaitable[None]] | None = None,
        *,
        key: str | None = None,
        info: dict[str, Any] | None = None,
    ) -> str:
        """Register a handle; returns connection_id (uuid4 str). ModuleError when `limit` open."""
        if self._closed:
            raise ModuleError(f"cannot register a {kind} connection: the run has ended")
        if len(self._entries) >= self.limit:
            raise ModuleError(
                f"too many open connections ({self.limit}): close some with connection:close"
            )
        connection_id = str(uuid.uuid4())
        self._entries[connection_id] = _Entry(kind, handle, close, key, dict(info or {}))
        if key is not None:
            self._keys[(kind, key)] = connection_id
        return connection_id

    def get(self, connection_id: str, kind: str | None = None) -> Any:
        """The handle; ModuleError naming the id for unknown/closed ids or a wrong kind."""
        entry = self._entries.get(str(connection_id))
        if entry is None:
            raise ModuleError(f"unknown or closed connection_id '{connection_id}'")
        if kind is not None and entry.kind != kind:
            raise ModuleError(
                f"connection_id '{connection_id}' is a {entry.kind} connection, not {kind}"
            )
        return entry.handle

    def kind(self, connection_id: str) -> str:
        """The kind a connection was registered with (ModuleError when unknown/closed)."""
        self.get(connection_id)
        return self._entries[str(connection_id)].kind

    def find(self, kind: str, key: str) -> str | None:
        """Pooling: the open connection_id registered with this kind+key (e.g. ssh 'user@host:port')."""
        return self._keys.get((kind, key))

    def info(self, connection_id: str) -> dict[str, Any]:
        """What was registered as ``info`` (plus ``kind``), a copy; ModuleError when unknown."""
        self.get(connection_id)
        entry = self._entries[str(connection_id)]
        return {"kind": entry.kind, **entry.info}

    def ids(self, kind: str | None = None) -> list[str]:
        """The open connection ids (of one kind), oldest first."""
        return [cid for cid, e in self._entries.items() if kind is None or e.kind == kind]

    async def close(self, connection_id: str) -> None:
        """Close one handle and forget it; unknown or already closed ids are a no-op."""
        entry = self._entries.pop(str(connection_id), None)
        if entry is None:
            return
        if entry.key is not None and self._keys.get((entry.kind, entry.key)) == connection_id:
            del self._keys[(entry.kind, entry.key)]
        await _close_handle(entry)

    async def aclose(self) -> None:
        """Close every handle (run end), newest first; errors are swallowed, never leaked."""
        self._closed = True
        while self._entries:
            connection_id = next(reversed(self._entries))
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_GRACE):
                    await self.close(connection_id)
            self._entries.pop(connection_id, None)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, connection_id: object) -> bool:
        return connection_id in self._entries


async def _close_handle(entry: _Entry) -> None:
    if entry.close is not None:
        await entry.close()
        return
    handle = entry.handle
    # A common shape without an explicit closer: an (reader, writer) pair or an object
    # with close()/aclose()/wait_closed().
    if isinstance(handle, tuple) and len(handle) == 2 and hasattr(handle[1], "close"):
        handle = handle[1]
    aclose = getattr(handle, "aclose", None)
    if aclose is not None:
        await aclose()
        return
    close = getattr(handle, "close", None)
    if close is not None:
        result = close()
        if inspect.isawaitable(result):
            await result
    wait_closed = getattr(handle, "wait_closed", None)
    if wait_closed is not None:
        with contextlib.suppress(Exception):
            await wait_closed()
