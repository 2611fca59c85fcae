"""The fast paths of issue 19 keep the semantics of the slow ones.

- a consumer's batch sent on unchanged skips the dict check; a batch a module
  changed is checked again;
- params without a template are not rendered, yet a workload still gets its own
  copy (deep-copy state semantics);
- status events nobody wants are not built; everyone who wants one still gets it;
- ready workloads beyond ``--concurrency`` wait in a queue, not as blocked tasks:
  the limit, the order and interruption behave as before;
- ``gxo <command>`` builds only that command's CLI.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gxo.engine.events import EventBus, EventKind
from gxo.engine.streams import Batch, Channel, MergedReader, StreamWriter
from gxo.errors import StreamError
from gxo.template.engine import holds_template

# -- streams: the checked batch ---------------------------------------------------------


async def _one_batch(records: list[Any]) -> Batch:
    ch = Channel("a", "b", capacity=10)
    await StreamWriter("a", [ch]).send_many(records)
    ch.close()
    batch = await MergedReader("b", [ch]).next_batch()
    assert isinstance(batch, Batch) and isinstance(batch, list)
    return batch


async def test_an_unchanged_batch_is_forwarded_in_order_with_counts() -> None:
    batch = await _one_batch([{"n": i} for i in range(5)])
    assert batch.checked
    out = Channel("b", "c", capacity=10)
    writer = StreamWriter("b", [out])
    await writer.send_many(batch)
    out.close()
    assert await MergedReader("c", [out]).collect() == [{"n": i} for i in range(5)]
    assert writer.records_out == 5 and out.sent == 5


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b.append(1),
        lambda b: b.extend([{"ok": 1}, "x"]),
        lambda b: b.insert(0, None),
        lambda b: b.__setitem__(0, 3),
        lambda b: b.__setitem__(slice(0, 1), ["s"]),
    ],
    ids=["append", "extend", "insert", "setitem", "slice"],
)
async def test_a_changed_batch_is_checked_again(change: Any) -> None:
    batch = await _one_batch([{"n": 1}, {"n": 2}])
    change(batch)
    assert not batch.checked
    with pytest.raises(StreamError, match="records must be dicts"):
        await StreamWriter("b", [Channel("b", "c", capacity=10)]).send_many(batch)


async def test_in_place_add_unchecks_and_removal_keeps_the_mark() -> None:
    batch = await _one_batch([{"n": 1}, {"n": 2}, {"n": 3}])
    batch.pop()
    del batch[0]
    assert batch.checked and batch == [{"n": 2}]
    batch += [7]
    assert not batch.checked
    with pytest.raises(StreamError):
        await StreamWriter("b", [Channel("b", "c", capacity=10)]).send_many(batch)


async def test_a_forwarded_batch_larger_than_the_room_keeps_back_pressure() -> None:
    batch = await _one_batch([{"n": i} for i in range(10)])
    out = Channel("b", "c", capacity=3)
    sender = asyncio.create_task(StreamWriter("b", [out]).send_many(batch))
    await asyncio.sleep(0)
    assert out.depth == 3 and not sender.done()  # blocked on the full link
    got: list[dict[str, int]] = []
    reader = MergedReader("c", [out])
    while len(got) < 10:
        got.extend(await reader.next_batch() or [])
    await sender
    assert got == [{"n": i} for i in range(10)]


# -- params without templates --------------------------------------------------------------


def test_holds_template_finds_templates_at_any_depth() -> None:
    assert not holds_template({})
    assert not holds_template({"a": [1, {"b": "plain"}], "c": None, "d": 2.5})
    assert holds_template({"a": [1, {"b": "x {{ y }}"}]})
    assert holds_template(["{% if x %}1{% endif %}"])
    assert holds_template("{# comment #}")
    assert not holds_template("no braces { here }")
    assert not holds_template(("{{ tuples are not walked }}",))

    class Text(str):
        pass

    class Mapping(dict):  # type: ignore[type-arg]
        pass

    class Items(list):  # type: ignore[type-arg]
        pass

    assert holds_template(Text("{{ x }}"))
    assert holds_template(Mapping(a=Items(["{{ x }}"])))
    assert not holds_template(Mapping(a=Items(["x"])))


STATIC = """
schemaVersion: "1.0.0"
name: static
workloads:
  - name: first
    process: { module: control:identity, params: { nested: { list: [1, 2] }, flag: true } }
    register: first_out
  - name: second
    depends_on: [first]
    process: { module: control:identity, params: { nested: { list: [1, 2] } } }
