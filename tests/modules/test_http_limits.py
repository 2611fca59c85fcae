"""http:request: max_body_bytes, and URLs httpx accepts but cannot connect to (issue 8)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from http_server import LocalServer, serve

from gxo.modules.testkit import run_module


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with serve() as srv:
        yield srv


def test_the_default_cap_is_64_mib() -> None:
    from gxo.modules.base import REGISTRY

    field = REGISTRY.get("http:request").cls.Params.model_fields["max_body_bytes"]
    assert field.default == 64 * 1024 * 1024


async def test_a_body_within_the_cap_is_read_whole(server) -> None:
    r = await run_module(
        "http:request", {"url": f"{server.url}/big?size=5000", "max_body_bytes": 5000}
    )
    assert r.ok, r.error
    assert r.summary["body"] == "x" * 5000


@pytest.mark.parametrize(
    ("query", "what"),
    [
        ("size=300000", "(292.969 KiB, by its Content-Length) is larger than"),
        ("size=300000&length=no", "is larger than"),  # no length: counted while reading
        ("size=3000000&gzip=1", "is larger than"),  # ~3 KiB on the wire, 2.9 MiB unpacked
    ],
)
async def test_a_bigger_body_fails_naming_the_limit(server, query, what) -> None:
    url = f"{server.url}/big?{query}"
    r = await run_module("http:request", {"url": url, "max_body_bytes": 100_000})
    assert r.status == "Failed"
    assert r.error == (
        f"GET {url}: the response body {what} max_body_bytes (100000 bytes, 97.6562 KiB); "
        "raise max_body_bytes, or fetch the listing in smaller pages (emit + paginate)"
    )


async def test_the_cap_holds_for_every_page_with_emit(server) -> None:
    # emit renders a template over the parsed page, so a page is held whole: the cap
    # applies to each page, and paginating keeps each one small.
    params = {
        "url": f"{server.url}/pages?size=2&total=6",
        "emit": "{{ response.json_body['items'] }}",
        "paginate": {"next": "{{ response.json_body.next }}"},
        "max_body_bytes": 200,
    }
    r = await run_module("http:request", params)
    assert r.ok, r.error
    assert r.summary["records_emitted"] == 6
    params["url"] = f"{server.url}/pages?size=6&total=6"
    whole = await run_module("http:request", params)
    assert whole.status == "Failed" and "max_body_bytes (200 bytes" in whole.error


@pytest.mark.parametrize("port", [99999, 65536, 0])
async def test_a_port_out_of_range_is_a_readable_error(port) -> None:
    url = f"http://127.0.0.1:{port}/"
    r = await run_module("http:request", {"url": url})
    # Was: "ExceptionGroup: unhandled errors in a TaskGroup (1 sub-exception)".
    assert r.error == f"invalid url {url!r}: port {port} is out of range (1-65535)"


async def test_a_bad_max_body_bytes_is_rejected() -> None:
    r = await run_module("http:request", {"url": "http://127.0.0.1:1/", "max_body_bytes": 0})
    assert r.error.startswith("module 'http:request' params: param 'max_body_bytes'")
