"""``http:listen`` / ``http:respond``: real HTTP clients (httpx, raw sockets) against real runs."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from gxo.engine.connections import ConnectionManager
from gxo.engine.context import RunContext
from gxo.modules.testkit import run_module
from tests.modules.test_connection_modules import fds_back_to, free_port, open_fds, running

# The issue's two-workload web service, as written (with a free port).
WEB = """
workloads:
  - name: web
    process: { module: http:listen, params: { address: 127.0.0.1, port: "{{ port }}" } }
  - name: reply
    stream_inputs: [web]
    process: { module: http:respond, params: { request_id: "{{ record.request_id }}", json: { echo: "{{ record.json.msg }}" } } }
"""

MIRROR = """
workloads:
  - name: web
    process:
      module: http:listen
      params: { address: "127.0.0.1:{{ port }}", response_timeout: 2s, max_body: 1000, max_connections: "{{ max }}" }
  - name: reply
    stream_inputs: [web]
    process:
      module: http:respond
      params:
        request_id: "{{ record.request_id }}"
        status_code: "{{ 201 if record.method == 'POST' else 200 }}"
        headers: { x-served-by: gxo, x-n: 7 }
        json:
          method: "{{ record.method }}"
          path: "{{ record.path }}"
          query: "{{ record.query_params }}"
          header: "{{ record.headers.get('x-a') }}"
          body: "{{ record.body }}"
          json: "{{ record.json }}"
          remote: "{{ record.remote_addr.startswith('127.0.0.1:') }}"
"""


async def raw_exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    return answer


async def test_the_issue_playbook_is_a_web_service_with_keepalive_and_concurrency() -> None:
    before = open_fds()
    port = free_port()
    async with running(WEB, port=port) as run:
        summary_port = await run.port("web")
        assert summary_port == port
        listening = [e for e in run.events if e.data.get("event") == "listening"]
        assert [(e.workload, e.data["port"]) for e in listening] == [("web", port)]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            first = await client.post("/", json={"msg": "hi"})
            assert (first.status_code, first.json()) == (200, {"echo": "hi"})
            assert first.headers["content-type"] == "application/json"
            # keep-alive: the next requests reuse the connection
            for n in range(3):
                again = await client.post("/x", json={"msg": f"m{n}"})
                assert again.json() == {"echo": f"m{n}"}
            answers = await asyncio.gather(
                *(client.post("/", json={"msg": f"c{i}"}) for i in range(20))
            )
            assert [a.json()["echo"] for a in answers] == [f"c{i}" for i in range(20)]
            # a record the template cannot render (no JSON body): 500, counted, logged
            broken = await client.post("/", content=b"plain")
            assert broken.status_code == 500
            assert broken.json() == {"error": "internal server error"}
    reply = run.result.states["reply"]
    assert reply.counters["errors"] == 1
    assert any("answered 500" in line for _, _, line in reply.logs)
    assert run.result.states["web"].summary["url"] == f"http://127.0.0.1:{port}"
    assert await fds_back_to(before) <= before


async def test_request_records_status_headers_and_http_details() -> None:
    port = free_port()
    async with running(MIRROR, port=port, max=5) as run:
        await run.port("web")
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            got = await client.post(
                "/a%20b/c?x=1&y=2&y=3&e=", json={"k": [1]}, headers={"x-a": "A"}
            )
            assert got.status_code == 201 and got.reason_phrase == "Created"
            assert got.headers["x-served-by"] == "gxo" and got.headers["x-n"] == "7"
            assert got.json() == {
                "method": "POST",
                "path": "/a b/c",
                "query": {"x": "1", "y": ["2", "3"], "e": ""},
                "header": "A",
                "body": '{"k":[1]}',
                "json": {"k": [1]},
                "remote": True,
            }

            async def chunks():
                yield b'{"a":'
                yield b"1}"

            chunked = await client.put(
                "/c", content=chunks(), headers={"content-type": "application/json"}
            )
            assert chunked.json()["json"] == {"a": 1} and chunked.status_code == 200
            head = await client.head("/h")
            assert head.status_code == 200 and head.content == b""
            too_big = await client.post("/big", content=b"x" * 1001)
            assert too_big.status_code == 413
        bad = await raw_exchange(port, b"NOT HTTP AT ALL\r\n\r\n")
        assert bad.startswith(b"HTTP/1.1 400 ")
    assert run.result.states["web"].summary["requests"] >= 3


async def test_unanswered_requests_get_504_after_response_timeout() -> None:
    port = free_port()
    text = """