"""


async def test_static_params_are_not_shared_with_the_playbook(run_yaml: Any) -> None:
    from gxo.config.loader import load_playbook
    from gxo.engine.scheduler import Engine

    loaded = load_playbook(text=STATIC.lstrip(), name="static")
    result = await Engine(loaded).run()
    assert result.status == "Completed"
    first = result.states["first"]
    assert first.summary == {"nested": {"list": [1, 2]}, "flag": True}
    source = loaded.playbook.workloads[0].process.params
    assert first.rendered_params == source
    assert first.rendered_params is not source
    assert first.rendered_params["nested"] is not source["nested"]
    first.rendered_params["nested"]["list"].append(3)  # a later run sees the playbook's
    again = await Engine(loaded).run()
    assert again.states["first"].summary == {"nested": {"list": [1, 2]}, "flag": True}


async def test_templated_params_still_render(run_yaml: Any) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: t
        vars: { who: world }
        workloads:
          - name: hi
            process: { module: control:identity, params: { greeting: "hello {{ who }}", n: 1 } }
        """
    )
    assert result.states["hi"].summary == {"greeting": "hello world", "n": 1}


# -- events nobody wants ---------------------------------------------------------------------


async def test_skipped_statuses_are_not_delivered_and_not_built(run_yaml: Any) -> None:
    quiet: list[str] = []
    everything: list[str] = []
    bus = EventBus()
    bus.add_listener(
        lambda e: quiet.append(e.data["status"]) if e.kind == EventKind.WORKLOAD_STATUS else None,
        skip_statuses=("Running",),
    )
    assert bus.wants_status("Completed") and not bus.wants_status("Running")
    result = await run_yaml(STATIC, bus=bus)
    assert result.status == "Completed"
    assert quiet == ["Completed", "Completed"]

    bus = EventBus()
    bus.add_listener(lambda e: None, skip_statuses=("Running",))
    bus.add_listener(
        lambda e: (
            everything.append(e.data["status"]) if e.kind == EventKind.WORKLOAD_STATUS else None
        )
    )
    assert bus.wants_status("Running")  # one listener wants it
    await run_yaml(STATIC, bus=bus)
    assert everything == ["Running", "Completed", "Running", "Completed"]


def test_a_subscriber_wants_every_status_unless_it_filters_kinds() -> None:
    bus = EventBus()
    assert not bus.wants_status("Completed")  # nobody listens
    bus.add_listener(lambda e: None, skip_statuses=("Running", "Completed"))
    assert not bus.wants_status("Running") and bus.wants_status("Failed")
    logs = bus.subscribe(kinds={EventKind.LOG})
    assert not bus.wants_status("Running")  # it does not read statuses
    sub = bus.subscribe()
    assert bus.wants_status("Running")
    sub.close()
    assert not bus.wants_status("Running")
    logs.close()
    bus.emit(EventKind.WORKLOAD_STATUS, "w", status="Running")  # skipped, no error


# -- ready workloads beyond the concurrency limit -----------------------------------------------


