"""``webhook:`` source and the daemon's HTTP listener, in process: a real listener on
127.0.0.1 (port 0) and real requests with httpx."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gxo.daemon.http_listener import parse_address, start_listener
from gxo.daemon.sources.base import SourceContext, SourceError, open_source
from gxo.daemon.sources.hub import SourceHub
from gxo.daemon.sources.webhook import WebhookSource, check_webhook_url, webhook_path


class Counters:
    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.room = 100

    def count(self, key: str) -> None:
        self.values[key] = self.values.get(key, 0) + 1


@pytest.fixture
async def hub() -> AsyncIterator[SourceHub]:
    hub = SourceHub()
    await start_listener(hub, "127.0.0.1:0")
    try:
        yield hub
    finally:
        await hub.close()


def _base(hub: SourceHub) -> str:
    return f"http://{hub.listener.address}"


async def _source(
    hub: SourceHub, url: str, counters: Counters, overflow: str = "block"
) -> WebhookSource:
    context = SourceContext(
        playbook="pb",
        workload="w",
        hub=hub,
        overflow=overflow,
        capacity=1,
        room=lambda: counters.room,
        count=counters.count,
    )
    source = open_source(url, name="w", context=context)
    assert isinstance(source, WebhookSource)
    await source.start()
    return source


async def test_request_becomes_one_event(hub: SourceHub) -> None:
    counters = Counters()
    source = await _source(hub, "webhook:/in?methods=post,put", counters)
    try:
        async with httpx.AsyncClient(base_url=_base(hub)) as http:
            posted = asyncio.create_task(
                http.post(
                    "/in?a=1&b=2&b=3",
                    json={"x": [1, 2]},
                    headers={"authorization": "Bearer tok123", "X-Custom": "yes"},
                )
            )
            delivery = await asyncio.wait_for(source.get(), 5)
            reply = await posted
            assert reply.status_code == 202
            assert reply.json() == {"id": delivery.event.id, "status": "queued"}
            value: dict[str, Any] = delivery.event.as_template_value()
            assert value["method"] == "POST" and value["subject"] == "/in"
            assert value["data"] == {"x": [1, 2]} and value["source"] == "webhook:/in"
            assert value["query"] == {"a": "1", "b": ["2", "3"]}
            assert value["headers"]["x-custom"] == "yes"
            assert value["headers"]["authorization"] == "[REDACTED]"
            assert value["received_at"].endswith("Z")
            await delivery.ack()  # at most once: nothing to settle
            await delivery.nak(1.0)

            binary = asyncio.create_task(http.put("/in", content=b"\xff\x00\xfe"))
            delivery = await asyncio.wait_for(source.get(), 5)
            assert (await binary).status_code == 202
            value = delivery.event.as_template_value()
            assert value["data"] is None and value["data_b64"] == "/wD+"
            assert value["method"] == "PUT"
    finally:
        await source.close()
        await source.close()  # idempotent


async def test_hmac_signature(hub: SourceHub) -> None:
    counters = Counters()
    key = "k+y/with=chars"
    source = await _source(hub, "webhook:/signed?secret=k+y%2Fwith%3Dchars", counters)
    body = b'{"ok": true}'
    good = "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    try:
        async with httpx.AsyncClient(base_url=_base(hub)) as http:
            for headers, problem in (
                ({}, "missing"),
                ({"X-Hub-Signature-256": "sha256=00"}, "bad"),
                ({"X-Hub-Signature-256": good.replace("sha256", "sha1")}, "bad"),
            ):
                reply = await http.post("/signed", content=body, headers=headers)
                assert reply.status_code == 401 and problem in reply.json()["error"]
                assert key not in reply.text
            assert counters.values == {"unauthorized": 3}
            ok = asyncio.create_task(
                http.post("/signed", content=body, headers={"X-Hub-Signature-256": good.upper()})
            )
            delivery = await asyncio.wait_for(source.get(), 5)
            assert (await ok).status_code == 202 and delivery.event.data == {"ok": True}
    finally:
        await source.close()


async def test_refusals_404_405_413_400(hub: SourceHub) -> None:
    source = await _source(hub, "webhook:/small?max_body=16", Counters())
    try:
        async with httpx.AsyncClient(base_url=_base(hub)) as http:
            assert (await http.post("/other", content=b"x")).status_code == 404
            wrong = await http.delete("/small")
            assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
            assert (await http.post("/small", content=b"y" * 17)).status_code == 413

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
                for _ in range(4):
                    yield b"z" * 8

            assert (await http.post("/small", content=chunks())).status_code == 413
        reader, writer = await asyncio.open_connection(hub.listener.host, hub.listener.port)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 400 ")
        writer.close()
    finally:
        await source.close()


async def test_full_queue_drop_new_429_block_503_closed_503(hub: SourceHub) -> None:
    counters = Counters()
    counters.room = 0  # the reconciler's queue is full
    dropper = await _source(hub, "webhook:/drop", counters, overflow="drop_new")
    blocker = await _source(hub, "webhook:/block?timeout=300ms", counters)
    try:
        async with httpx.AsyncClient(base_url=_base(hub)) as http:
            reply = await http.post("/drop", content=b"1")
            assert reply.status_code == 429 and reply.headers["retry-after"] == "1"
            assert counters.values == {"received": 1, "dropped": 1}
            # block: nobody calls get() (the queue is full) — held for timeout, then 503.
            reply = await http.post("/block", content=b"1")
            assert reply.status_code == 503 and "stayed full for 0.3s" in reply.json()["error"]
            # A request waiting when the workload stops is answered 503 at once.
            waiting = asyncio.create_task(http.post("/block", content=b"2"))
            await asyncio.sleep(0.1)
            # No more requests wait than the queue holds (capacity 1 here): 503 at once.
            started = asyncio.get_running_loop().time()
            extra = await http.post("/block", content=b"2b")
            assert extra.status_code == 503 and "too many" in extra.json()["error"]
            assert asyncio.get_running_loop().time() - started < 0.25
            await blocker.close()
            assert (await waiting).status_code in (503, 404)
            assert (await http.post("/block", content=b"3")).status_code == 404
    finally:
        await dropper.close()
        await blocker.close()


async def test_path_has_one_owner_and_is_freed_on_close(hub: SourceHub) -> None:
    first = await _source(hub, "webhook:/same", Counters())
    second = open_source("webhook:/same", name="other", context=SourceContext("pb", "other", hub))
    with pytest.raises(SourceError, match="already served by workload 'pb/w'"):
        await second.start()
    await first.close()
    await second.start()
    await second.close()


async def test_without_http_listener_start_names_the_flag() -> None:
    source = open_source("webhook:/x", name="w", context=SourceContext("pb", "w", SourceHub()))
    with pytest.raises(SourceError, match="--http HOST:PORT"):
        await source.start()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("webhook://host/x", "must follow 'webhook:' directly"),
        ("webhook:relative", "absolute URL path"),
        ("webhook:/x?secrte=1", "unknown webhook URL parameter 'secrte'"),
        ("webhook:/x?max_body=lots", "max_body must be a byte count"),
        ("webhook:/x?timeout=soon", "invalid duration"),
        ("webhook:/{{ p }}", "cannot be a template"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_webhook_url(url)


def test_url_parameters() -> None:
    assert check_webhook_url("webhook:/a/b?secret={{ secret('K') }}&timeout=2s") == "/a/b"
    assert webhook_path("webhook:/hooks/deploy") == "/hooks/deploy"
    source = WebhookSource("webhook:/x?max_body=2k&methods=get, Post&timeout=1.5s", name="w")
    assert source.max_body == 2048 and source.methods == {"GET", "POST"}
    assert source.timeout == 1.5 and source.secret is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("[::1]:80", ("::1", 80)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text", ["", "8080", "host:", ":80", "::1:80", "[zz]:80", "h:70000", "h:x"]
)
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="--http"):
        parse_address(text)


async def test_listener_address_in_use_names_the_flag(hub: SourceHub) -> None:
    other = SourceHub()
    with pytest.raises(ValueError, match=r"--http .*cannot listen"):
        await start_listener(other, hub.listener.address)


def test_a_bad_url_error_never_shows_the_secret() -> None:
    with pytest.raises(SourceError) as err:
        open_source("webhook:/x?secret=hunter2secret&max_body=lots", name="w")
    assert "hunter2secret" not in str(err.value) and "[REDACTED]" in str(err.value)
