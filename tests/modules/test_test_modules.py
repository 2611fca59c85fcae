"""``test:assert`` and ``test:mock_http_server``: operators, failure reports, a real server."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from gxo.modules.testkit import run_module

# -- test:assert ----------------------------------------------------------------------


async def assert_one(assertion: dict, **variables) -> object:
    return await run_module("test:assert", {"assertions": [assertion]}, variables=variables)


@pytest.mark.parametrize(
    ("assertion", "variables"),
    [
        ({"actual": "{{ x }}", "equal_to": {"a": [1, 2]}}, {"x": {"a": [1, 2]}}),
        ({"actual": "{{ x }}", "equal_to": 1.0}, {"x": 1}),
        ({"actual": "{{ x }}", "not_equal_to": "1"}, {"x": 1}),
        ({"actual": "{{ x }}", "not_equal_to": True}, {"x": 1}),
        ({"actual": "{{ x }}", "contains": "ell"}, {"x": "hello"}),
        ({"actual": "{{ x }}", "contains": 2}, {"x": [1, 2]}),
        ({"actual": "{{ x }}", "contains": "k"}, {"x": {"k": 0}}),
        ({"actual": "{{ x }}", "not_contains": 3}, {"x": [1, 2]}),
        ({"actual": "{{ x }}", "matches": r"^h\w+o$"}, {"x": "hello"}),
        ({"actual": "{{ x }}", "matches": "^4"}, {"x": 42}),
        ({"actual": "{{ x }}", "is_true": True}, {"x": "yes"}),
        ({"actual": "{{ x }}", "is_true": False}, {"x": "false"}),
        ({"actual": "{{ x }}", "is_false": True}, {"x": []}),
        ({"actual": "{{ x }}", "is_none": True}, {"x": None}),
        ({"actual": "{{ x }}", "is_none": False}, {"x": 0}),
        ({"actual": "{{ x.a }}", "is_defined": True}, {"x": {"a": None}}),
        ({"actual": "{{ x.b }}", "is_defined": False}, {"x": {"a": 1}}),
        ({"actual": "{{ x }}", "greater_than": 2}, {"x": 3}),
        ({"actual": "{{ x }}", "less_than": "b"}, {"x": "a"}),
        ({"actual": "{{ x }}", "length": 2}, {"x": {"a": 1, "b": 2}}),
        ({"actual": "{{ x }}", "length": "{{ n }}"}, {"x": "abc", "n": 3}),
        ({"actual": "{{ x }}", "equal_to": "{{ y }}"}, {"x": [1], "y": [1]}),
        ({"actual": "plain", "equal_to": "plain"}, {}),
    ],
)
async def test_assert_operators_pass(assertion: dict, variables: dict) -> None:
    result = await assert_one(assertion, **variables)
    assert result.status == "Completed", result.error
    assert result.summary == {"assertions_passed": 1}


@pytest.mark.parametrize(
    ("assertion", "variables", "reason"),
    [
        (
            {"actual": "{{ x }}", "equal_to": 200},
            {"x": "200"},
            'expected 200, actual "200" (int vs string)',
        ),
        (
            {"actual": "{{ x }}", "equal_to": 1},
            {"x": True},
            "expected 1, actual true (int vs bool)",
        ),
        ({"actual": "{{ x }}", "not_equal_to": [1]}, {"x": [1]}, "expected anything but [1]"),
        ({"actual": "{{ x }}", "contains": "z"}, {"x": "abc"}, '"abc" does not contain "z"'),
        ({"actual": "{{ x }}", "not_contains": 1}, {"x": [1]}, "[1] contains 1"),
        ({"actual": "{{ x }}", "contains": 1}, {"x": 5}, "cannot test containment in an int: 5"),
        ({"actual": "{{ x }}", "matches": "^b"}, {"x": "abc"}, '"abc" does not match /^b/'),
        (
            {"actual": "{{ x }}", "matches": "a"},
            {"x": [1]},
            "matches needs a string, actual is a list: [1]",
        ),
        ({"actual": "{{ x }}", "is_true": True}, {"x": 0}, "expected a truthy value, actual 0"),
        (
            {"actual": "{{ x }}", "is_false": True},
            {"x": "on"},
            'expected a falsy value, actual "on"',
        ),
        ({"actual": "{{ x }}", "is_none": True}, {"x": 0}, "expected null, actual 0"),
        (
            {"actual": "{{ x }}", "is_defined": False},
            {"x": 1},
            "expected an undefined value, got 1",
        ),
        (
            {"actual": "{{ x.y }}", "is_defined": True},
            {"x": {}},
            "expected a defined value, but it is undefined",
        ),
        ({"actual": "{{ x }}", "greater_than": 5}, {"x": 5}, "expected a value > 5, actual 5"),
        ({"actual": "{{ x }}", "less_than": 1}, {"x": "a"}, 'cannot compare string "a" with int 1'),
        (
            {"actual": "{{ x }}", "length": 1},
            {"x": [1, 2]},
            "expected length 1, actual length 2: [1, 2]",
        ),
        ({"actual": "{{ x }}", "length": 1}, {"x": 7}, "an int has no length: 7"),
    ],
)
async def test_assert_operators_fail_with_a_reason(
    assertion: dict, variables: dict, reason: str
) -> None:
    result = await assert_one(assertion, **variables)
    assert result.status == "Failed"
    failure = result.summary["failures"][0]
    assert failure["reason"] == reason
    assert failure["operator"] == next(k for k in assertion if k != "actual")
    assert result.error == f"1 of 1 assertions failed: assertions[0]: {reason}"


async def test_every_assertion_is_evaluated_and_every_failure_reported() -> None:
    result = await run_module(
        "test:assert",
        {
            "assertions": [
                {
                    "actual": "{{ user }}",
                    "equal_to": {"name": "ada", "roles": ["a", "b"]},
                    "msg": "user",
                },
                {"actual": "{{ nope.deeper }}", "equal_to": 1},
                {"actual": "{{ user.name }}", "equal_to": "ada"},
                {"actual": "{{ text }}", "equal_to": "a\nB\nc"},
                {"actual": "{{ 1 / 0 }}", "equal_to": 1},
            ]
        },
        variables={"user": {"name": "ada", "roles": ["a", "c"]}, "text": "a\nb\nc"},
    )
    assert result.status == "Failed"
    summary = result.summary
    assert summary["assertions_passed"] == 1
    assert summary["assertions_failed"] == 4
    by_index = {f["index"]: f for f in summary["failures"]}
    assert sorted(by_index) == [0, 1, 3, 4]
    assert by_index[0]["msg"] == "user"
    assert by_index[0]["diff"] == '~ roles[1]: expected "b", actual "c"'
    assert by_index[0]["actual_template"] == "{{ user }}"
    assert "undefined name 'nope'" in by_index[1]["error"]
    assert by_index[1]["actual"] is None
    assert by_index[3]["diff"].splitlines()[:2] == ["--- expected", "+++ actual"]
    assert "-B" in by_index[3]["diff"] and "+b" in by_index[3]["diff"]
    assert by_index[4]["reason"].startswith("cannot evaluate actual:")
    assert result.error.startswith("4 of 5 assertions failed: assertions[0] (user): expected ")
    assert result.error.endswith("; and 1 more")
    assert ("log", "ok    assertions[2]: equal_to") in result.logs


async def test_msg_and_expected_values_are_templates() -> None:
    result = await run_module(
        "test:assert",
        {"assertions": [{"actual": 1, "equal_to": "{{ want }}", "msg": "want {{ want }}"}]},
        variables={"want": 2},
    )
    assert result.summary["failures"][0]["msg"] == "want 2"
    assert result.summary["failures"][0]["expected"] == 2


async def test_an_expected_value_that_fails_to_render_is_that_assertions_failure() -> None:
    result = await run_module(
        "test:assert",
        {"assertions": [{"actual": 1, "equal_to": "{{ missing }}"}, {"actual": 1, "equal_to": 1}]},
    )
    assert result.summary["assertions_passed"] == 1
    assert (
        result.summary["failures"][0]["reason"]
        == "cannot evaluate equal_to: undefined name 'missing' in '{{ missing }}'"
    )


@pytest.mark.parametrize(
    ("assertion", "message"),
    [
        ({"actual": 1}, "an assertion needs one operator: one of equal_to"),
        (
            {"actual": 1, "equal_to": 1, "contains": 1},
            "an assertion takes one operator, got equal_to and contains",
        ),
        ({"actual": 1, "matches": "("}, "matches: invalid regular expression '('"),
        ({"actual": 1, "length": "three"}, "length must be a non-negative integer, got 'three'"),
        ({"actual": 1, "length": -1}, "length must be a non-negative integer, got -1"),
        ({"actual": 1, "is_true": None}, "is_true must be true or false"),
        ({"actual": 1, "equals": 1}, "unknown key 'equals' (did you mean 'equal_to'?)"),
        ({"equal_to": 1}, "missing required key 'actual'"),
    ],
)
def test_bad_assertions_are_rejected_when_the_playbook_loads(
    write_playbook, assertion: dict, message: str
) -> None:
    import json

    from gxo.config.loader import load_playbook
    from gxo.errors import PlaybookValidationError

    path = write_playbook(
        f"""
        schemaVersion: "1.0.0"
        name: bad
        workloads:
          - name: check
            process:
              module: test:assert
              params:
                assertions:
                  - {json.dumps(assertion)}
        """
    )
    with pytest.raises(PlaybookValidationError) as err:
        load_playbook(path)
    assert message in str(err.value)
    assert f"{path}:9:" in str(err.value)  # names the assertion's line


async def test_assert_on_workload_status_after_ignore_errors(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: failure-path
        workloads:
          - name: flaky
            ignore_errors: true
            process: { module: exec, params: { command: sh, args: [-c, "exit 3"] } }
          - name: check
            process:
              module: test:assert
              params:
                assertions:
                  - { actual: "{{ _gxo.workloads.flaky.status }}", equal_to: Failed }
                  - { actual: "{{ _gxo.workloads.flaky.error }}", contains: "code 3" }
        """
    )
    assert result.status == "Completed"
    assert result.states["check"].summary == {"assertions_passed": 2}