workloads:
  - name: web
    process: { module: http:listen, params: { port: "{{ port }}", response_timeout: 100ms } }
"""
    async with running(text, port=port) as run:
        await run.port("web")
        async with httpx.AsyncClient(timeout=10) as client:
            late = await client.get(f"http://127.0.0.1:{port}/slow")
    assert late.status_code == 504
    assert late.json()["error"] == "no response within 0.1s" and late.json()["request_id"]
    web = run.result.states["web"]
    assert web.counters["timeouts"] == 1 and web.summary["timeouts"] == 1


async def test_http_listen_serves_connections_from_connection_listen() -> None:
    port = free_port()
    text = """
workloads:
  - name: conns
    process: { module: connection:listen, params: { port: "{{ port }}" } }
  - name: web
    stream_inputs: [conns]
    process: { module: http:listen, params: { response_timeout: 5s } }
  - name: reply
    stream_inputs: [web]
    process: { module: http:respond, params: { request_id: "{{ record.request_id }}", body: "hello {{ record.path }}" } }
"""
    async with running(text, port=port) as run:
        await run.port("conns")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            answers = await asyncio.gather(*(client.get(f"/p{i}") for i in range(10)))
    assert [a.text for a in answers] == [f"hello /p{i}" for i in range(10)]
    assert answers[0].headers["content-type"] == "text/plain; charset=utf-8"
    assert run.result.states["conns"].summary["accepted"] >= 1


async def test_https_and_max_connections(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    port = free_port()
    text = WEB.replace(
        'port: "{{ port }}" }',
        f"port: \"{{{{ port }}}}\", max_connections: 1, tls: {{ cert: '{cert}', key: '{key}' }} }}",
    )
    async with running(text, port=port) as run:
        await run.port("web")
        trust = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(verify=trust, timeout=10) as client:
            got = await client.post(f"https://localhost:{port}/", json={"msg": "tls"})
            assert got.json() == {"echo": "tls"}
            # the one slot is held by the client's keep-alive connection: another is refused
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=trust, server_hostname="localhost"
            )
            with contextlib.suppress(ConnectionError):
                assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
    web = run.result.states["web"]
    assert web.summary["url"] == f"https://127.0.0.1:{port}" and web.counters["rejected"] == 1


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.modules.test_connection_modules import tls_files as make

    return make.__wrapped__(tmp_path_factory)  # type: ignore[attr-defined]


async def test_listen_errors() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = await run_module("http:listen", {"port": port})
    assert run.status == "Failed" and f"cannot listen on 127.0.0.1:{port}" in (run.error or "")
    run = await run_module("http:listen", {"address": "h:p"})
    assert "address: malformed port" in (run.error or "")
    run = await run_module("http:listen", {}, inputs=[{"connection_id": "nope"}, {"x": 1}])
    assert run.ok and run.counters["errors"] == 2 and run.summary["requests"] == 0


# -- http:respond alone ----------------------------------------------------------------------


@pytest.fixture
def manager(monkeypatch: pytest.MonkeyPatch) -> ConnectionManager:
    """The connection manager run_module's run uses, so a test can park requests in it."""
    shared = ConnectionManager()
    monkeypatch.setattr(RunContext, "connections", property(lambda self: shared))
    return shared


async def park(manager: ConnectionManager) -> tuple[str, Any, asyncio.Task[Any]]:
    """A pending request, and a task that 'sends' its answer like http:listen does."""
    from gxo.modules.protocol._http_server import KIND, PendingRequest

    pending = PendingRequest()
    request_id = manager.add(KIND, pending)

    async def listener() -> Any:
        response = await pending.answer_future
        pending.written.set_result(100 + len(response.body))
        return response

    return request_id, pending, asyncio.create_task(listener())


