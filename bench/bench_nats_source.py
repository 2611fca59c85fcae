"""Throughput and latency of the JetStream event source (``nats+jetstream://``).

Two runs against NATS with JetStream at 127.0.0.1:4222, each on a temporary stream
(deleted after):

- backlog: N events already in the stream, consumed through ``get()`` + ``ack()``
  one at a time, as the reconciler does: events/s and the latency of one
  ``get()`` + ``ack()`` (p50/p99; a fetch of ``max_concurrency`` messages is
  amortised over the calls that follow it);
- live: a publisher sends N events (each carrying its send time) while the source
  consumes them: publish → ``get()`` latency p50/p99.

    python bench/bench_nats_source.py [--events 10000] [--max-concurrency 4]

Prints one JSON line; ``{"skipped": ...}`` when no server listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nats

from gxo.daemon.sources.base import open_source

HOST, PORT = "127.0.0.1", 4222


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


async def backlog(nc: object, events: int, max_concurrency: int) -> dict[str, float]:
    js = nc.jetstream()
    stream, subject = f"GXOB_{uuid.uuid4().hex[:8]}", f"gxob.{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=stream, subjects=[subject])
    try:
        for i in range(events):
            await nc.publish(subject, json.dumps({"i": i}).encode())
        await nc.flush()
        url = f"nats+jetstream://{HOST}:{PORT}/{stream}/{subject}?durable=bench"
        source = open_source(url, name="bench", max_concurrency=max_concurrency)
        await source.start()
        lat: list[float] = []
        t0 = time.perf_counter()
        for _ in range(events):
            t = time.perf_counter()
            delivery = await source.get()
            await delivery.ack()
            lat.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - t0
        await source.close()
        return {
            "backlog_events_per_s": round(events / elapsed),
            "backlog_get_ack_p50_ms": round(pct(lat, 50) * 1000, 3),
            "backlog_get_ack_p99_ms": round(pct(lat, 99) * 1000, 3),
        }
    finally:
        await js.delete_stream(stream)


async def live(nc: object, events: int, max_concurrency: int) -> dict[str, float]:
    js = nc.jetstream()
    stream, subject = f"GXOB_{uuid.uuid4().hex[:8]}", f"gxob.{uuid.uuid4().hex[:8]}"
    await js.add_stream(name=stream, subjects=[subject])
    try:
        url = f"nats+jetstream://{HOST}:{PORT}/{stream}/{subject}?durable=bench"
        source = open_source(url, name="bench", max_concurrency=max_concurrency)
        await source.start()

        async def publish() -> None:
            for _ in range(events):
                # Acked publishes: a realistic producer rate, not a burst into the buffer.
                await js.publish(subject, json.dumps({"t": time.time()}).encode())

        lat: list[float] = []
        producer = asyncio.create_task(publish())
        t0 = time.perf_counter()
        for _ in range(events):
            delivery = await source.get()
            lat.append(time.time() - delivery.event.data["t"])
            await delivery.ack()
        elapsed = time.perf_counter() - t0
        await producer
        await source.close()
        return {
            "live_events_per_s": round(events / elapsed),
            "live_publish_to_get_p50_ms": round(pct(lat, 50) * 1000, 3),
            "live_publish_to_get_p99_ms": round(pct(lat, 99) * 1000, 3),
        }
    finally:
        await js.delete_stream(stream)


async def main(events: int, max_concurrency: int) -> dict[str, object]:
    nc = await nats.connect(f"nats://{HOST}:{PORT}")
    try:
        result: dict[str, object] = {"bench": "nats_source", "events": events}
        result["max_concurrency"] = max_concurrency
        result.update(await backlog(nc, events, max_concurrency))
        result.update(await live(nc, events, max_concurrency))
        return result
    finally:
        await nc.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--max-concurrency", type=int, default=4)
    args = parser.parse_args()
    try:
        socket.create_connection((HOST, PORT), timeout=1).close()
    except OSError:
        print(json.dumps({"bench": "nats_source", "skipped": f"no NATS at {HOST}:{PORT}"}))
        sys.exit(0)
    print(json.dumps(asyncio.run(main(args.events, args.max_concurrency))))
