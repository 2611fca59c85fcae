"""The daemon's own logs: one line per record on stderr, text or JSON, secrets redacted.

Secret values the daemon learns (a state URL's password, values registered with
:func:`add_secret`) are replaced by ``[REDACTED]`` in every message; credentials
inside URLs (``scheme://user:password@host``) are masked whatever their origin.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

__all__ = ["add_secret", "redact", "redact_url", "setup_logging"]

REDACTED = "[REDACTED]"
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]*:)(?P<pw>[^@\s/]+)(?=@)", re.I)
_secrets: set[str] = set()


def add_secret(value: str) -> None:
    if value and len(value) >= 3:  # shorter values would redact ordinary words
        _secrets.add(value)


def redact(text: str) -> str:
    for value in sorted(_secrets, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)


def redact_url(url: str) -> str:
    return _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, url)


class _Formatter(logging.Formatter):
    def __init__(self, fmt: str) -> None:
        super().__init__()
        self.json = fmt == "json"

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        message = redact(message)
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        if self.json:
            return json.dumps(
                {
                    "time": stamp,
                    "level": record.levelname.lower(),
                    "logger": record.name,
                    "msg": message,
                }
            )
        return f"{stamp} {record.levelname:<7} {record.name}: {message}"


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # gRPC's C core logs through absl on its own; its Python side is noisy at debug.
    logging.getLogger("grpc").setLevel(max(root.level, logging.INFO))
