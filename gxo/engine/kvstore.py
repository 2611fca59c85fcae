"""Key-value stores of one run: the state ``data:kv`` reads and writes.

One :class:`KVStores` per run (``RunContext.kv``; a daemon instance is a run, so
one per instance), created on first use and discarded when the run ends. It
holds named stores (``default`` unless a workload names another); each maps
text keys to JSON-like values. Values are deep-copied in and out (state
semantics: no reader sees a later change of the writer's object, nor changes
the store through the value it got). A secret keeps its taint mark through the
copies, so it stays redacted wherever it is logged or reported.

Bounded: ``MAX_STORES`` stores per run, and each ``set`` of a new key checks the
caller's ``max_keys``; beyond either a :class:`KVError` names the store.

Every operation is one synchronous step under a lock: two workloads of a run
(or threads) never interleave inside ``incr``.
"""

from __future__ import annotations

import threading
from typing import Any

from gxo.state.store import copy_record

__all__ = ["DEFAULT_MAX_KEYS", "MAX_STORES", "KVError", "KVStores"]

DEFAULT_MAX_KEYS = 100_000
MAX_STORES = 1000
_MISSING: Any = object()


class KVError(Exception):
    """An operation the store refuses (a bound, incr of a non-number)."""


def as_number(value: Any) -> int | float | None:
    """``value`` as an int or float (numbers, and text holding one), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None
        return number if number == number and abs(number) != float("inf") else None
    return None


class KVStores:
    """The named key-value stores of one run."""

    def __init__(self, max_stores: int = MAX_STORES) -> None:
        self.max_stores = max_stores
        self._stores: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.closed = False

    def _store(self, name: str, create: bool) -> dict[str, Any] | None:
        store = self._stores.get(name)
        if store is None and create:
            if self.closed:
                raise KVError(f"store '{name}': the run has ended")
            if len(self._stores) >= self.max_stores:
                raise KVError(
                    f"store '{name}': too many key-value stores in this run ({self.max_stores})"
                )
            store = self._stores[name] = {}
        return store

    def size(self, name: str) -> int:
        store = self._stores.get(name)
        return len(store) if store else 0

    def names(self) -> list[str]:
        return list(self._stores)

    def lookup(self, name: str, key: str) -> tuple[bool, Any]:
        """``(found, value)``: a deep copy of the value (None when not found)."""
        with self._lock:
            store = self._stores.get(name)
            value = _MISSING if store is None else store.get(key, _MISSING)
        if value is _MISSING:
            return False, None
        return True, copy_record(value)

    def set(self, name: str, key: str, value: Any, max_keys: int) -> tuple[bool, Any]:
        """Store a deep copy of ``value``; returns ``(found, previous value)``."""
        value = copy_record(value)
        with self._lock:
            store = self._store(name, True)
            assert store is not None
            previous = store.get(key, _MISSING)
            if previous is _MISSING and len(store) >= max_keys:
                raise KVError(f"store '{name}' is full: {len(store)} keys (max_keys: {max_keys})")
            store[key] = value
        if previous is _MISSING:
            return False, None
        return True, previous  # the store's own object: no longer reachable

    def delete(self, name: str, key: str) -> tuple[bool, Any]:
        """Remove ``key``; returns ``(found, removed value)``."""
        with self._lock:
            store = self._stores.get(name)
            previous = _MISSING if store is None else store.pop(key, _MISSING)
        if previous is _MISSING:
            return False, None
        return True, previous

    def incr(
        self, name: str, key: str, by: int | float, start: Any, max_keys: int
    ) -> tuple[bool, int | float]:
        """Add ``by`` to the number under ``key`` (``start`` when missing); ``(found, new value)``."""
        with self._lock:
            store = self._store(name, True)
            assert store is not None
            current = store.get(key, _MISSING)
            found = current is not _MISSING
            if not found and len(store) >= max_keys:
                raise KVError(f"store '{name}' is full: {len(store)} keys (max_keys: {max_keys})")
            base = as_number(current if found else start)
            if base is None:
                held = current if found else start
                what = (
                    f"holds a {type(held).__name__}"
                    if found
                    else f"default is a {type(held).__name__}"
                )
                raise KVError(f"incr: key '{key}' {what} that is not a number")
            result = base + by
            store[key] = result
        return found, result

    def clear(self) -> None:
        """Discard every store (the run has ended); later writes are refused."""
        with self._lock:
            self._stores.clear()
            self.closed = True
