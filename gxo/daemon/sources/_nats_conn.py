"""The connection side shared by the NATS sources (:mod:`gxo.daemon.sources.nats`):
URL parsing with credentials kept out of every text, one nats-py connection with a quick
first attempt and a bounded reconnection, and errors as one redacted line.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any
from urllib.parse import unquote, urlsplit

import nats
import nats.errors

from gxo.daemon.logsetup import redact_url
from gxo.daemon.sources._util import error_text, query_params, scrub
from gxo.daemon.sources.base import SourceError

__all__ = ["CONNECT_TIMEOUT", "NatsClient", "NatsTarget", "reason"]

log = logging.getLogger("gxo.daemon.sources.nats")

DEFAULT_PORT = 4222
CONNECT_TIMEOUT = 2.0
# Bounded reconnection (about a minute): a broker gone for longer surfaces as a
# SourceError the reconciler reports and retries, instead of a silent, endless wait.
RECONNECT_ATTEMPTS = 30
RECONNECT_WAIT = 2.0


def reason(exc: BaseException) -> str:
    """The server's own words for a JetStream API error, else the exception's text."""
    description = getattr(exc, "description", None)
    return description if isinstance(description, str) and description else error_text(exc)


class NatsTarget:
    """The parsed URL: server, credentials, path parts and query parameters."""

    def __init__(self, url: str, *, allowed: set[str], what: str) -> None:
        parts = urlsplit(url)
        self.params = query_params(parts.query, allowed, what=what)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password is not None else None
        self.token = self.params.get("token") or None
        if self.user and self.password is None:
            # nats://TOKEN@host is the NATS spelling of token authentication.
            self.token, self.user = self.user, None
        self.source = scrub(redact_url(url), self.password, self.token)
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError as exc:
            raise ValueError(f"invalid port in {self.source!r}") from exc
        self.host = parts.hostname or "127.0.0.1"
        self.port = port
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.server = f"nats://{host}:{self.port}"
        self.path = unquote(parts.path.lstrip("/"))

    def scrub(self, text: str) -> str:
        return scrub(redact_url(text), self.password, self.token)


class NatsClient:
    def __init__(self, target: NatsTarget, *, name: str, max_concurrency: int) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.target = target
        self.name = name
        self.max_concurrency = max_concurrency
        self._nc: Any = None
        self._closed = False
        self._last_error: str | None = None
        self.dropped = 0  # core NATS: messages nats-py discarded as get() fell behind

    @property
    def source(self) -> str:
        return self.target.source

    def _error(self, message: str) -> SourceError:
        return SourceError(
            f"event source {self.source!r}: {self.target.scrub(message)}", workload=self.name
        )

    def _where(self) -> str:
        return f"NATS at {self.target.host}:{self.target.port}"

    async def _on_error(self, exc: Exception) -> None:
        if isinstance(exc, nats.errors.SlowConsumerError):
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "%s: get() falls behind, %d message(s) dropped", self.source, self.dropped
                )
            return
        self._last_error = self.target.scrub(reason(exc))
        if self._nc is None:
            return  # still connecting: start() reports it in its SourceError
        # nats-py's default callback logs a traceback; one redacted line is enough.
        log.warning("%s: %s: %s", self.source, self._where(), self._last_error)

    async def _on_disconnected(self) -> None:
        if self._nc is not None and not self._closed:  # None: we are closing it ourselves
            log.warning("%s: disconnected from %s, reconnecting", self.source, self._where())

    async def _on_reconnected(self) -> None:
        self._last_error = None
        log.info("%s: reconnected to %s", self.source, self._where())

    async def _connect(self) -> None:
        if self._closed:
            raise self._error("the source is closed")
        options: dict[str, Any] = {
            "servers": [self.target.server],
            "name": f"gxo:{self.name}",
            "connect_timeout": CONNECT_TIMEOUT,
            "allow_reconnect": True,
            # The first connection gets a few quick retries only: a daemon started with a
            # wrong URL should say so at once, not after a minute.
            "max_reconnect_attempts": 2,
            "reconnect_time_wait": 0.2,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
        }
        if self.target.user:
            options["user"] = self.target.user
            options["password"] = self.target.password or ""
        if self.target.token:
            options["token"] = self.target.token
        try:
            self._nc = await nats.connect(**options)
        except Exception as exc:  # nats-py raises many unrelated types here
            why = self._last_error or reason(exc)
            raise self._error(f"cannot connect to {self._where()}: {why}") from None
        # From now on, reconnection after a lost connection is the longer, bounded one.
        self._nc.options["max_reconnect_attempts"] = RECONNECT_ATTEMPTS
        self._nc.options["reconnect_time_wait"] = RECONNECT_WAIT

    def _lost(self, exc: BaseException) -> SourceError:
        if self._closed:
            return self._error("the source is closed")
        why = self._last_error or reason(exc)
        return self._error(f"connection to {self._where()} lost: {why}")

    async def _close_connection(self) -> None:
        nc, self._nc = self._nc, None
        if nc is None or nc.is_closed:
            return
        with contextlib.suppress(Exception):
            await nc.flush(timeout=1)  # acks/naks are buffered publishes: send them first
        with contextlib.suppress(Exception):
            await nc.close()
