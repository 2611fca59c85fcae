"""State: the store protocol and its in-memory implementation."""

from gxo.state.store import MemoryStore, Store

__all__ = ["MemoryStore", "Store"]
