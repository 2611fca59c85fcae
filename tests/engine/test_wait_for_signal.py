"""control:wait_for_signal with the in-process brokers: pause, resume, reject, timeout, races."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gxo.engine.events import EventBus, EventKind
from gxo.engine.signals import (
    InvalidPayload,
    NoAnswer,
    PauseClosed,
    PauseRequest,
    PayloadFileBroker,
    QueueBroker,
    Rejected,
    check_payload,
    load_payload_file,
)

APPROVAL = """
schemaVersion: "1.0.0"
name: approvals
workloads:
  - name: approve
    process:
      module: control:wait_for_signal
      params:
        prompt: "Deploy {{ version }}?"
        payload_schema:
          type: object
          properties: { approved: { type: boolean }, note: { type: string } }
          required: [approved]
        {extra}
    register: approval
  - name: deploy
    depends_on: [approve]
    process:
      module: control:identity
      params: { seen: "{{ _gxo.resume_payload.approved }}", note: "{{ approval.payload.note }}" }
    register: deployed
  - name: independent
    process: { module: control:identity, params: { ok: true } }
"""


def _playbook(extra: str = "") -> str:
    return APPROVAL.replace("{extra}", extra or "on_timeout: fail")


async def _wait_paused(broker: QueueBroker, workload: str = "approve") -> None:
    for _ in range(400):
        if workload in broker.pending:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{workload} never paused")


async def test_resume_completes_and_downstream_sees_the_payload(run_yaml: Any) -> None:
    broker = QueueBroker(identity="alice")
    bus = EventBus()
    seen: list[dict[str, Any]] = []
    bus.add_listener(
        lambda e: (
            seen.append(e.data | {"w": e.workload}) if e.kind is EventKind.WORKLOAD_STATUS else None
        )
    )
    run = asyncio.ensure_future(
        run_yaml(_playbook(), signals=broker, bus=bus, extra_vars={"version": "1.2"})
    )
    await _wait_paused(broker)
    paused = [s for s in seen if s["w"] == "approve" and s["status"] == "Paused"]
    assert paused and paused[0]["prompt"] == "Deploy 1.2?"
    assert paused[0]["payload_schema"]["required"] == ["approved"]
    # the independent branch is not held up by the pause
    assert any(s["w"] == "independent" and s["status"] == "Completed" for s in seen)
    assert not any(s["w"] == "deploy" and s["status"] == "Running" for s in seen)
    with pytest.raises(InvalidPayload, match="approved"):
        broker.resume("approve", {"note": "no approved field"})
    assert "approve" in broker.pending  # a bad payload leaves it paused
    broker.resume("approve", {"approved": True, "note": "ship it"})
    result = await asyncio.wait_for(run, 10)
    assert result.status == "Completed"
    summary = result.states["approve"].summary
    assert summary["payload"] == {"approved": True, "note": "ship it"}
    assert summary["resumed_by"] == "alice" and summary["timed_out"] is False
    assert summary["waited_ms"] >= 0 and summary["resumed_at"].endswith("+00:00")
    assert result.states["deploy"].summary == {"seen": True, "note": "ship it"}
    order = [s["status"] for s in seen if s["w"] == "approve"]
    assert order == ["Running", "Paused", "Running", "Completed"]


async def test_reject_fails_the_workload_and_skips_downstream(run_yaml: Any) -> None:
    broker = QueueBroker()
    run = asyncio.ensure_future(run_yaml(_playbook(), signals=broker, extra_vars={"version": 1}))
    await _wait_paused(broker)
    broker.reject("approve", "not today", by="bob")
    result = await asyncio.wait_for(run, 10)
    assert result.states["approve"].status == "Failed"
    assert "rejected by bob: not today" in result.states["approve"].error
    assert result.states["deploy"].status == "Skipped"
    with pytest.raises(PauseClosed, match="not paused"):
        broker.resume("approve", {"approved": True})


@pytest.mark.parametrize(
    ("extra", "status", "payload"),
    [
        ("on_timeout: fail", "Failed", None),
        ("on_timeout: continue", "Completed", None),
        (
            "on_timeout: default\n        default_payload: { approved: false }",
            "Completed",
            {"approved": False},
        ),
    ],
)
async def test_timeout(run_yaml: Any, extra: str, status: str, payload: Any) -> None:
    broker = QueueBroker()
    text = _playbook("timeout: 50ms\n        " + extra)
    result = await asyncio.wait_for(run_yaml(text, signals=broker, extra_vars={"version": 1}), 10)
    state = result.states["approve"]
    assert state.status == status, state.error
    if status == "Failed":
        assert "no answer within 0.05s" in state.error
    else:
        assert state.summary["timed_out"] is True and state.summary["payload"] == payload
        assert state.summary["resumed_by"] is None
    assert not broker.pending


async def test_default_payload_must_match_the_schema(run_yaml: Any) -> None:
    text = _playbook("timeout: 1s\n        on_timeout: default\n        default_payload: { x: 1 }")
    result = await run_yaml(text, signals=QueueBroker(), extra_vars={"version": 1})
    assert "default_payload: payload does not match" in result.states["approve"].error


async def test_no_broker_fails_with_the_way_out(run_yaml: Any) -> None:
    result = await run_yaml(_playbook(), extra_vars={"version": 1})
    error = result.states["approve"].error
    assert "gxo daemon" in error and "--resume-payload-file" in error
    assert result.states["independent"].status == "Completed"


async def test_invalid_schema_is_refused_at_load(run_yaml: Any) -> None:
    text = """
    schemaVersion: "1.0.0"
    name: bad
    workloads:
      - name: w
        process:
          module: control:wait_for_signal
          params: { prompt: p, payload_schema: { type: nonsense } }
    """
    from gxo.errors import PlaybookValidationError

    with pytest.raises(
        PlaybookValidationError, match=r"7:28: workload 'w'.*not a valid JSON Schema"
    ):
        await run_yaml(text, signals=QueueBroker())


async def test_resume_racing_the_timeout_is_decided_once() -> None:
    """100 races: exactly one outcome each time; the loser gets a clear error."""
    outcomes = {"resumed": 0, "timed_out": 0}
    for i in range(100):
        broker = QueueBroker()
        request = PauseRequest("r", "w", "p", timeout=0.002 + (i % 5) * 0.0005)
        waiter = asyncio.ensure_future(broker.wait(request, lambda **_: None))
        await asyncio.sleep(0.002)
        try:
            broker.resume("w", {"i": i})
            lost = None
        except PauseClosed as exc:
            lost = str(exc)
        resolution = await waiter
        if resolution.timed_out:
            outcomes["timed_out"] += 1
            assert lost is not None and ("timed out" in lost or "not paused" in lost)
        else:
            outcomes["resumed"] += 1
            assert lost is None and resolution.payload == {"i": i}
        assert not broker.pending
    assert sum(outcomes.values()) == 100


async def test_second_resume_is_refused() -> None:
    broker = QueueBroker()
    waiter = asyncio.ensure_future(broker.wait(PauseRequest("r", "w", "p"), lambda **_: None))
    await asyncio.sleep(0)
    broker.resume("w", 1)
    with pytest.raises(PauseClosed, match="already resumed"):
        broker.resume("w", 2)
    assert (await waiter).payload == 1


async def test_announce_comes_only_once_resumable() -> None:
    broker = QueueBroker()
    resumable_when_announced: list[bool] = []

    def announce(**_: Any) -> None:
        resumable_when_announced.append("w" in broker.pending)
        broker.resume("w", "at once")  # answering inside the announcement works

    resolution = await broker.wait(PauseRequest("r", "w", "p"), announce)
    assert resumable_when_announced == [True] and resolution.payload == "at once"


async def test_payload_file_broker(tmp_path: Any, run_yaml: Any) -> None:
    answer = tmp_path / "answer.yaml"
    answer.write_text("approved: true\nnote: from a file\n")
    broker = PayloadFileBroker(load_payload_file(answer), source=str(answer), waiting={"approve"})
    result = await run_yaml(_playbook(), signals=broker, extra_vars={"version": 1})
    assert result.status == "Completed"
    assert result.states["approve"].summary["resumed_by"] == f"file:{answer}"
    bad = PayloadFileBroker({"approved": "yes"}, source="f.json")
    with pytest.raises(NoAnswer, match=r"f\.json: payload does not match"):
        await bad.wait(
            PauseRequest("r", "w", "p", schema={"properties": {"approved": {"type": "boolean"}}}),
            lambda **_: None,
        )


async def test_payload_file_per_workload() -> None:
    broker = PayloadFileBroker({"a": 1, "b": 2}, source="f", waiting={"a", "b", "c"})
    assert (await broker.wait(PauseRequest("r", "b", "p"), lambda **_: None)).payload == 2
    with pytest.raises(NoAnswer, match="no entry for workload 'c'"):
        await broker.wait(PauseRequest("r", "c", "p"), lambda **_: None)
    whole = PayloadFileBroker({"a": 1, "x": 2}, source="f", waiting={"a"})
    assert (await whole.wait(PauseRequest("r", "a", "p"), lambda **_: None)).payload == {
        "a": 1,
        "x": 2,
    }


def test_load_payload_file_errors(tmp_path: Any) -> None:
    with pytest.raises(NoAnswer, match=r"missing\.json"):
        load_payload_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{ not: [valid")
    with pytest.raises(NoAnswer, match="not JSON or YAML"):
        load_payload_file(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"a": [1, 2]}))
    assert load_payload_file(good) == {"a": [1, 2]}


def test_check_payload_reports_paths() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    with pytest.raises(InvalidPayload, match="n: 'x' is not of type 'integer'"):
        check_payload(schema, {"n": "x"})
    check_payload(schema, {"n": 3})
    check_payload(None, object())


async def test_rejected_error_text() -> None:
    broker = QueueBroker()
    waiter = asyncio.ensure_future(broker.wait(PauseRequest("r", "w", "p"), lambda **_: None))
    await asyncio.sleep(0)
    broker.reject("w", "")
    with pytest.raises(Rejected, match="rejected by local: rejected"):
        await waiter