async def test_a_failing_assert_keeps_its_structured_summary_in_the_run(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: failing
        workloads:
          - name: check
            process:
              module: test:assert
              params: { assertions: [{ actual: "{{ [1, 2] }}", equal_to: [1, 3] }] }
            register: verdict
        """
    )
    assert result.status == "Failed"
    summary = result.states["check"].summary
    assert summary["failures"][0]["diff"] == "~ [1]: expected 3, actual 2"


async def test_assert_values_with_secrets_are_redacted(run_yaml, monkeypatch) -> None:
    monkeypatch.setenv("GXO_TEST_TOKEN", "s3cr3t-value")
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: secret-assert
        workloads:
          - name: check
            process:
              module: test:assert
              params: { assertions: [{ actual: "{{ secret('GXO_TEST_TOKEN') }}", equal_to: wrong }] }
        """
    )
    state = result.states["check"]
    assert "s3cr3t-value" not in repr(state.summary) + (state.error or "")
    assert state.summary["failures"][0]["actual"] == "[REDACTED]"


# -- test:mock_http_server ----------------------------------------------------------------

HANDLERS = [
    {"method": "GET", "path": "/users/{id}", "json": {"name": "ada"}},
    {
        "method": "post",
        "path": "/users",
        "status_code": 201,
        "body": "created",
        "headers": {"X-Id": "7"},
    },
    {"method": "GET", "path": "/flaky", "status_code": 503, "times": 2},
    {"method": "GET", "path": "/flaky", "body": "ok"},
    {"method": "*", "path": "/any", "status_code": 204},
    {"method": "GET", "path": "/slow", "body": "late", "delay": "200ms"},
]


