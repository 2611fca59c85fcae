"""``workload:`` source and its stream taps, in process: real Channels and a real Engine
run tapped through ``Engine(stream_taps=)``; the hub's apply checks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gxo.config.loader import load_playbook
from gxo.daemon.sources.base import SourceContext, SourceError, open_source
from gxo.daemon.sources.hub import SourceHub
from gxo.daemon.sources.webhook import WebhookRouter
from gxo.daemon.sources.workload import StreamTaps, WorkloadSource, producer_name
from gxo.engine.scheduler import Engine

PIPE = """\
schemaVersion: "1.0.0"
name: pipe
workloads:
  - name: producer
    process:
      module: data:generate_from_list
      params: { items: [1, 2, 3, 4, 5, 6, 7, 8], field: n }
  - name: consume
    lifecycle: { policy: event_driven, source: "workload:producer", max_concurrency: 2,
                 queue: 4, overflow: OVERFLOW }
    process: { module: control:identity, params: {} }
"""


class Counters:
    def __init__(self) -> None:
        self.values: dict[str, int] = {}

    def count(self, key: str) -> None:
        self.values[key] = self.values.get(key, 0) + 1


def _context(hub: SourceHub, counters: Counters, overflow: str = "block") -> SourceContext:
    return SourceContext(
        playbook="pipe",
        workload="consume",
        hub=hub,
        overflow=overflow,
        capacity=4,
        count=counters.count,
    )


def _loaded(overflow: str = "block") -> Any:
    return load_playbook(text=PIPE.replace("OVERFLOW", overflow), name="pipe.gxo.yaml")


async def test_engine_run_is_tapped_one_event_per_record_with_back_pressure() -> None:
    hub, counters = SourceHub(), Counters()
    loaded = _loaded()
    hub.check(loaded, {})
    source = open_source(
        "workload:producer", name="consume", max_concurrency=2, context=_context(hub, counters)
    )
    assert isinstance(source, WorkloadSource)
    await source.start()
    engine = Engine(
        loaded,
        only={"producer"},
        initial_results={},
        allow_lifecycles=True,
        stream_taps=hub.taps.hook("pipe"),
    )
    run = asyncio.create_task(engine.run())
    try:
        first = await asyncio.wait_for(source.get(), 5)
        assert first.event.data == {"n": 1} and first.event.subject == "producer"
        assert first.event.source == "workload:producer"
        # Not read: the producer cannot complete (it waits for the consumer to drain).
        await asyncio.sleep(0.2)
        assert not run.done()
        assert engine.states["producer"].status.value == "Running"
        rest = [await asyncio.wait_for(source.get(), 5) for _ in range(7)]
        assert [d.event.data["n"] for d in rest] == [2, 3, 4, 5, 6, 7, 8]
        assert len({d.event.id for d in [first, *rest]}) == 8
        result = await asyncio.wait_for(run, 5)
        assert result.status == "Completed"
        with pytest.raises(TimeoutError):  # the tap ended with the run
            await asyncio.wait_for(source.get(), 0.2)
    finally:
        run.cancel()
        await source.close()


async def test_a_run_started_before_the_source_is_parked_not_lost() -> None:
    hub, counters = SourceHub(), Counters()
    loaded = _loaded()
    hub.check(loaded, {})
    taps = hub.taps.hook("pipe")
    assert taps is not None
    channel = taps("producer")[0]
    for n in range(4):  # the parked tap holds `queue` records
        await channel.put({"n": n})
    blocked = asyncio.create_task(channel.put({"n": 4}))
    await asyncio.sleep(0.05)
    assert not blocked.done()  # block: the producer waits for the consumer
    source = open_source("workload:producer", name="consume", context=_context(hub, counters))
    await source.start()
    try:
        got = [(await asyncio.wait_for(source.get(), 5)).event.data["n"] for _ in range(5)]
        assert got == [0, 1, 2, 3, 4] and blocked.done()
        # Stopped (block): later runs park again and a new source reads them.
        await source.close()
        late = taps("producer")[0]
        await late.put({"n": 5})
        again = open_source("workload:producer", name="consume", context=_context(hub, counters))
        await again.start()
        assert (await asyncio.wait_for(again.get(), 5)).event.data == {"n": 5}
        await again.close()
    finally:
        await source.close()


async def test_parked_taps_drop_under_drop_new_and_the_drops_are_counted() -> None:
    hub, counters = SourceHub(), Counters()
    hub.check(_loaded("drop_new"), {})
    taps = hub.taps.hook("pipe")
    assert taps is not None
    channel = taps("producer")[0]
    for n in range(10):  # nobody reads: 4 kept, 6 dropped, the producer never waits
        await asyncio.wait_for(channel.put({"n": n}), 1)
    channel.close()
    source = open_source(
        "workload:producer", name="consume", context=_context(hub, counters, "drop_new")
    )
    await source.start()
    try:
        got = [(await asyncio.wait_for(source.get(), 5)).event.data["n"] for _ in range(4)]
        assert got == [0, 1, 2, 3]
        assert counters.values == {"received": 6, "dropped": 6}
    finally:
        await source.close()


async def test_failed_producer_ends_its_tap_and_stop_abandons_under_drop() -> None:
    hub, counters = SourceHub(), Counters()
    hub.check(_loaded("drop_oldest"), {})
    source = open_source(
        "workload:producer", name="consume", context=_context(hub, counters, "drop_oldest")
    )
    await source.start()
    taps = hub.taps.hook("pipe")
    assert taps is not None
    failed = taps("producer")[0]
    await failed.put({"n": 1})
    failed.close(failed=True)
    assert (await asyncio.wait_for(source.get(), 5)).event.data == {"n": 1}
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(source.get(), 0.2)
    live = taps("producer")[0]
    await source.close()
    # drop_*: a stopped consumer must not hold its producer: the tap is abandoned.
    for n in range(20):
        await asyncio.wait_for(live.put({"n": n}), 1)
    await asyncio.wait_for(live.wait_drained(), 1)


def test_removed_playbook_is_forgotten_and_not_tapped() -> None:
    hub = SourceHub()
    hub.check(_loaded(), {})
    assert hub.taps.hook("pipe") is not None
    hub.forget("pipe")
    assert hub.taps.hook("pipe") is None
    assert StreamTaps().hook("pipe") is None


async def test_outside_the_daemon_the_source_says_so() -> None:
    source = open_source("workload:producer", name="consume")
    with pytest.raises(SourceError, match="only in `gxo daemon`"):
        await source.start()


@pytest.mark.parametrize(
    ("url", "message"),
    [("workload:", "expected workload:NAME"), ("workload:a?x=1", "takes no parameters")],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        producer_name(url)
    assert producer_name("workload:listener") == "listener"


# -- apply checks ---------------------------------------------------------------------

HOOKED = """\
schemaVersion: "1.0.0"
name: NAME
workloads:
  - name: a
    lifecycle: { policy: event_driven, source: "webhook:/p/a" }
    process: { module: control:identity, params: {} }
  - name: b
    lifecycle: { policy: event_driven, source: "SOURCE_B" }
    process: { module: control:identity, params: {} }
