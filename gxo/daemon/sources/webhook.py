"""``webhook:/PATH`` — one event per HTTP request to PATH on the daemon's ``--http`` listener.

URL parameters (all optional)::

    webhook:/hooks/deploy?secret={{ secret('DEPLOY_HOOK_KEY') }}&methods=POST,PUT
        &max_body=1048576&timeout=10s

- ``secret``: HMAC-SHA256 shared secret. The request must carry
  ``X-Hub-Signature-256: sha256=<hex of HMAC(secret, body)>`` (GitHub's scheme); a missing
  or wrong signature is answered 401, counted as ``unauthorized`` and starts nothing.
- ``methods``: the methods accepted (default ``POST``); any other is answered 405.
- ``max_body``: the largest body in bytes (default 1 MiB, ``k``/``m`` suffixes allowed);
  a larger one is answered 413 before it is read.
- ``timeout``: under ``overflow: block``, how long a request waits for room in the
  workload's queue before it is answered 503 (default 10s). At most ``queue`` requests
  wait at once; the next ones are answered 503 at once.

What a request becomes (``_gxo.event``): ``id`` (new per request), ``source``
(``webhook:/PATH``, never the secret), ``subject`` (the path), ``data`` (the body: JSON
decoded, else text; bytes in ``data_b64``), ``headers`` (lower-case names; credentials
such as ``Authorization`` redacted), ``received_at``, ``method`` and ``query`` (the
request's query parameters).

Answers: 202 ``{"id": ...}`` when the event is queued; 429 when the queue is full under
``overflow: drop_new`` (counted as ``dropped``); 503 when it stays full for ``timeout``
under ``block``, or the workload is stopping. ``drop_oldest`` always queues (an older
queued event is dropped instead).

Delivery is at most once: an HTTP request cannot be redelivered, so ack and nak do
nothing; a sender that needs retries must retry on a non-202 answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from gxo.config.durations import parse_duration
from gxo.daemon.logsetup import REDACTED, add_secret
from gxo.daemon.sources._util import query_params
from gxo.daemon.sources.base import (
    AtMostOnce,
    Event,
    SourceContext,
    SourceError,
    decode_payload,
    register_source,
)

__all__ = [
    "DEFAULT_MAX_BODY",
    "Reply",
    "Request",
    "WebhookRouter",
    "WebhookSource",
    "check_webhook_url",
    "webhook_path",
]

log = logging.getLogger("gxo.daemon")

DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_TIMEOUT = 10.0
SIGNATURE_HEADER = "x-hub-signature-256"
_PARAMS = {"secret", "methods", "max_body", "timeout"}
# Request headers that carry credentials of their own: never copied into an event.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")
_SIZE = re.compile(r"^\s*(\d+)\s*([kKmM]?)(?:i?[bB])?\s*$")


def webhook_path(url: str) -> str:
    """The PATH of ``webhook:/PATH`` (a ValueError names what is wrong)."""
    split = urlsplit(url)
    if split.scheme.lower() != "webhook":
        raise ValueError(f"not a webhook: URL: {url.split('?', 1)[0]!r}")
    if split.netloc:
        raise ValueError(
            f"webhook:{'//' + split.netloc}{split.path}: the path must follow 'webhook:' "
            "directly, e.g. webhook:/hooks/deploy (the listener is the daemon's --http)"
        )
    path = split.path
    if not path.startswith("/") or not _PATH.match(path):
        raise ValueError(f"webhook path {path!r} must be an absolute URL path such as /hooks/x")
    return path


def check_webhook_url(url: str) -> str:
    """Apply-time check of a (not yet rendered) ``webhook:`` URL; returns its path.

    The path must be literal; parameters are checked when they hold no template."""
    if "{{" in url.split("?", 1)[0]:
        raise ValueError("the path of a webhook: source cannot be a template")
    path = webhook_path(url)
    params = query_params(urlsplit(url).query, _PARAMS, what="webhook")
    if "max_body" in params and "{{" not in params["max_body"]:
        _size(params["max_body"])
    if "timeout" in params and "{{" not in params["timeout"]:
        parse_duration(params["timeout"])
    return path


def _raw_param(query: str, name: str) -> str | None:
    for part in query.split("&"):
        key, sep, value = part.partition("=")
        if sep and unquote(key) == name:
            return unquote(value)
    return None


def _size(text: str) -> int:
    m = _SIZE.match(text)
    if m is None:
        raise ValueError(f"max_body must be a byte count such as 65536, 512k or 1m, not {text!r}")
    value = int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
    if value < 1:
        raise ValueError("max_body must be at least 1 byte")
    return value


@dataclass
class Request:
    """One HTTP request, as the listener read it (``headers``: lower-case names)."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    remote: str = ""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class WebhookSource:
    def __init__(
        self,
        url: str,
        *,
        name: str,
        max_concurrency: int = 4,
        group: str | None = None,
        context: SourceContext | None = None,
    ) -> None:
        self.path = webhook_path(url)
        query = urlsplit(url).query
        params = query_params(query, _PARAMS, what="webhook")
        # Decoded without form rules: a '+' in a base64 secret stays a '+'.
        self.secret = _raw_param(query, "secret") or None
        if self.secret is not None:
            add_secret(self.secret)  # the daemon's log redaction knows it from now on
        methods = params.get("methods", "POST")
        self.methods = frozenset(m.strip().upper() for m in methods.split(",") if m.strip())
        if not self.methods:
            raise ValueError("methods must name at least one HTTP method, e.g. POST")
        self.max_body = _size(params["max_body"]) if "max_body" in params else DEFAULT_MAX_BODY
        self.timeout = parse_duration(params["timeout"]) if "timeout" in params else DEFAULT_TIMEOUT
        self.name = name
        self.context = context or SourceContext(playbook="", workload=name)
        self.source = f"webhook:{self.path}"  # what events and statuses show: no secret
        self._pending: deque[tuple[AtMostOnce, asyncio.Future[None]]] = deque()
        self._getter: asyncio.Future[None] | None = None
        self._router: WebhookRouter | None = None
        self._closed = False

    @property
    def owner(self) -> str:
        return f"{self.context.playbook}/{self.name}" if self.context.playbook else self.name

    # -- EventSource --------------------------------------------------------------------

    async def start(self) -> None:
        router = getattr(self.context.hub, "webhooks", None)
        if router is None:
            raise SourceError(
                f"event source {self.source!r} needs the daemon's HTTP listener: start "
                "`gxo daemon` with --http HOST:PORT (e.g. --http 127.0.0.1:8080)",
                workload=self.name,
            )
        router.register(self.path, self)
        self._router = router
        self._closed = False

    async def get(self) -> AtMostOnce:
        while not self._pending:
            if self._closed:
                raise SourceError(f"event source {self.source!r} is closed", workload=self.name)
            self._getter = asyncio.get_running_loop().create_future()
            try:
                await self._getter
            finally:
                self._getter = None
        delivery, accepted = self._pending.popleft()
        if not accepted.done():
            accepted.set_result(None)
        return delivery

    async def close(self) -> None:
        self._closed = True
        if self._router is not None:
            self._router.unregister(self.path, self)
            self._router = None
        while self._pending:
            _, accepted = self._pending.popleft()
            if not accepted.done():
                accepted.set_exception(_Closed())
        self._wake()

    # -- requests -----------------------------------------------------------------------

    def allows(self, method: str) -> bool:
        return method in self.methods

    def verify(self, request: Request) -> str | None:
        """Why the request is refused (None: its signature is good, or none is needed)."""
        if self.secret is None:
            return None
        given = request.header(SIGNATURE_HEADER)
        if not given:
            return f"missing {SIGNATURE_HEADER} header"
        algorithm, _, digest = given.strip().partition("=")
        expected = hmac.new(self.secret.encode(), request.body, hashlib.sha256).hexdigest()
        if algorithm.lower() != "sha256" or not hmac.compare_digest(
            digest.strip().lower().encode(), expected.encode()
        ):
            return f"bad {SIGNATURE_HEADER} signature"
        return None

    async def submit(self, request: Request) -> Reply:
        """One request (method allowed, body within ``max_body``) → the answer."""
        count = self.context.count
        problem = self.verify(request)
        if problem is not None:
            count("unauthorized")
            log.warning(
                "webhook %s (%s): %s from %s", self.path, self.owner, problem, request.remote
            )
            return Reply(401, {"error": problem})
        if self._closed:
            return Reply(503, {"error": "the workload is stopping"}, {"retry-after": "1"})
        delivery = AtMostOnce(self._event(request))
        event_id = delivery.event.id
        overflow = self.context.overflow
        if overflow == "drop_new" and len(self._pending) >= self.context.room():
            count("received")
            count("dropped")
            return Reply(
                429,
                {"error": "the workload's event queue is full (overflow: drop_new)"},
                {"retry-after": "1"},
            )
        if len(self._pending) >= max(1, self.context.capacity):
            # As many requests wait as the queue holds: memory stays bounded
            # (2 x queue x max_body at most) however many clients keep asking.
            return Reply(
                503, {"error": "too many requests waiting for the queue"}, {"retry-after": "1"}
            )
        accepted = asyncio.get_running_loop().create_future()
        item = (delivery, accepted)
        self._pending.append(item)
        self._wake()
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.shield(accepted)
        except TimeoutError:
            if item in self._pending:
                self._pending.remove(item)
                return Reply(
                    503,
                    {"error": f"the workload's event queue stayed full for {self.timeout:g}s"},
                    {"retry-after": str(max(1, round(self.timeout)))},
                )
        except _Closed:
            return Reply(503, {"error": "the workload is stopping"}, {"retry-after": "1"})
        except asyncio.CancelledError:  # the listener is closing: the request is not queued
            if item in self._pending:
                self._pending.remove(item)
            raise
        return Reply(202, {"id": event_id, "status": "queued"})

    def _event(self, request: Request) -> Event:
        data, data_b64 = decode_payload(request.body)
        headers: dict[str, str] = {}
        for key, value in request.headers:
            if key in _CREDENTIAL_HEADERS:
                value = REDACTED
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        query = {
            k: v[0] if len(v) == 1 else v
            for k, v in parse_qs(request.query, keep_blank_values=True).items()
        }
        return Event(
            id=uuid.uuid4().hex,
            source=self.source,
            subject=request.path,
            data=data,
            headers=headers,
            data_b64=data_b64,
            extra={"method": request.method, "query": query},
        )

    def _wake(self) -> None:
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)


class _Closed(Exception):
    pass


class WebhookRouter:
    """PATH → the started :class:`WebhookSource` that owns it (one per path)."""

    def __init__(self, address: str = "") -> None:
        self.address = address  # HOST:PORT of the listener, for messages
        self.routes: dict[str, WebhookSource] = {}

    def register(self, path: str, source: WebhookSource) -> None:
        current = self.routes.get(path)
        if current is not None and current is not source:
            raise SourceError(
                f"webhook path {path} is already served by workload '{current.owner}'",
                workload=source.name,
            )
        self.routes[path] = source

    def unregister(self, path: str, source: WebhookSource) -> None:
        if self.routes.get(path) is source:
            del self.routes[path]

    def lookup(self, path: str) -> WebhookSource | None:
        return self.routes.get(path)


register_source("webhook", WebhookSource, contextual=True)