async def start_mock(handlers: list[dict] | None = None, **params) -> object:
    result = await run_module(
        "test:mock_http_server",
        {"handlers": HANDLERS if handlers is None else handlers, **params},
        workload={"register": "mock"},
        keep_run_open=True,
    )
    assert result.status == "Completed", result.error
    return result


async def test_mock_serves_handlers_and_records_requests() -> None:
    mock = await start_mock()
    try:
        url = mock.summary["server_url"]
        assert url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=url) as client:
            got = await client.get(
                "/users/42", params={"q": "x", "tag": ["a", "b"]}, headers={"X-Trace": "t1"}
            )
            assert (got.status_code, got.json(), got.headers["content-type"]) == (
                200,
                {"name": "ada"},
                "application/json",
            )
            posted = await client.post("/users", json={"name": "grace"})
            assert (posted.status_code, posted.text, posted.headers["x-id"]) == (
                201,
                "created",
                "7",
            )
            assert posted.headers["content-type"].startswith("text/plain")
            flaky = [(await client.get("/flaky")).status_code for _ in range(3)]
            assert flaky == [503, 503, 200]
            assert (await client.delete("/any")).status_code == 204
            missing = await client.get("/nope")
        assert missing.status_code == 404
        assert missing.json() == {
            "error": "no handler matched GET /nope",
            "handlers": [
                "GET /users/{id}",
                "POST /users",
                "GET /flaky (used up)",
                "GET /flaky",
                "* /any",
                "GET /slow",
            ],
        }
        live = mock.run.store.get("mock")  # the register key sees every request
        assert live["request_count"] == 7
        first = live["requests"][0]
        assert first["method"] == "GET"
        assert first["path"] == "/users/42"
        assert first["path_params"] == {"id": "42"}
        assert first["query"] == {"q": "x", "tag": ["a", "b"]}
        assert first["headers"]["x-trace"] == "t1"
        assert (first["matched"], first["handler"], first["status_code"]) == (True, 0, 200)
        assert live["requests"][1]["json"] == {"name": "grace"}
        assert live["requests"][1]["body"] == '{"name":"grace"}'
        assert [r["path"] for r in live["unmatched"]] == ["/nope"]
        assert live["unmatched"][0]["matched"] is False
        assert mock.state.summary == live  # _gxo.workloads.<name>.summary is the same live view
        assert mock.state.counters["requests"] == 7
    finally:
        await mock.run.run_deferred()