"""


class _Applied:
    def __init__(self, loaded: Any) -> None:
        self.loaded = loaded


def _hooked(name: str = "hooks", source_b: str = "webhook:/p/b") -> Any:
    text = HOOKED.replace("NAME", name).replace("SOURCE_B", source_b)
    return load_playbook(text=text, name=f"{name}.gxo.yaml")


def test_check_webhook_needs_http_with_the_line() -> None:
    with pytest.raises(SourceError) as err:
        SourceHub().check(_hooked(), {})
    assert "--http" in str(err.value) and str(err.value).startswith("hooks.gxo.yaml:5")


def test_check_one_owner_per_path() -> None:
    hub = SourceHub(webhooks=WebhookRouter())
    hub.check(_hooked(), {})
    with pytest.raises(SourceError, match="already served by workload 'hooks/a'") as err:
        hub.check(_hooked(source_b="webhook:/p/a"), {})
    assert str(err.value).startswith("hooks.gxo.yaml:8")
    applied = {"hooks": _Applied(_hooked())}
    hub.check(_hooked(), applied)  # re-applying the same playbook keeps its paths
    with pytest.raises(SourceError, match="already served by workload 'hooks/a'"):
        hub.check(_hooked("other", "webhook:/p/c"), applied)


@pytest.mark.parametrize(
    ("source_b", "message"),
    [
        ("workload:ghost", "no workload 'ghost' in playbook 'hooks'"),
        ("workload:b", "cannot read its own output"),
        ("webhook:/p/b?bogus=1", "unknown webhook URL parameter"),
    ],
)
def test_check_refuses(source_b: str, message: str) -> None:
    hub = SourceHub(webhooks=WebhookRouter())
    with pytest.raises(SourceError, match=message) as err:
        hub.check(_hooked(source_b=source_b), {})
    assert str(err.value).startswith("hooks.gxo.yaml:8")


def test_check_a_fleet_member_syncing_an_apply_needs_no_http() -> None:
    hub = SourceHub()  # this member has no --http: the apply came from another member
    hub.check(_hooked(), {}, listening=False)
    with pytest.raises(SourceError, match="--http"):
        hub.check(_hooked(), {})
