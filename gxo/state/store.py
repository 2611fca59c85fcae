"""State stores: where registered results live during (and, for the daemon, between) runs."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

__all__ = ["MemoryStore", "Store", "copy_record"]

_IMMUTABLE = (str, int, float, bool, type(None), bytes)


def copy_record(obj: Any) -> Any:
    """Deep copy of a JSON-like value, several times faster than ``copy.deepcopy``."""
    t = type(obj)
    if t is dict:
        # {} without a comprehension's frame (the params of many workloads)
        return {k: copy_record(v) for k, v in obj.items()} if obj else {}
    if t is list:
        return [copy_record(v) for v in obj]
    if t in _IMMUTABLE:
        return obj
    return copy.deepcopy(obj)


@runtime_checkable
class Store(Protocol):
    """The state store protocol. Reads are deep copies unless ``copy=False`` is asked for."""

    def get(self, key: str, default: Any = None, *, copy: bool = True) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...

    def keys(self) -> list[str]: ...

    def snapshot(self, *, copy: bool = True) -> dict[str, Any]: ...

    def __contains__(self, key: object) -> bool: ...


class MemoryStore:
    """A thread-safe in-memory store (the default for ``gxo run``)."""

    def __init__(self, initial: dict[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(initial or {})
        self._lock = threading.RLock()

    def get(self, key: str, default: Any = None, *, copy: bool = True) -> Any:
        with self._lock:
            if key not in self._data:
                return default
            value = self._data[key]
        return copy_record(value) if copy else value

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

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
