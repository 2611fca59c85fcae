"""Two real daemons in one fleet: event_driven shares a JetStream durable (1,000 events
each run exactly once in effect: every id done, none lost, none twice); a scheduled
``@every 1s`` fires once per second fleet-wide."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.daemon.conftest import DaemonProc, fleet_on_postgres

pytestmark = pytest.mark.timeout(240)

EVENTS = 1000
PLAYBOOK = """\
schemaVersion: "1.0.0"
name: fleetev
workloads:
  - name: ev
    lifecycle:
      policy: event_driven
      source: "nats+jetstream://127.0.0.1:4222/{stream}/{subject}?create=true"
      max_concurrency: 8
    process:
      module: control:identity
      params: {{ i: "{{{{ _gxo.event.data.i }}}}" }}
"""


@pytest.fixture
def fleet(require_service: Callable[..., None]) -> Iterator[list[DaemonProc]]:
    require_service("127.0.0.1", 5432, "PostgreSQL")
    require_service("127.0.0.1", 4222, "NATS")
    with fleet_on_postgres(2, "fleetev") as members:
        yield members


def _ids(report: Any) -> list[int]:
    found, stack = [], [report]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if set(node) == {"i"}:
                found.append(int(node["i"]))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


async def _publish(stream: str, subject: str) -> None:
    import nats

    nc = await nats.connect("nats://127.0.0.1:4222")
    js = nc.jetstream()
    try:
        for _ in range(200):  # the daemons' source creates the stream
            try:
                await js.stream_info(stream)
                break
            except Exception:
                await asyncio.sleep(0.1)
        for i in range(EVENTS):
            await js.publish(subject, json.dumps({"i": i}).encode())
    finally:
        await nc.close()


async def _delete(stream: str) -> None:
    import nats

    nc = await nats.connect("nats://127.0.0.1:4222")
    try:
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


def test_two_members_share_the_events_each_once(fleet: list[DaemonProc]) -> None:
    tag = uuid.uuid4().hex[:8]
    stream, subject = f"GXOTF_{tag}", f"gxotf.{tag}"
    for n, member in enumerate(fleet):
        member.start("--fleet", f"t{tag}", "--member", f"m{n}", "--history", "5000")
    playbook = fleet[0].folder / "fleetev.gxo.yaml"
    playbook.write_text(PLAYBOOK.format(stream=stream, subject=subject))
    for member in fleet:  # applying the same playbook again is a no-op
        out = member.ctl("apply", "-f", str(playbook))
        assert out.returncode == 0, out.stderr + member.logs()
    try:
        asyncio.run(_publish(stream, subject))
        state = fleet[0].open_state()  # encrypted: the fleet's key
        try:
            deadline = time.monotonic() + 150
            runs: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                runs = state.list_runs("fleetev", "ev", 5000)
                done = [r for r in runs if r["status"] != "Running"]
                if len(done) >= EVENTS:
                    break
                time.sleep(0.5)
            time.sleep(1)  # a duplicate would show up now
            runs = state.list_runs("fleetev", "ev", 5000)
        finally:
            state.close()
    finally:
        asyncio.run(_delete(stream))
    assert {r["status"] for r in runs} == {"Completed"}, fleet[0].logs() + fleet[1].logs()
    ids = [i for r in runs for i in _ids(r["report"])]
    assert sorted(ids) == list(range(EVENTS))  # every id once: none lost, none twice
    # Both members took part (the durable is shared, not one per member).
    completed = [m.ctl_json("status", "fleetev/ev")[0]["completed"] for m in fleet]
    assert sum(completed) == EVENTS and min(completed) > 0, completed


SCHEDULED = """\
schemaVersion: "1.0.0"
name: fleettick
workloads:
  - name: tick
    lifecycle: {{ policy: scheduled, cron: "@every 1s" }}
    process: {{ module: control:identity, params: {{ n: "{n}" }} }}
"""


def test_a_schedule_fires_once_per_second_fleet_wide(fleet: list[DaemonProc]) -> None:
    from datetime import datetime

    tag = uuid.uuid4().hex[:8]
    for n, member in enumerate(fleet):
        member.start("--fleet", f"t{tag}", "--member", f"m{n}")
    playbook = fleet[0].folder / "fleettick.gxo.yaml"
    playbook.write_text(SCHEDULED.format(n=tag))
    for member in fleet:
        out = member.ctl("apply", "-f", str(playbook))
        assert out.returncode == 0, out.stderr + member.logs()
    time.sleep(8)
    for member in fleet:
        member.stop()
    state = fleet[0].open_state()  # encrypted: the fleet's key
    try:
        runs = state.list_runs("fleettick", "tick", 100)
    finally:
        state.close()
    seconds = sorted(
        round(datetime.fromisoformat(r["started_at"].replace("Z", "+00:00")).timestamp())
        for r in runs
    )
    assert 6 <= len(seconds) <= 12, seconds  # ~8 s applied, plus the stop; twice that if doubled
    assert len(seconds) == len(set(seconds)), seconds  # never two runs for one fire
    assert seconds[-1] - seconds[0] == len(seconds) - 1, seconds  # and none missed
