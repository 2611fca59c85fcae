"""http:request against real HTTP and HTTPS servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_server import PASSWORD, TOKEN, USER, LocalServer, serve

from gxo.config.models import Process, Workload
from gxo.engine.context import RunContext, WorkloadState
from gxo.engine.runner import WorkloadRunner
from gxo.engine.streams import Channel, MergedReader, StreamWriter
from gxo.modules.testkit import run_module


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with serve() as srv:
        yield srv


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[LocalServer]:
    import trustme

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with serve(tls=context) as srv:
        srv.ca_file = ca_file
        yield srv


async def request(**params) -> object:
    return await run_module("http:request", params)


# -- requests and responses ------------------------------------------------------------


async def test_get_json(server: LocalServer) -> None:
    r = await request(url=f"{server.url}/json")
    assert r.ok, r.error
    s = r.summary
    assert s["status_code"] == 200
    assert s["json_body"] == {"hello": "world", "items": [1, 2, 3]}
    assert json.loads(s["body"]) == s["json_body"]
    assert s["headers"]["content-type"] == "application/json"
    assert s["url"] == f"{server.url}/json"
    assert s["latency_ms"] > 0
    assert "pages" not in s
    assert any(line.startswith(f"GET {server.url}/json -> 200 OK") for _, line in r.logs)


async def test_method_headers_query_and_json_body(server: LocalServer) -> None:
    r = await request(
        url=f"{server.url}/echo",
        method="post",
        headers={"X-Trace": "abc"},
        query={"q": "gxo", "n": 2},
        json={"name": "ada", "tags": ["x"]},
    )
    assert r.ok, r.error
    echo = r.summary["json_body"]
    assert echo["method"] == "POST"
    assert echo["query"] == {"q": "gxo", "n": "2"}
    assert echo["headers"]["x-trace"] == "abc"
    assert echo["headers"]["content-type"] == "application/json"
    assert json.loads(echo["body"]) == {"name": "ada", "tags": ["x"]}


async def test_form_and_text_bodies(server: LocalServer) -> None:
    r = await request(url=f"{server.url}/echo", method="PUT", form={"a": "1", "b": "x y"})
    assert r.summary["json_body"]["body"] == "a=1&b=x+y"
    assert r.summary["json_body"]["headers"]["content-type"] == "application/x-www-form-urlencoded"
    r = await request(
        url=f"{server.url}/echo",
        method="PATCH",
        body="raw text",
        headers={"Content-Type": "text/plain"},
    )
    assert r.summary["json_body"]["body"] == "raw text"


async def test_non_json_responses(server: LocalServer) -> None:
    r = await request(url=f"{server.url}/text")
    assert (r.summary["body"], r.summary["json_body"]) == ("plain ünïcode text", None)
    r = await request(url=f"{server.url}/notjson")
    assert r.ok and r.summary["json_body"] is None
    assert ("log", "response says application/json but its body is not valid JSON") in r.logs
    r = await request(url=f"{server.url}/json", method="HEAD")
    assert (r.summary["status_code"], r.summary["body"]) == (200, "")


# -- status codes ----------------------------------------------------------------------


@pytest.mark.parametrize(("code", "reason"), [(404, "Not Found"), (500, "Internal Server Error")])
async def test_unexpected_status_fails_with_body_excerpt(
    server: LocalServer, code: int, reason: str
) -> None:
    r = await request(url=f"{server.url}/status/{code}")
    assert r.status == "Failed"
    assert (
        r.error
        == f"GET {server.url}/status/{code} returned HTTP {code} {reason} (expected 2xx): status {code} body"
    )
    assert r.summary["status_code"] == code  # the response is kept for ignore_errors users


async def test_expected_status(server: LocalServer) -> None:
    r = await request(url=f"{server.url}/status/404", expected_status=[404, 410])
    assert r.ok and r.summary["status_code"] == 404
    r = await request(url=f"{server.url}/json", expected_status=201)
    assert r.status == "Failed"
    assert "returned HTTP 200 OK (expected 201)" in r.error


async def test_retry_is_the_workloads(server: LocalServer) -> None:
    r = await run_module(
        "http:request",
        {"url": f"{server.url}/status/503"},
        workload={"retry": {"attempts": 3, "delay": "10ms"}},
    )
    assert r.status == "Failed" and r.state.attempts == 3
    assert len(server.requests) == 3


# -- redirects, timeouts, connection and TLS errors --------------------------------------


async def test_redirects(server: LocalServer) -> None:
    r = await request(url=f"{server.url}/redirect?to=/json")
    assert r.ok and r.summary["url"] == f"{server.url}/json"
    r = await request(
        url=f"{server.url}/redirect?to=/json", follow_redirects=False, expected_status=302
    )
    assert r.ok and r.summary["headers"]["location"] == "/json"
    r = await request(url=f"{server.url}/redirect?to=/json", follow_redirects=False)
    assert "returned HTTP 302 Found (expected 2xx)" in r.error
    r = await request(url=f"{server.url}/redirect/loop")
    assert r.error == f"GET {server.url}/redirect/loop: too many redirects"


async def test_slow_server_times_out(server: LocalServer) -> None:
    started = time.monotonic()
    r = await request(url=f"{server.url}/slow?delay=5", timeout="200ms")
    assert time.monotonic() - started < 3
    assert r.status == "Failed"
    assert (
        r.error
        == f"GET {server.url}/slow?delay=5: waiting for the response timed out after 200ms (param 'timeout')"
    )
    fast = await request(url=f"{server.url}/slow?delay=0.05", timeout=2)
    assert fast.ok


async def test_workload_timeout_cancels_the_request(server: LocalServer) -> None:
    started = time.monotonic()
    r = await run_module(
        "http:request", {"url": f"{server.url}/slow?delay=5"}, workload={"timeout": "200ms"}
    )
    assert time.monotonic() - started < 3
    assert (r.status, r.error) == ("Failed", "timed out after 200ms")


async def test_connection_refused() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    r = await request(url=f"http://127.0.0.1:{port}/x")
    assert r.status == "Failed"
    assert r.error.startswith(f"GET http://127.0.0.1:{port}/x: cannot connect:")


async def test_invalid_url() -> None:
    r = await request(url="ftp://127.0.0.1/file")
    assert r.status == "Failed" and r.error.startswith("invalid url 'ftp://127.0.0.1/file'")


async def test_tls_with_ca_file_without_and_skipped(
    tls_server: LocalServer, tmp_path: Path
) -> None:
    url = f"{tls_server.url}/json"
    r = await run_module("http:request", {"url": url, "ca_file": "ca.pem"}, workspace=tmp_path)
    assert r.ok, r.error
    assert r.summary["json_body"]["hello"] == "world"
    r = await request(url=url)
    assert r.status == "Failed"
    assert "TLS certificate verification failed" in r.error
    assert "set ca_file to the CA that signed it, or skip_tls_verify: true" in r.error
    r = await request(url=url, skip_tls_verify=True)
    assert r.ok, r.error
    r = await run_module("http:request", {"url": url, "ca_file": "missing.pem"}, workspace=tmp_path)
    assert r.error == f"ca_file not found: {tmp_path}/missing.pem"


# -- auth and secrets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "auth"),
    [
        ("bearer", {"type": "bearer", "token": TOKEN}),
        ("basic", {"type": "basic", "username": USER, "password": PASSWORD}),
        ("header", {"type": "header", "value": TOKEN}),
    ],
)
async def test_auth_kinds(server: LocalServer, kind: str, auth: dict) -> None:
    r = await request(url=f"{server.url}/auth/{kind}", auth=auth)
    assert r.ok, r.error
    assert r.summary["json_body"] == {"authenticated": kind}
    wrong = await request(
        url=f"{server.url}/auth/{kind}",
        auth={
            **auth,
            **(
                {"password": "x"}
                if kind == "basic"
                else {"token": "x"}
                if kind == "bearer"
                else {"value": "x"}
            ),
        },
    )
    assert wrong.status == "Failed" and "HTTP 401 Unauthorized" in wrong.error


async def test_secret_in_auth_never_reaches_outputs(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN", TOKEN)
    # /echo sends the request headers back: the token comes back in the body too.
    r = await request(
        url=f"{server.url}/echo?token={{{{ secret('API_TOKEN') }}}}",
        auth={"type": "bearer", "token": "{{ secret('API_TOKEN') }}"},
    )
    assert r.ok, r.error
    assert server.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"  # it was sent
    outputs = json.dumps(
        [r.summary, r.logs, r.state.rendered_params, [e.data for e in r.events]], default=str
    )
    assert TOKEN not in outputs
    assert "Bearer [REDACTED]" in outputs
    basic = await request(
        url=f"{server.url}/echo",
        auth={"type": "basic", "username": USER, "password": "{{ secret('API_TOKEN') }}"},
    )
    encoded = base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
    assert server.requests[-1].headers["Authorization"] == f"Basic {encoded}"
    assert basic.summary["json_body"]["headers"]["authorization"] == "Basic [REDACTED]"
    assert encoded not in json.dumps([basic.summary, basic.logs])
    failed = await request(url=f"{server.url}/status/500?k={{{{ secret('API_TOKEN') }}}}")
    assert TOKEN not in failed.error and "[REDACTED]" in failed.error


# -- pagination and streaming -----------------------------------------------------------------


async def test_emit_single_page(server: LocalServer) -> None:
    r = await request(url=f"{server.url}/json", emit="{{ response.json_body['items'] }}")
    assert r.records == [{"value": 1}, {"value": 2}, {"value": 3}]
    assert (r.summary["pages"], r.summary["records_emitted"]) == (1, 3)
    assert "truncated" not in r.summary


async def test_paginate_follows_next_until_empty(server: LocalServer) -> None:
    r = await request(
        url=f"{server.url}/pages",
        query={"size": 3, "total": 7},
        emit="{{ response.json_body['items'] }}",
        paginate={"next": "{{ response.json_body.next }}"},
    )
    assert r.ok, r.error
    assert [rec["id"] for rec in r.records] == [1, 2, 3, 4, 5, 6, 7]
    assert (r.summary["pages"], r.summary["records_emitted"], r.summary["truncated"]) == (
        3,
        7,
        False,
    )
    assert r.summary["json_body"]["page"] == 3  # the last response's fields
    assert [req.path for req in server.requests] == [
        "/pages?size=3&total=7",
        "/pages?page=2&size=3&total=7",
        "/pages?page=3&size=3&total=7",
    ]


async def test_paginate_max_pages_and_link_header(server: LocalServer) -> None:
    r = await run_module(
        "http:request",
        {
            "url": f"{server.url}/link-pages?size=2&total=9",
            "emit": "{{ response.json_body }}",
            "paginate": {
                "next": "{{ response.links.next.url if 'next' in response.links else '' }}",
                "max_pages": "{{ limit }}",
            },
        },
        variables={"limit": 2},
    )
    assert r.ok, r.error
    assert [rec["id"] for rec in r.records] == [1, 2, 3, 4]
    assert (r.summary["pages"], r.summary["truncated"]) == (2, True)
    assert any(
        "pagination stopped after max_pages=2; more pages remain" in line for _, line in r.logs
    )


async def test_paginate_sees_page_number_and_stops_on_repeat(server: LocalServer) -> None:
    r = await request(
        url=f"{server.url}/json",
        emit="{{ [{'page': page}] }}",
        paginate={"next": "{{ response.url }}", "max_pages": 10},
    )
    assert r.ok and r.records == [{"page": 1}]
    assert any("was already fetched" in line for _, line in r.logs)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"emit": "{{ response.json_body }}"}, "emit must select a list, got a mapping on page 1"),
        ({"emit": "response.json_body.items"}, "emit must be a template"),
        ({"paginate": {"next": "{{ response.json_body.next }}"}}, "paginate needs emit"),
        (
            {"emit": "{{ [] }}", "paginate": {"next": "/x", "max_pages": 2}},
            "next must be a template",
        ),
        (
            {"emit": "{{ [] }}", "paginate": {"next": "{{ response.body }}", "max_pages": 0}},
            "max_pages must be at least 1",
        ),
        (
            {"emit": "{{ [] }}", "paginate": {"next": "{{ 5 }}"}},
            "paginate.next must give a URL string, got int: 5",
        ),
        ({"emit": "{{ response.nope }}"}, "nope"),
        (
            {"json": {"a": 1}, "body": "x"},
            "give only one of body, json and form (got body and json)",
        ),
        ({"method": "FETCH"}, "param 'method'"),
        ({"expected_status": [200, 999]}, "expected_status must be HTTP status codes (100-599)"),
        (
            {"auth": {"type": "bearer", "token": "t"}, "headers": {"authorization": "x"}},
            "auth sets the 'authorization' header",
        ),
        ({"auth": {"type": "oauth"}}, "param 'auth'"),
        ({"timeout": "soon"}, "invalid duration 'soon'"),
        (
            {"skip_tls_verify": True, "ca_file": "x.pem"},
            "ca_file has no effect with skip_tls_verify: true",
        ),
    ],
)
async def test_param_and_template_errors(server: LocalServer, params: dict, message: str) -> None:
    r = await request(url=f"{server.url}/json", **params)
    assert r.status == "Failed"
    assert message in r.error


async def test_records_are_emitted_page_by_page_with_back_pressure(server: LocalServer) -> None:
    """A consumer that does not read stops the crawl: page 2 is not requested."""
    workload = Workload.model_validate(
        {
            "name": "crawl",
            "process": Process(
                module="http:request",
                params={
                    "url": f"{server.url}/pages?size=3&total=9",
                    "emit": "{{ response.json_body['items'] }}",
                    "paginate": {"next": "{{ response.json_body.next }}"},
                },
            ),
        }
    )
    state = WorkloadState(workload)
    run = RunContext(run_id="t", workspace=Path.cwd(), variables={}, states={"crawl": state})
    channel = Channel("crawl", "slow_consumer", capacity=2)
    task = asyncio.create_task(
        WorkloadRunner(run).execute(state, MergedReader("crawl"), StreamWriter("crawl", [channel]))
    )
    try:
        for _ in range(100):
            if server.requests:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        assert len(server.requests) == 1  # blocked on the full channel, not fetching ahead
        received = []
        while (batch := await channel.get_batch()) is not None:
            received.extend(batch)
        await task
    finally:
        task.cancel()
    assert state.status.value == "Completed", state.error
    assert [rec["id"] for rec in received] == list(range(1, 10))
    assert len(server.requests) == 3
