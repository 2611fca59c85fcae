"""The ``Store`` of a playbook's registered results in the daemon's SQL state."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from gxo.state._sql_schema import encode
from gxo.state.store import copy_record

if TYPE_CHECKING:
    from gxo.state.sql import SqlState

__all__ = ["SqlResultStore", "stored_keys"]


def stored_keys(state: SqlState) -> set[str]:
    """Every register key the store holds a result for, of any playbook (keys are
    plaintext names; ``gxo run --state`` lets templates name them before the playbook
    is loaded, so before its name is known)."""
    from sqlalchemy import select

    from gxo.state._sql_schema import results_table

    with state._read() as conn:
        return set(conn.execute(select(results_table.c.key).distinct()).scalars())


class SqlResultStore:
    """A playbook's registered results: the ``Store`` protocol, written through to SQL.

    Reads come from an in-memory cache loaded once; each write reaches the
    database before the cache, so the cache never claims what was not persisted.
    Values round-trip through JSON in the database (a datetime comes back as its
    ISO text after a restart); within the process they are kept as given.
    """

    def __init__(self, state: SqlState, playbook: str) -> None:
        self.playbook = playbook
        self._state = state
        self._lock = threading.RLock()
        self._data: dict[str, Any] = state._load_results(playbook)

    def __repr__(self) -> str:
        return f"SqlResultStore({self.playbook!r}, keys={len(self._data)})"

    def get(self, key: str, default: Any = None, *, copy: bool = True) -> Any:
        with self._lock:
            if key not in self._data:
                return default
            value = self._data[key]
        return copy_record(value) if copy else value

    def set(self, key: str, value: Any) -> None:
        text = self._state._codec.seal(encode(value), "results", self.playbook, key, column="value")
        with self._lock:
            self._state._put_result(self.playbook, key, text)
            self._data[key] = value

    def delete(self, key: str) -> None:
        with self._lock:
            self._state._delete_results(self.playbook, key)
            self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._state._delete_results(self.playbook, None)
            self._data.clear()

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._data)

    def snapshot(self, *, copy: bool = True) -> dict[str, Any]:
        with self._lock:
            data = dict(self._data)
        return copy_record(data) if copy else data

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._data)

    def _forget(self) -> None:
        """The playbook was deleted: drop the cache (the rows are already gone)."""
        with self._lock:
            self._data.clear()
