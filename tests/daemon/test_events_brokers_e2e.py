"""event_driven end to end on the brokers: a real ``gxo daemon`` reading Redis Streams,
MQTT and AMQP, killed with SIGKILL while instances run, then restarted.

At-least-once: every published event ends in a Completed instance (before or after the
kill), and an event processed twice carries the same ``_gxo.event.id`` both times.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the fixture's class; conftest is not imported as a module
    from tests.daemon.conftest import DaemonProc

pytestmark = pytest.mark.timeout(120)

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: ev
workloads:
  - name: watch
    lifecycle:
      policy: event_driven
      source: "{source}"
      max_concurrency: 2
    process:
      module: control:identity
      params: {{ id: "{{{{ _gxo.event.id }}}}", n: "{{{{ _gxo.event.data.n }}}}" }}
    register: seen
  - name: work
    process:
      module: exec
      params:
        command: sh
        # seen.n makes this workload downstream of watch (part of its instance).
        args: ["-c", "sleep 0.7; echo {{{{ _gxo.event.data.n }}}} {{{{ _gxo.event.id }}}} {{{{ seen.n }}}}"]
"""

COUNT = 8


class Broker:
    def __init__(self, source: str, publish: Callable[[list[bytes]], None]) -> None:
        self.source = source
        self.publish = publish


def _redis(require: Callable[[str, int, str], None]) -> Iterator[Broker]:
    import redis

    require("127.0.0.1", 6379, "Redis")
    client = redis.Redis(host="127.0.0.1", port=6379)
    stream = f"gxo-e2e-{secrets.token_hex(4)}"

    def publish(bodies: list[bytes]) -> None:
        for body in bodies:
            client.xadd(stream, {"data": body})

    yield Broker(f"redis://127.0.0.1:6379/0?stream={stream}&claim_after=1s", publish)
    client.delete(stream)
    client.close()


def _amqp(require: Callable[[str, int, str], None]) -> Iterator[Broker]:
    import aio_pika

    require("127.0.0.1", 5672, "RabbitMQ")
    queue = f"gxo-e2e-{secrets.token_hex(4)}"

    async def run(bodies: list[bytes] | None) -> None:
        connection = await aio_pika.connect(host="127.0.0.1", login="guest", password="guest")
        channel = await connection.channel()
        if bodies is None:
            await channel.queue_delete(queue)
        else:
            await channel.declare_queue(queue, durable=True)
            for body in bodies:
                message = aio_pika.Message(body=body)
                await channel.default_exchange.publish(message, routing_key=queue)
        await connection.close()

    yield Broker(f"amqp://guest:guest@127.0.0.1:5672/?queue={queue}", lambda b: asyncio.run(run(b)))
    asyncio.run(run(None))


def _mqtt(require: Callable[[str, int, str], None]) -> Iterator[Broker]:
    import aiomqtt

    require("127.0.0.1", 1883, "Mosquitto")
    topic = f"gxo-e2e/{secrets.token_hex(4)}"

    async def run(bodies: list[bytes]) -> None:
        async with aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5) as client:
            for body in bodies:
                await client.publish(topic, body, qos=1)

    # The client id is derived from the workload name and host: stable across the
    # restart, and unique to this test through its group.
    group = f"e2e{secrets.token_hex(3)}"
    source = f"mqtt://127.0.0.1:1883/{topic}?session_expiry=60s&group={group}"
    yield Broker(source, lambda b: asyncio.run(run(b)))


@pytest.fixture(params=["redis", "amqp", "mqtt"])
def broker(
    request: pytest.FixtureRequest, require_service: Callable[[str, int, str], None]
) -> Iterator[Broker]:
    yield from {"redis": _redis, "amqp": _amqp, "mqtt": _mqtt}[request.param](require_service)


def _until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _done(daemon: DaemonProc) -> list[tuple[int, str]]:
    out = []
    for run in daemon.ctl_json("runs", "ev/work"):
        if run["status"] == "Completed":
            n, event_id, _ = run["report"]["workloads"]["work"]["summary"]["stdout"].split()
            out.append((int(n), event_id))
    return out


def test_kill_9_while_instances_run_loses_no_event(daemon: DaemonProc, broker: Broker) -> None:
    playbook = daemon.folder / "ev.gxo.yaml"
    playbook.write_text(PLAYBOOK.format(source=broker.source), encoding="utf-8")
    first = daemon.start()
    out = daemon.ctl("apply", "-f", str(playbook))
    assert out.returncode == 0, out.stderr + daemon.logs()
    daemon.wait_status("ev/watch", "Running")
    broker.publish([json.dumps({"n": i}).encode() for i in range(COUNT)])

    # Kill while the first instances run (each takes ~0.7 s, two at a time).
    _until(lambda: len(_done(daemon)) >= 2, 30, f"first instances: {daemon.logs()}")
    first.kill()
    first.wait(10)

    daemon.start()
    try:
        _until(lambda: {n for n, _ in _done(daemon)} == set(range(COUNT)), 40, "every event")
    except AssertionError:
        status = daemon.ctl_json("status", "ev/watch")
        runs = [(r["status"], r.get("reason")) for r in daemon.ctl_json("runs", "ev/work")]
        raise AssertionError(f"{_done(daemon)}\n{status}\n{runs}\n{daemon.logs()}") from None
    ids: dict[int, set[str]] = {}
    for n, event_id in _done(daemon):
        ids.setdefault(n, set()).add(event_id)
    # A duplicate (processed before the kill, acked too late) keeps its id.
    assert all(len(v) == 1 for v in ids.values()), ids
    assert len({next(iter(v)) for v in ids.values()}) == COUNT
