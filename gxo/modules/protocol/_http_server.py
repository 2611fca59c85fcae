"""The HTTP/1.1 side of ``http:listen`` / ``http:respond``: h11 over asyncio streams.

h11 (the sans-I/O HTTP/1.1 state machine httpx is built on) does the protocol:
framing, keep-alive, chunked bodies, malformed input. This file turns each
request into a record, parks it in the run's connection manager as an
``http_request`` handle (its id is the ``request_id``), waits for ``http:respond``
to answer it (or answers 504 after ``response_timeout``), and writes the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    import h11

    from gxo.engine.context import ModuleContext
    from gxo.modules.connection._streams import TcpStream

__all__ = ["KIND", "PendingRequest", "Response", "json_response", "serve_connection"]

KIND = "http_request"
READ_SIZE = 65536
_NO_BODY_STATUS = frozenset({204, 304})


class Response:
    """What ``http:respond`` hands to a pending request."""

    __slots__ = ("body", "headers", "status_code")

    def __init__(self, status_code: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.body = body


def json_response(status_code: int, payload: Any) -> Response:
    return Response(
        status_code, [("content-type", "application/json")], json.dumps(payload).encode()
    )


class PendingRequest:
    """A request waiting for its answer; ``written`` resolves to the bytes sent."""

    __slots__ = ("_written", "answer_future")

    def __init__(self) -> None:
        self.answer_future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._written: asyncio.Future[int] | None = None  # only when someone waits for it

    def answer(self, response: Response) -> bool:
        """False when it was already answered (e.g. 504 after response_timeout)."""
        if self.answer_future.done():
            return False
        self.answer_future.set_result(response)
        return True

    @property
    def written(self) -> asyncio.Future[int]:
        if self._written is None:
            self._written = asyncio.get_running_loop().create_future()
        return self._written

    def sent(self, count: int) -> None:
        """The answer is written (``count`` bytes; 0 when it could not be)."""
        if self._written is not None and not self._written.done():
            self._written.set_result(count)


class Counters:
    """Per-listener tallies, shared by its connections."""

    __slots__ = ("rejected", "requests", "timeouts")

    def __init__(self) -> None:
        self.requests = 0
        self.timeouts = 0
        self.rejected = 0


async def serve_connection(
    ctx: ModuleContext,
    stream: TcpStream,
    *,
    emit: Callable[[dict[str, Any]], Awaitable[None]] | None,
    response_timeout: float,
    max_body: int,
    counters: Counters,
    idle_timeout: float = 60.0,
) -> None:
    """Serve HTTP/1.1 requests on ``stream`` until the client or the server closes it.

    The caller closes the stream afterwards (through the connection manager).
    """
    import h11

    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
    reader, writer = stream.reader, stream.writer
    remote = stream.remote_addr
    try:
        while True:
            try:
                received = await _read_request(conn, reader, writer, max_body, idle_timeout)
            except h11.RemoteProtocolError as exc:
                await _send_error(conn, writer, exc.error_status_hint, f"bad request: {exc}")
                break
            except TimeoutError:  # idle between requests, or a request sent too slowly
                if conn.their_state is not h11.IDLE or conn.trailing_data[0]:
                    await _send_error(conn, writer, 408, "request not received in time")
                break
            except _TooLarge:
                await _send_error(conn, writer, 413, f"request body larger than {max_body} bytes")
                break
            if received is None:
                break
            request, body = received
            counters.requests += 1
            pending = PendingRequest()
            try:
                request_id = ctx.connections.add(KIND, pending, info={"remote_addr": remote})
            except Exception:  # the run's connection limit
                counters.rejected += 1
                ctx.count("rejected")
                await _send(conn, writer, json_response(503, {"error": "too many requests"}))
                continue_ok = False
            else:
                continue_ok = True
                try:
                    response = await _exchange(
                        ctx,
                        request_id,
                        pending,
                        request,
                        body,
                        remote,
                        emit,
                        response_timeout,
                        counters,
                    )
                    written = await _send(conn, writer, response, head=request.method == b"HEAD")
                    pending.sent(written)
                finally:
                    pending.sent(0)  # a no-op once sent
                    await ctx.connections.close(request_id)
            if not continue_ok:
                break
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                break
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:  # the client did not finish its request
                break
    except (ConnectionError, asyncio.IncompleteReadError, h11.LocalProtocolError):
        pass  # the client went away mid-exchange
    except Exception as exc:  # one connection's failure (a broken output stream ...)
        ctx.count("errors")
        ctx.log(f"connection from {remote} ended: {type(exc).__name__}: {exc}", level="warning")
    except asyncio.CancelledError:
        # The listener stopped. Ending normally matters: on 3.11 asyncio logs a
        # cancelled connection task as an unhandled error.
        pass


async def _exchange(
    ctx: ModuleContext,
    request_id: str,
    pending: PendingRequest,
    request: h11.Request,
    body: bytes,
    remote: str,
    emit: Callable[[dict[str, Any]], Awaitable[None]] | None,
    response_timeout: float,
    counters: Counters,
) -> Response:
    """Hand the request to the stream; the response http:respond gives (or 504)."""
    record = _record(request_id, request, body, remote)
    if emit is None:
        # Nobody streams from this listener: the request waits for an
        # http:respond that names its request_id (or times out).
        ctx.log(f"{record['method']} {record['path']} as {request_id}", level="debug")
    try:
        async with asyncio.timeout(response_timeout):  # a full output stream counts too
            if emit is not None:
                await emit(record)
            return await pending.answer_future
    except TimeoutError:
        counters.timeouts += 1
        ctx.count("timeouts")
        pending.answer_future.cancel()
        ctx.log(
            f"{record['method']} {record['path']}: no response within "
            f"{response_timeout}s (request {request_id}): answered 504",
            level="warning",
        )
        return json_response(
            504, {"error": f"no response within {response_timeout}s", "request_id": request_id}
        )


def _record(request_id: str, request: h11.Request, body: bytes, remote: str) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for name, value in request.headers:
        key = name.decode("latin-1")  # h11 lower-cases header names
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    target = request.target.decode("utf-8", "replace")
    path, _, query_string = target.partition("?")
    if "://" in path:  # absolute-form target (proxies): keep the path
        path = urlsplit(target).path
    query: dict[str, Any] = {}
    if query_string:
        query = {
            k: v[0] if len(v) == 1 else v
            for k, v in parse_qs(query_string, keep_blank_values=True).items()
        }
    if "%" in path:
        path = unquote(path)
    text = body.decode("utf-8", "replace")
    parsed = None
    if text and "json" in headers.get("content-type", "json"):
        with contextlib.suppress(ValueError):
            parsed = json.loads(text)
    return {
        "request_id": request_id,
        "method": request.method.decode("ascii", "replace").upper(),
        "path": path or "/",
        "query_params": query,
        "headers": headers,
        "body": text,
        "json": parsed,
        "remote_addr": remote,
    }


async def _read_request(
    conn: h11.Connection,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    max_body: int,
    idle_timeout: float,
) -> tuple[h11.Request, bytes] | None:
    import h11

    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            if request is not None and conn.they_are_waiting_for_100_continue:
                writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
            async with asyncio.timeout(idle_timeout):
                data = await reader.read(READ_SIZE)
            conn.receive_data(data)
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > max_body:
                raise _TooLarge
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return request, bytes(body)
        else:  # ConnectionClosed, or PAUSED after a MUST_CLOSE exchange
            return None


async def _send(
    conn: h11.Connection, writer: asyncio.StreamWriter, response: Response, *, head: bool = False
) -> int:
    import h11

    status = response.status_code
    has_body = status not in _NO_BODY_STATUS and status >= 200
    headers = [
        (k, v)
        for k, v in response.headers
        if k.lower() not in ("content-length", "transfer-encoding")
    ]
    if has_body:
        headers.append(("content-length", str(len(response.body))))
    data = (
        conn.send(h11.Response(status_code=status, headers=headers, reason=_reason(status))) or b""
    )
    if has_body and not head and response.body:
        data += conn.send(h11.Data(data=response.body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    writer.write(data)
    await writer.drain()
    return len(data)


async def _send_error(
    conn: h11.Connection, writer: asyncio.StreamWriter, status: int, message: str
) -> None:
    import h11

    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    response = Response(
        status,
        [("content-type", "text/plain; charset=utf-8"), ("connection", "close")],
        message.encode(),
    )
    with contextlib.suppress(h11.LocalProtocolError, ConnectionError):
        await _send(conn, writer, response)


@functools.cache
def _reason(status: int) -> bytes:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class _TooLarge(Exception):
    pass