@pytest.fixture
def gauge() -> dict[str, Any]:
    """A ``tests:perf_gauge`` module: how many run at once, and in which order they start."""
    from gxo.engine.context import ModuleContext
    from gxo.modules.base import FreeParams, Module, register

    seen: dict[str, Any] = {"now": 0, "max": 0, "order": [], "two": asyncio.Event()}

    @register("tests:perf_gauge", layer="test")
    class Gauge(Module):
        """Holds for a moment, counting who else runs meanwhile."""

        Params = FreeParams

        async def perform(self, ctx: ModuleContext, params: FreeParams) -> dict[str, Any]:
            seen["now"] += 1
            seen["order"].append(ctx.workload)
            seen["max"] = max(seen["max"], seen["now"])
            if seen["now"] == 2:
                seen["two"].set()
            try:
                await asyncio.sleep(float((params.model_extra or {}).get("hold", 0.005)))
            finally:
                seen["now"] -= 1
            return {}

    return seen


def _wide(n: int, hold: float = 0.005) -> str:
    lines = ['schemaVersion: "1.0.0"', "name: wide", "workloads:"]
    for i in range(n):
        lines.append(
            f"  - {{ name: w{i:02d}, process: {{ module: 'tests:perf_gauge', params: {{ hold: {hold} }} }} }}"
        )
    lines.append(
        "  - { name: last, depends_on: [w00, w05], process: { module: control:identity } }"
    )
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_the_limit_and_the_start_order_hold(
    run_yaml: Any, gauge: dict[str, Any], concurrency: int
) -> None:
    from gxo.engine.scheduler import Engine

    tasks_seen: list[int] = []
    engines: list[Engine] = []
    original = Engine.__init__

    def spy(self: Engine, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        engines.append(self)

    bus = EventBus()
    bus.add_listener(
        lambda e: (
            tasks_seen.append(sum(not t.done() for t in engines[0]._tasks)) if engines else None
        )
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Engine, "__init__", spy)
        result = await run_yaml(_wide(12), concurrency=concurrency, bus=bus)
    assert result.status == "Completed"
    assert gauge["max"] == concurrency
    assert gauge["order"] == [f"w{i:02d}" for i in range(12)]  # FIFO, as the semaphore was
    assert max(tasks_seen) <= concurrency  # the rest waited as queue entries, not tasks
    assert result.states["last"].status == "Completed"


async def test_an_interrupted_run_ends_with_queued_workloads_skipped(
    gauge: dict[str, Any],
) -> None:
    from gxo.config.loader import load_playbook
    from gxo.engine.scheduler import Engine

    loaded = load_playbook(text=_wide(8, hold=5), name="wide")
    engine = Engine(loaded, concurrency=2)
    run = asyncio.create_task(engine.run())
    await asyncio.wait_for(gauge["two"].wait(), 10)
    engine.cancel()
    result = await asyncio.wait_for(run, 10)
    assert result.status == "Interrupted"
    statuses = {n: s.status.value for n, s in result.states.items()}
    assert statuses["w00"] == statuses["w01"] == "Failed"  # were running: cancelled
    assert all(statuses[f"w{i:02d}"] == "Skipped" for i in range(2, 8))
    assert statuses["last"] == "Skipped"
    assert gauge["order"] == ["w00", "w01"]


# -- the CLI builds only the command it runs ---------------------------------------------------


def test_the_cli_builds_only_the_named_command() -> None:
    from gxo.cli import _app_for, app

    slim = _app_for(["run", "x.gxo.yaml"])
    assert slim is not app
    assert [i.callback.__name__ for i in slim.registered_commands if i.callback] == ["run"]
    assert slim.registered_groups == []
    assert len(app.registered_commands) > 1  # the module-level app is untouched
    test_cmd = _app_for(["test"])
    assert [i.name for i in test_cmd.registered_commands] == ["test"]
    for argv in ([], ["--help"], ["--version"], ["ctl", "status"], ["no-such-command"]):
        assert _app_for(argv) is app


def _main(monkeypatch: Any, *argv: str) -> int:
    from gxo.cli import main

    monkeypatch.setattr("sys.argv", ["gxo", *argv])
    with pytest.raises(SystemExit) as exit_:
        main()
    return int(exit_.value.code or 0)


def test_a_slim_command_line_behaves_like_the_full_one(
    gxo: Any, tmp_path: Any, monkeypatch: Any, capsys: Any
) -> None:
    pb = tmp_path / "one.gxo.yaml"
    pb.write_text(
        'schemaVersion: "1.0.0"\nname: one\nworkloads:\n'
        "  - { name: only, process: { module: control:identity, params: { a: 1 } } }\n"
    )
    ok = gxo("run", "-q", str(pb))  # the real entry point, in a process of its own
    assert ok.returncode == 0, ok.stderr
    assert "Completed one" in ok.stderr
    monkeypatch.setenv("COLUMNS", "200")
    assert _main(monkeypatch, "run", "--help") == 0
    helped = capsys.readouterr().out
    assert "Usage:" in helped and "run [OPTIONS]" in helped and "--extra-vars" in helped
    assert _main(monkeypatch, "run", "--no-such-option", str(pb)) == 2
    assert "No such option" in capsys.readouterr().err
    assert _main(monkeypatch, "runn") == 2
    assert "No such command" in capsys.readouterr().err


async def test_a_producer_waiting_for_room_ends_when_the_consumer_abandons() -> None:
    ch = Channel("a", "b", capacity=2)
    writer = StreamWriter("a", [ch])
    sender = asyncio.create_task(writer.send_many([{"n": i} for i in range(6)]))
    await asyncio.sleep(0)
    assert ch.depth == 2 and not sender.done()  # waiting for room
    ch.abandon()
    await asyncio.wait_for(sender, 5)
    assert ch.sent == 2 and ch.discarded == 6  # 2 buffered, then 4 sent after it stopped
    assert writer.records_out == 6


def test_skipped_kinds_are_not_delivered_and_wants_counts_everyone() -> None:
    bus = EventBus()
    assert not bus.wants(EventKind.RUN_STARTED) and not bus.has_audience
    got: list[Any] = []
    bus.add_listener(got.append, skip_kinds=(EventKind.RUN_STARTED,), skip_statuses=("Running",))
    assert not bus.wants(EventKind.RUN_STARTED) and bus.wants(EventKind.LOG)
    bus.emit(EventKind.RUN_STARTED, playbook="x")
    bus.emit(EventKind.LOG, "w", line="l")
    assert [e.kind for e in got] == [EventKind.LOG]
    statuses = bus.subscribe(kinds={EventKind.WORKLOAD_STATUS})
    assert bus.wants_status("Running")  # the subscriber reads every status
    started = bus.subscribe(kinds={EventKind.RUN_STARTED})
    assert bus.wants(EventKind.RUN_STARTED)
    bus.emit(EventKind.RUN_STARTED, playbook="x")
    assert started.get_nowait().data == {"playbook": "x"}
    assert len(got) == 1
    started.close()
    statuses.close()
    assert not bus.wants(EventKind.RUN_STARTED) and not bus.wants_status("Running")
    bus.add_listener(got.append, skip_kinds=(EventKind.WORKLOAD_STATUS,))
    assert not bus.wants_status("Running")  # the first skips it, the second all statuses
    assert bus.wants_status("Failed")  # the first listener still wants it


async def test_the_run_shape_is_not_computed_for_nobody(run_yaml: Any) -> None:
    from gxo.engine.scheduler import Engine

    def boom(self: Engine) -> dict[str, Any]:
        raise AssertionError("RUN_STARTED built for nobody")

    bus = EventBus()
    bus.add_listener(lambda e: None, skip_kinds=(EventKind.RUN_STARTED,))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Engine, "_shape", boom)
        result = await run_yaml(STATIC, bus=bus)
    assert result.status == "Completed"
    bus = EventBus()
    sub = bus.subscribe(kinds={EventKind.RUN_STARTED})
    await run_yaml(STATIC, bus=bus)
    started = sub.get_nowait()
    assert started.data["edges"] == [["first", "second", "order"]]
    assert started.data["levels"] == [["first"], ["second"]]