async def test_mock_delay_and_head() -> None:
    mock = await start_mock()
    try:
        async with httpx.AsyncClient(base_url=mock.summary["server_url"]) as client:
            loop = asyncio.get_running_loop()
            started = loop.time()
            slow = await client.get("/slow")
            assert slow.text == "late"
            assert loop.time() - started >= 0.2
            head = await client.head("/users/1")
            assert head.status_code == 200
            assert head.headers["content-length"] == str(len('{"name": "ada"}'))
            assert head.content == b""
    finally:
        await mock.run.run_deferred()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_mock_listens_on_the_given_port_only_on_loopback() -> None:
    port = free_port()
    mock = await start_mock(port=port)
    try:
        assert mock.summary["server_url"] == f"http://127.0.0.1:{port}"
        assert mock.summary["port"] == port
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/users/1")).status_code == 200
    finally:
        await mock.run.run_deferred()


async def test_mock_port_in_use_is_a_clear_failure() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = await run_module("test:mock_http_server", {"handlers": HANDLERS, "port": port})
    assert result.status == "Failed"
    assert result.error.startswith(f"cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in result.error.lower()


async def test_mock_answers_a_malformed_request_with_400() -> None:
    mock = await start_mock()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", mock.summary["port"])
        writer.write(b"THIS IS NOT HTTP\r\n\r\n")
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await writer.wait_closed()
        assert reply.startswith(b"HTTP/1.1 400 ")
    finally:
        await mock.run.run_deferred()


async def test_mock_shutdown_closes_idle_keepalive_connections() -> None:
    mock = await start_mock()
    reader, writer = await asyncio.open_connection("127.0.0.1", mock.summary["port"])
    try:
        writer.write(b"GET /users/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 ")
        await reader.readexactly(len(b'{"name": "ada"}'))
        # The connection is idle but open (keep-alive) when the run ends.
        await asyncio.wait_for(mock.run.run_deferred(), 5)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the server closed it
    finally:
        writer.close()
        await writer.wait_closed()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", mock.summary["port"])


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ({"path": "/x", "body": "a", "json": {}}, "give either body or json, not both"),
        ({"path": "x"}, "path must start with '/'"),
        ({"path": "/x", "status_code": 99}, "status_code"),
        ({"path": "/x", "delay": "soon"}, "invalid duration 'soon'"),
        ({"path": "/x", "verb": "GET"}, "unknown key 'verb'"),
    ],
)
def test_bad_handlers_are_rejected_when_the_playbook_loads(
    write_playbook, handler: dict, message: str
) -> None:
    import json

    from gxo.config.loader import load_playbook
    from gxo.errors import PlaybookValidationError

    path = write_playbook(
        f"""
        schemaVersion: "1.0.0"
        name: bad
        workloads:
          - name: mock
            process:
              module: test:mock_http_server
              params:
                handlers:
                  - {json.dumps(handler)}
        """
    )
    with pytest.raises(PlaybookValidationError) as err:
        load_playbook(path)
    assert message in str(err.value)


async def test_mock_url_is_published_for_dependents_and_server_stops_with_the_run(run_yaml) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: mock-in-a-run
        workloads:
          - name: api
            process:
              module: test:mock_http_server
              params: { handlers: [{ path: /ping, body: pong }] }
            register: mock
          - name: call
            process:
              module: exec
              params: { command: curl, args: [-sS, "{{ mock.server_url }}/ping"] }
            register: called
          - name: check
            process:
              module: test:assert
              params:
                assertions:
                  - { actual: "{{ called.stdout }}", equal_to: pong }
                  - { actual: "{{ mock.requests | map(attribute='path') | list }}", equal_to: [/ping] }
                  - { actual: "{{ _gxo.workloads.api.summary.request_count }}", equal_to: 1 }
        """
    )
    assert result.status == "Completed", {n: s.error for n, s in result.states.items()}
    port = result.states["api"].summary["port"]
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
