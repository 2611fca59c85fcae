"""The results store of one daemon instance: its own results first, then the playbook's.

Instances of one root may run at the same time (event_driven ``max_concurrency``,
scheduled ``concurrency: allow``) and register the same keys. Each writes through to
the playbook's persistent store (the latest result is what ``gxo ctl`` and later
instances see), but reads its own results first: the downstream workloads of an
instance must see *their* root's result, not a sibling's registered a moment later.

In the daemon the write to the shared store goes through the daemon's write-behind
(``submit``, :class:`gxo.daemon.writer.StateWriter`): a register does not block the
event loop on a database transaction; ``on_change`` is called once the write is done
(the daemon's cached snapshot of the playbook's results is then dropped).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

from gxo.state.store import Store, copy_record

__all__ = ["InstanceStore"]

_GONE = object()  # deleted in this instance: not read through to the shared store


class InstanceStore:
    def __init__(
        self,
        shared: Store,
        *,
        submit: Callable[..., asyncio.Future[Any]] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.shared = shared
        self._own: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._submit = submit
        self._on_change = on_change

    def _write_shared(self, fn: Callable[..., Any], *args: Any) -> None:
        """``fn(*args)`` on the shared store: queued when there is a writer and this is
        the event loop's thread, else now."""
        if self._submit is not None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # a module's worker thread: write it here
                pass
            else:
                future = self._submit(fn, *args)
                if self._on_change is not None:
                    on_change = self._on_change
                    future.add_done_callback(lambda _: on_change())
                return
        fn(*args)
        if self._on_change is not None:
            self._on_change()

    def get(self, key: str, default: Any = None, *, copy: bool = True) -> Any:
        with self._lock:
            own = key in self._own
            value = self._own.get(key)
        if not own:
            return self.shared.get(key, default, copy=copy)
        if value is _GONE:
            return default
        return copy_record(value) if copy else value

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            self._own[key] = value
        self._write_shared(self.shared.set, key, value)

    def delete(self, key: str) -> None:
        with self._lock:
            self._own[key] = _GONE
        self._write_shared(self.shared.delete, key)

    def keys(self) -> list[str]:
        with self._lock:
            own = dict(self._own)
        shared = self.shared.keys()
        names = [k for k in shared if k not in own]
        return names + [k for k, v in own.items() if v is not _GONE]

    def snapshot(self, *, copy: bool = True) -> dict[str, Any]:
        data = dict(self.shared.snapshot(copy=False))  # never mutate the shared one
        with self._lock:
            for key, value in self._own.items():
                if value is _GONE:
                    data.pop(key, None)
                else:
                    data[key] = value
        return copy_record(data) if copy else data

    def __contains__(self, key: object) -> bool:
        with self._lock:
            if key in self._own:
                return self._own[key] is not _GONE  # type: ignore[index]
        return key in self.shared

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())
