"""Small helpers shared by the broker sources (Redis Streams, MQTT, AMQP)."""

from __future__ import annotations

import os
import secrets
import socket
from typing import Any
from urllib.parse import parse_qs, unquote

from gxo.daemon.logsetup import REDACTED


def member_id() -> str:
    """A consumer name unique to this process: ``hostname-pid-random``.

    The random part keeps two sources of one process (or a pid reused after a restart)
    from posing as the same member, which would hand one member's pending entries to
    another without the claim_after wait.
    """
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def scrub(text: str, *secret_values: str | None) -> str:
    """``text`` with every secret (raw and URL-decoded) replaced: driver error texts may
    echo the URL or the credentials they were given."""
    for value in secret_values:
        if not value:
            continue
        for form in {value, unquote(value)}:
            if len(form) >= 3:  # shorter values would redact ordinary words
                text = text.replace(form, REDACTED)
    return text


def query_params(query: str, allowed: set[str], *, what: str) -> dict[str, str]:
    """The URL query as single values; an unknown or repeated key is a ValueError (a typo
    like ``?gruop=`` must not silently fall back to a default)."""
    params: dict[str, str] = {}
    for key, values in parse_qs(query, keep_blank_values=True).items():
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise ValueError(f"unknown {what} URL parameter {key!r} (known: {known})")
        if len(values) > 1:
            raise ValueError(f"{what} URL parameter {key!r} given more than once")
        params[key] = values[0]
    return params


def error_text(exc: BaseException) -> str:
    """A one-line reason from a driver exception (its class name when it has no text)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


class SettleOnce:
    """A delivery settled at most once: after its first ack or nak, both do nothing.

    The broker sources subclass it with ``_ack()`` and ``_nak(delay)``; the guard
    lives here once instead of in each of their delivery classes.
    """

    __slots__ = ("_done", "event")

    def __init__(self, event: Any) -> None:
        self._done = False
        self.event = event

    async def ack(self) -> None:
        if not self._done:
            self._done = True
            await self._ack()

    async def nak(self, delay: float | None = None) -> None:
        if not self._done:
            self._done = True
            await self._nak(delay)

    async def _ack(self) -> None:
        raise NotImplementedError

    async def _nak(self, delay: float | None) -> None:
        raise NotImplementedError
