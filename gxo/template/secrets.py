"""Secrets: taint-marked strings and value-based redaction.

``secret('NAME')`` returns a :class:`SecretStr`. Its value is recorded in the
run's :class:`SecretRegistry`; every output path (registered state, summaries,
logs, events, reports, TUI, REPL) passes through :meth:`SecretRegistry.redact`,
which replaces each recorded value wherever it occurs, even inside strings
derived from it (``"Bearer " + token``), where the taint mark itself is lost.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from gxo.errors import SecretError

__all__ = ["REDACTED", "SecretRegistry", "SecretStr", "env_provider"]

REDACTED = "[REDACTED]"


class SecretStr(str):
    """A string that came from a secret provider."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"SecretStr({REDACTED!r})"


def env_provider(name: str) -> str | None:
    return os.environ.get(name)


class SecretRegistry:
    """The secret values seen in one run, and redaction of them."""

    def __init__(self, provider: Callable[[str], str | None] = env_provider) -> None:
        self._provider = provider
        self._values: set[str] = set()
        self._ordered: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._values)

    def lookup(self, name: str) -> SecretStr:
        if not isinstance(name, str) or not name:
            raise SecretError(f"secret() needs a non-empty name, got {name!r}")
        value = self._provider(name)
        if value is None:
            raise SecretError(
                f"secret '{name}' is not set (looked for environment variable {name})"
            )
        self.add(value)
        return SecretStr(value)

    def add(self, value: str) -> None:
        if not value:
            return
        with self._lock:
            if value not in self._values:
                self._values.add(value)
                # Longest first, so a secret containing another is replaced whole.
                self._ordered = tuple(sorted(self._values, key=len, reverse=True))

    def redact_str(self, text: str) -> str:
        for value in self._ordered:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def redact(self, obj: Any) -> Any:
        """A copy of ``obj`` with every secret value replaced; ``obj`` itself if none occur."""
        if not self._ordered:
            return obj
        return self._redact(obj)

    def _redact(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.redact_str(obj)
        if isinstance(obj, Mapping):
            return {self._redact(k): self._redact(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self._redact(v) for v in obj]
        if isinstance(obj, bytes):
            return self.redact_str(obj.decode("utf-8", "replace")).encode()
        return obj
