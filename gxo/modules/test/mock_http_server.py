"""``test:mock_http_server``: a real HTTP server on 127.0.0.1 for the rest of the run."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, model_validator

from gxo.config.durations import Duration
from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, register

MAX_RECORDED = 10_000  # requests kept in the summary; later ones are only counted


class Handler(ModuleParams):
    """One canned answer."""

    method: str = Field(
        "GET", min_length=1, description="HTTP method to match (any case); * matches every method"
    )
    path: str = Field(
        ...,
        description="Path to match, without the query; {name} matches one segment (/users/{id})",
    )
    status_code: int = Field(200, ge=100, le=599, description="Status code of the answer")
    headers: dict[str, str] = Field(default_factory=dict, description="Response headers")
    body: str | None = Field(
        None,
        description="Response body as text (content-type text/plain unless headers say otherwise)",
    )
    json_body: Any = Field(
        None,
        alias="json",
        description="Response body as JSON (content-type application/json); instead of body",
    )
    delay: Duration = Field(
        0.0, description="Wait this long before answering (seconds or 500ms, 2s ...)"
    )
    times: int | None = Field(
        None,
        ge=1,
        description="Answer only the first N matching requests; later ones go on to the next handler",
    )

    @model_validator(mode="after")
    def _check(self) -> Handler:
        if self.body is not None and "json_body" in self.model_fields_set:
            raise ValueError("give either body or json, not both")
        if not self.path.startswith("/"):
            raise ValueError(f"path must start with '/', got {self.path!r}")
        return self


@register("test:mock_http_server", layer="test")
class MockHttpServer(Module):
    """Serve canned HTTP answers on 127.0.0.1 and record every request.

    The server listens as soon as the workload starts and stays up until the
    whole run ends, then shuts down cleanly; the workload itself completes at
    once, so dependents start while it serves. Dependents template the URL as
    ``{{ mock.server_url }}`` (with ``register: mock``).

    Handlers are tried in order; the first whose method and path match answers
    (``times: N`` lets a handler answer N times, then fall through: a flaky
    endpoint for retry tests). A request no handler matches gets 404 with a
    JSON body naming the handlers it was compared with. GET handlers also answer
    HEAD (headers only).

    Every request is recorded as ``{method, path, query, query_string, headers,
    body, json, path_params, matched, handler, status_code}`` (header names in
    lower case) in the summary's ``requests`` list, and unmatched ones also in
    ``unmatched``. The summary is re-published after each request, so later
    workloads read the live list as ``{{ mock.requests }}`` (register key) or
    ``{{ _gxo.workloads.<name>.summary.requests }}``. A workload that asserts on
    requests must run after the workload that sends them: reference its result
    in the same workload or add ``depends_on``.

    Example:
        - name: api
          process:
            module: test:mock_http_server
            params:
              handlers:
                - { method: GET, path: "/users/{id}", json: { name: ada } }
                - { method: POST, path: /users, status_code: 201, json: { id: 7 }, delay: 50ms }
                - { method: GET, path: /flaky, status_code: 503, times: 2 }
                - { method: GET, path: /flaky, body: ok }
          register: mock
        - name: get_user
          process:
            module: exec
            params: { command: curl, args: [-sf, "{{ mock.server_url }}/users/1"] }
          register: user
        - name: check
          process:
            module: test:assert
            params:
              assertions:
                - { actual: "{{ (user.stdout | from_json).name }}", equal_to: ada }
                - { actual: "{{ mock.requests | map(attribute='path') | list }}", equal_to: [/users/1] }
    """

    class Params(ModuleParams):
        handlers: list[Handler] = Field(
            ...,
            description="Canned answers: {method, path, status_code, headers, body | json, delay, times}",
        )
        port: int | None = Field(
            None,
            ge=1,
            le=65535,
            description="Port to listen on (default: a free one); the host is always 127.0.0.1",
        )

    summary = {
        "server_url": "http://127.0.0.1:<port>, published as soon as the server accepts connections",
        "port": "the port it listens on",
        "requests": "every request received, in order (live)",
        "unmatched": "the requests no handler matched (answered 404)",
        "request_count": "how many requests were received (also those beyond the recorded limit)",
    }

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        from gxo.modules.test._mock_server import HOST, MockServer

        routes = [_route(i, h) for i, h in enumerate(params.handlers)]
        recorded: list[dict[str, Any]] = []
        unmatched: list[dict[str, Any]] = []
        count = 0

        def snapshot() -> dict[str, Any]:
            return {
                "server_url": server.url,
                "port": server.port,
                "requests": list(recorded),
                "unmatched": list(unmatched),
                "request_count": count,
            }

        def on_request(record: dict[str, Any]) -> None:
            nonlocal count
            count += 1
            ctx.count("requests")
            if len(recorded) < MAX_RECORDED:
                recorded.append(record)
                if not record["matched"]:
                    unmatched.append(record)
            query = f"?{record['query_string']}" if record["query_string"] else ""
            note = "" if record["matched"] else " (no handler matched)"
            ctx.log(f"{record['method']} {record['path']}{query} -> {record['status_code']}{note}")
            ctx.publish(snapshot())

        server = MockServer(routes, on_request)
        try:
            await server.start(params.port or 0)
        except OSError as exc:
            raise ctx.fail(
                f"cannot listen on {HOST}:{params.port or 0}: {exc.strerror or exc}"
            ) from None
        ctx.defer(server.close)
        ctx.log(
            f"listening on {server.url} ({len(routes)} handler{'s' if len(routes) != 1 else ''})"
        )
        summary = snapshot()
        ctx.publish(summary)
        return summary


def _route(index: int, handler: Handler) -> Any:
    from gxo.modules.test._mock_server import Route

    content_type = None
    if "json_body" in handler.model_fields_set:
        body = json.dumps(handler.json_body).encode()
        content_type = "application/json"
    elif handler.body is not None:
        body = handler.body.encode()
        content_type = "text/plain; charset=utf-8"
    else:
        body = b""
    return Route(
        index=index,
        method="*" if handler.method.strip() == "*" else handler.method.strip().upper(),
        path=handler.path,
        status_code=handler.status_code,
        headers=dict(handler.headers),
        body=body,
        content_type=content_type,
        delay=handler.delay,
        times=handler.times,
    )