async def test_respond_answers_one_request_id(manager: ConnectionManager) -> None:
    request_id, _, sent = await park(manager)
    run = await run_module(
        "http:respond",
        {
            "request_id": request_id,
            "status_code": 404,
            "body": "{{ what }}",
            "headers": {"content-type": "text/html"},
        },
        variables={"what": "<b>gone</b>"},
    )
    assert run.ok, run.error
    assert run.summary == {"request_id": request_id, "status_code": 404, "bytes_written": 111}
    response = await sent
    assert (response.status_code, response.body) == (404, b"<b>gone</b>")
    assert response.headers == [("content-type", "text/html")]
    # answered already: a second answer is an error; unknown ids too
    run = await run_module("http:respond", {"request_id": request_id})
    assert "already answered" in (run.error or "")
    await manager.close(request_id)
    run = await run_module("http:respond", {"request_id": request_id})
    assert f"no pending request '{request_id}'" in (run.error or "")


async def test_respond_stream_mode_counts_and_errors(manager: ConnectionManager) -> None:
    ids = [await park(manager) for _ in range(4)]
    ids[3][1].answer_future.cancel()  # timed out meanwhile (504 sent)
    records = [{"request_id": rid, "n": n} for n, (rid, _, _) in enumerate(ids)]
    records.append({"request_id": "ghost", "n": 9})
    run = await run_module(
        "http:respond",
        {
            "request_id": "{{ record.request_id }}",
            "status_code": "{{ [200, 999, 'x', 200][record.n] }}",
            "json": {"n": "{{ record.n }}"},
        },
        inputs=records,
    )
    assert run.ok
    assert run.summary == {"responses": 3, "errors": 2, "late": 1, "unknown": 1}
    first, second, third = [await t for _, _, t in ids[:3]]
    assert (first.status_code, first.body) == (200, b'{"n":0}')
    assert second.status_code == third.status_code == 500
    lines = [line for _, line in run.logs]
    assert any("status_code: 999 is not between 100 and 599" in line for line in lines)
    assert any("status_code: 'x' is not a number" in line for line in lines)
    ids[3][2].cancel()
    await asyncio.gather(ids[3][2], return_exceptions=True)


async def test_respond_params_validation() -> None:
    run = await run_module("http:respond", {"request_id": "r", "body": "a", "json": {}})
    assert run.status == "Failed" and "either body or json" in (run.error or "")


async def test_expect_100_continue_and_pipelined_requests() -> None:
    port = free_port()
    async with running(WEB, port=port) as run:
        await run.port("web")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = b'{"msg": "wait"}'
        writer.write(
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"expect: 100-continue\r\ncontent-length: %d\r\n\r\n" % len(body)
        )
        assert (await reader.readline()).startswith(b"HTTP/1.1 100 ")
        await reader.readline()
        writer.write(body)
        # two more requests at once on the same connection (pipelined)
        one = b'{"msg": "p1"}'
        two = b'{"msg": "p2"}'
        for payload in (one, two):
            writer.write(
                b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(payload), payload)
            )
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        await writer.wait_closed()
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert answer.index(b'"wait"') < answer.index(b'"p1"') < answer.index(b'"p2"')
    assert answer.count(b"HTTP/1.1 500 ") == 1  # the GET has no JSON body: template error


async def test_idle_and_slow_connections_are_closed() -> None:
    port = free_port()
    text = WEB.replace('port: "{{ port }}" }', 'port: "{{ port }}", idle_timeout: 200ms }')
    async with running(text, port=port) as run:
        await run.port("web")
        idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)
        slow_r, slow_w = await asyncio.open_connection("127.0.0.1", port)
        slow_w.write(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc")
        assert await asyncio.wait_for(idle_r.read(), 5) == b""  # idle: just closed
        slow = await asyncio.wait_for(slow_r.read(), 5)
        assert slow.startswith(b"HTTP/1.1 408 ") and b"request not received in time" in slow
        for w in (idle_w, slow_w):
            w.close()
            await w.wait_closed()
