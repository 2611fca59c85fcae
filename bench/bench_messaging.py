"""``messaging:consume`` → ``data:map`` → ``messaging:publish`` through NATS JetStream,
next to a plain nats-py script doing the same work.

Both sides read N JSON messages from a JetStream stream with a durable pull consumer,
add a field to each, publish the result to a second stream (waiting for JetStream's
acknowledgement of every publish, in windows of 256) and ack the inputs. Each side gets
its own freshly filled input stream; the figure is N / wall time of the consume-map-publish
part (GXO: the whole in-process run, playbook loading included; no CLI start-up).
Needs NATS with JetStream on 127.0.0.1:4222.

    python bench/bench_messaging.py [--messages 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nats  # noqa: E402

from gxo.modules.testkit import run_playbook_text  # noqa: E402

SERVER = "nats://127.0.0.1:4222"
WINDOW = 256

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: bench-messaging
workloads:
  - name: take
    process:
      module: messaging:consume
      params:
        url: "nats+jetstream://127.0.0.1:4222/{src}/{src_subject}?durable=gxo"
        max_messages: {n}
        max_wait: 120s
  - name: enrich
    stream_inputs: [take]
    process:
      module: data:map
      params:
        fields: {{ total: "{{{{ record.qty * record.price }}}}" }}
  - name: send
    stream_inputs: [enrich]
    process:
      module: messaging:publish
      params:
        url: "nats+jetstream://127.0.0.1:4222/{dst}/{dst_subject}"
"""


async def fill(n: int) -> tuple[str, str, str, str]:
    """Two fresh streams; the first holds n messages."""
    tag = uuid.uuid4().hex[:8]
    src, dst = f"BIN{tag}", f"BOUT{tag}"
    src_subject, dst_subject = f"bin.{tag}", f"bout.{tag}"
    nc = await nats.connect(SERVER)
    js = nc.jetstream()
    await js.add_stream(name=src, subjects=[src_subject])
    await js.add_stream(name=dst, subjects=[dst_subject])
    for start in range(0, n, WINDOW):
        await asyncio.gather(
            *(
                js.publish(src_subject, json.dumps({"id": i, "qty": i % 7, "price": 2.5}).encode())
                for i in range(start, min(n, start + WINDOW))
            )
        )
    await nc.close()
    return src, src_subject, dst, dst_subject


async def check_and_drop(n: int, src: str, dst: str) -> None:
    nc = await nats.connect(SERVER)
    js = nc.jetstream()
    info = await js.stream_info(dst)
    if info.state.messages != n:
        raise SystemExit(f"{dst} holds {info.state.messages} messages, expected {n}")
    await js.delete_stream(src)
    await js.delete_stream(dst)
    await nc.close()


async def plain(n: int, src: str, src_subject: str, dst_subject: str) -> float:
    """The reference: nats-py by hand."""
    start = time.perf_counter()
    nc = await nats.connect(SERVER)
    js = nc.jetstream()
    sub = await js.pull_subscribe(src_subject, durable="plain", stream=src)
    done = 0
    while done < n:
        msgs = await sub.fetch(batch=min(WINDOW, n - done), timeout=5)
        out = []
        for msg in msgs:
            record = json.loads(msg.data)
            record["total"] = record["qty"] * record["price"]
            out.append(json.dumps(record, separators=(",", ":")).encode())
        await asyncio.gather(*(js.publish(dst_subject, payload) for payload in out))
        await asyncio.gather(*(msg.ack() for msg in msgs))
        done += len(msgs)
    await nc.flush()
    await nc.close()
    return time.perf_counter() - start


async def gxo(n: int, src: str, src_subject: str, dst: str, dst_subject: str) -> float:
    text = PLAYBOOK.format(n=n, src=src, src_subject=src_subject, dst=dst, dst_subject=dst_subject)
    start = time.perf_counter()
    result = await run_playbook_text(text)
    elapsed = time.perf_counter() - start
    if result.status != "Completed":
        errors = {k: s.error for k, s in result.states.items() if s.error}
        raise SystemExit(f"run {result.status}: {errors}")
    if result.states["send"].summary["published"] != n:
        raise SystemExit(f"published {result.states['send'].summary}")
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.messages
    gxo_times, plain_times = [], []
    for _ in range(args.rounds):
        src, src_subject, dst, dst_subject = await fill(n)
        gxo_times.append(await gxo(n, src, src_subject, dst, dst_subject))
        await check_and_drop(n, src, dst)
        src, src_subject, dst, dst_subject = await fill(n)
        plain_times.append(await plain(n, src, src_subject, dst_subject))
        await check_and_drop(n, src, dst)
    g, p = statistics.median(gxo_times), statistics.median(plain_times)
    print(f"messages per round: {n}, rounds: {args.rounds} (median shown)")
    print(f"GXO consume -> data:map -> publish: {n / g:,.0f} rec/s ({g:.2f} s)")
    print(f"plain nats-py script:               {n / p:,.0f} rec/s ({p:.2f} s)")
    print(f"ratio: {p / g:.0%} of the plain script's throughput")


if __name__ == "__main__":
    asyncio.run(main())
