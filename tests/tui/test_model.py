"""RunModel: the view state the TUI builds from events (no Textual involved)."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from gxo.api import Event, EventKind, load_playbook
from gxo.tui.format import duration, elapsed, param_parts
from gxo.tui.model import LOG_LIMIT, RunModel

PLAYBOOK = """
schemaVersion: "1.0.0"
name: model
channel_policy: { buffer_size: 4 }
workloads:
  - name: a
    process: { module: control:identity, params: { x: 1 } }
    register: ra
  - name: src
    process: { module: data:generate_from_list, params: { items: [1, 2] } }
  - name: b
    process: { module: passthrough }
    stream_inputs: [src]
    depends_on: [a]
  - name: c
    process: { module: control:identity, params: { y: "{{ ra.x }}" } }
"""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def model() -> tuple[RunModel, Clock]:
    clock = Clock()
    return RunModel.from_loaded(load_playbook(text=textwrap.dedent(PLAYBOOK)), clock=clock), clock


def ev(kind: EventKind, workload: str | None = None, t: float = 0.0, **data: Any) -> Event:
    return Event(kind, workload, data, t)


def test_levels_inputs_and_idle_links_come_from_the_graph(model: Any) -> None:
    m, _ = model
    assert m.levels == [["a", "src"], ["b", "c"]]
    assert m.workloads["b"].inputs == [("a", "order"), ("src", "stream")]
    assert m.workloads["c"].inputs == [("a", "state")]
    link = m.links[("src", "b")]
    assert (link.capacity, link.sent, link.depth) == (4, 0, 0)
    assert m.run_status == "Pending" and not m.finished


def test_status_events_and_run_status(model: Any) -> None:
    m, clock = model
    m(ev(EventKind.RUN_STARTED, run_id="r1"))
    assert m.run_status == "Running"
    m(ev(EventKind.WORKLOAD_STATUS, "a", status="Running", attempts=0, duration_ms=0.0))
    m(ev(EventKind.WORKLOAD_RETRYING, "a", attempt=1, next_attempt=2, delay=0.5, error="boom"))
    view = m.workloads["a"]
    assert view.attempts == 2 and view.retry == "attempt 1 failed: boom; retrying in 0.5s"
    m(
        ev(
            EventKind.WORKLOAD_STATUS,
            "a",
            status="Failed",
            attempts=2,
            duration_ms=12.5,
            error="boom",
        )
    )
    assert (view.status, view.error, view.retry) == ("Failed", "boom", None)
    assert m.counts() == {"Failed": 1, "Pending": 3}
    clock.now = 103.5
    assert m.elapsed() == pytest.approx(3.5)
    # workload statuses never make the run final; only RUN_FINISHED does
    for name in ("src", "b", "c"):
        m(ev(EventKind.WORKLOAD_STATUS, name, status="Completed", attempts=1, duration_ms=1.0))
    assert m.run_status == "Running"
    m(ev(EventKind.RUN_FINISHED, status="Failed", duration_ms=2000.0))
    assert m.run_status == "Failed" and m.finished
    clock.now = 200.0
    assert m.elapsed() == 2.0  # frozen at the run's own duration


def test_versions_change_only_for_what_changed(model: Any) -> None:
    m, _ = model
    before = m.workloads["c"].version
    m(ev(EventKind.WORKLOAD_STATUS, "a", status="Running"))
    assert m.workloads["c"].version == before
    m(ev(EventKind.WORKLOAD_SUMMARY, "c", summary={"y": 1}))
    assert m.workloads["c"].version == before + 1
    m(ev(EventKind.WORKLOAD_STATUS, "unknown", status="Running"))  # ignored, not an error


def test_logs_are_numbered_and_bounded(model: Any) -> None:
    m, _ = model
    for i in range(LOG_LIMIT + 5):
        m(ev(EventKind.LOG, "a", stream="stdout", level="info", line=f"line {i}"))
    m(ev(EventKind.LOG, "c", stream="stderr", level="info", line="oops"))
    lines = m.log_lines("a")
    assert len(lines) == LOG_LIMIT
    assert lines[0].text == "line 5" and lines[-1].seq == LOG_LIMIT + 5
    assert m.log_lines("c")[0].seq == LOG_LIMIT + 6
    assert list(m.log_lines("nobody")) == []


def test_stream_stats_rates_and_back_pressure(model: Any) -> None:
    m, _ = model
    stats = {
        "producer": "src",
        "consumer": "b",
        "sent": 4,
        "delivered": 0,
        "depth": 4,
        "capacity": 4,
        "dropped": 0,
    }
    m(ev(EventKind.STREAM_STATS, t=10.0, links=[stats]))
    link = m.links[("src", "b")]
    assert link.full and list(link.rates) == []
    m(ev(EventKind.STREAM_STATS, t=10.5, links=[{**stats, "delivered": 50, "sent": 54}]))
    assert list(link.rates) == [100.0]
    assert m.links_version == 2


def test_paused_workloads_are_listed_until_they_move_on(model: Any) -> None:
    m, _ = model
    m(ev(EventKind.WORKLOAD_STATUS, "c", status="Paused", resume_token="tok-1", prompt="Approve?"))
    entry = m.paused["c"]
    assert (entry.token, entry.prompt) == ("tok-1", "Approve?")
    m(ev(EventKind.WORKLOAD_STATUS, "c", status="Running"))
    assert m.paused == {}


def test_paused_view_reads_what_wait_for_signal_and_the_daemon_send(model: Any) -> None:
    m, _ = model
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    # a local run: prompt, schema, expiry as epoch seconds, no token
    m(
        ev(
            EventKind.WORKLOAD_STATUS,
            "a",
            t=1000.0,
            status="Paused",
            prompt="Go?",
            payload_schema=schema,
            expires_at=1030.0,
        )
    )
    # the daemon: the token in `token`, the expiry as ISO 8601
    m(
        ev(
            EventKind.WORKLOAD_STATUS,
            "c",
            t=1000.0,
            status="Paused",
            prompt="Deploy?",
            token="gxr_abc",
            expires_at="1970-01-01T00:20:00Z",
        )
    )
    a, c = m.paused["a"], m.paused["c"]
    assert (a.token, a.schema, a.since, a.expires_at) == ("", schema, 1000.0, 1030.0)
    assert (c.token, c.schema, c.expires_at) == ("gxr_abc", None, 1200.0)
    assert m.counts()["Paused"] == 2


def test_formatting_helpers() -> None:
    assert [duration(v) for v in (None, 12.4, 1500, 125_000)] == ["", "12ms", "1.5s", "2m05s"]
    assert elapsed(75.25) == "01:15.2"
    assert elapsed(3725) == "1:02:05.0"
    assert param_parts("args[1]") == ["args", 1]
    assert param_parts("headers.Accept") == ["headers", "Accept"]
    assert param_parts("a[0][2].b") == ["a", 0, 2, "b"]


def test_pretty_json_trims_huge_values() -> None:
    import json

    from gxo.tui.format import pretty_json

    text = pretty_json(
        {"lines": list(range(100_000)), "blob": "x" * 5000}, max_items=3, max_chars=10
    )
    data = json.loads(text)
    assert data["lines"] == [0, 1, 2, "… 99997 more items"]
    assert data["blob"] == "xxxxxxxxxx… (4990 more characters)"
