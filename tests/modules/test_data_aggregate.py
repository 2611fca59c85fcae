"""data:aggregate: ops, grouping, count and time windows, bad values, params."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gxo.config.models import AccessMode, Process, Workload
from gxo.engine.context import RunContext, WorkloadState
from gxo.engine.runner import WorkloadRunner
from gxo.engine.streams import Channel, MergedReader, StreamWriter
from gxo.errors import PlaybookValidationError, UpstreamFailedError
from gxo.modules.testkit import run_module

SCORES = [
    {"team": "red", "n": 1, "who": "ada"},
    {"team": "blue", "n": 10, "who": "bob"},
    {"team": "red", "n": 4, "who": "cy"},
    {"team": "red", "n": None, "who": "dee"},
    {"team": "blue", "n": 5, "who": "eve"},
]

ALL_OPS = [
    {"name": "total", "op": "sum", "source_field": "n"},
    {"name": "rows", "op": "count"},
    {"name": "with_n", "op": "count", "source_field": "n"},
    {"name": "mean", "op": "avg", "source_field": "n"},
    {"name": "low", "op": "min", "source_field": "who"},
    {"name": "high", "op": "max", "source_field": "n"},
    {"name": "who", "op": "collect", "source_field": "who"},
]


async def test_every_op_per_group_in_first_seen_order() -> None:
    r = await run_module(
        "data:aggregate", {"group_by_fields": ["team"], "aggregate_fields": ALL_OPS}, inputs=SCORES
    )
    assert r.ok, r.error
    assert r.records == [
        {
            "team": "red",
            "total": 5,
            "rows": 3,
            "with_n": 2,
            "mean": 2.5,
            "low": "ada",
            "high": 4,
            "who": ["ada", "cy", "dee"],
        },
        {
            "team": "blue",
            "total": 15,
            "rows": 2,
            "with_n": 2,
            "mean": 7.5,
            "low": "bob",
            "high": 10,
            "who": ["bob", "eve"],
        },
    ]
    assert r.summary["results"] == r.records
    assert r.summary["groups_emitted"] == 2
    assert r.summary["records_aggregated"] == 5
    assert r.summary["windows"] == 1


async def test_no_group_by_and_empty_input_gives_one_zero_record() -> None:
    params = {
        "aggregate_fields": [
            {"name": "rows", "op": "count"},
            {"name": "total", "op": "sum", "source_field": "n"},
            {"name": "mean", "op": "avg", "source_field": "n"},
        ]
    }
    r = await run_module("data:aggregate", params, inputs=SCORES)
    assert r.records == [{"rows": 5, "total": 20, "mean": 5.0}]
    r = await run_module("data:aggregate", params, inputs=[])
    assert r.records == [{"rows": 0, "total": 0, "mean": None}]
    r = await run_module("data:aggregate", {**params, "group_by_fields": ["team"]}, inputs=[])
    assert r.records == []


async def test_dotted_group_fields_missing_values_and_unhashable_keys() -> None:
    inputs = [
        {"u": {"team": "a"}, "tags": ["x"]},
        {"u": {}, "tags": ["x"]},
        {"u": {"team": "a"}, "tags": ["y"]},
    ]
    r = await run_module(
        "data:aggregate",
        {
            "group_by_fields": ["u.team", "tags"],
            "aggregate_fields": [{"name": "rows", "op": "count"}],
        },
        inputs=inputs,
    )
    assert r.records == [
        {"u.team": "a", "tags": ["x"], "rows": 1},
        {"u.team": None, "tags": ["x"], "rows": 1},
        {"u.team": "a", "tags": ["y"], "rows": 1},
    ]


async def test_count_window_flushes_every_n_records_and_the_rest_at_the_end() -> None:
    inputs = [{"n": i} for i in range(1, 8)]
    params = {
        "aggregate_fields": [
            {"name": "total", "op": "sum", "source_field": "n"},
            {"name": "rows", "op": "count"},
        ],
        "count": 3,
    }
    r = await run_module("data:aggregate", params, inputs=inputs)
    assert r.records == [{"total": 6, "rows": 3}, {"total": 15, "rows": 3}, {"total": 7, "rows": 1}]
    assert r.summary["windows"] == 3


async def test_sum_and_avg_accept_numeric_strings() -> None:
    inputs = [{"n": "2"}, {"n": "0.5"}, {"n": 1}]
    params = {
        "aggregate_fields": [
            {"name": "total", "op": "sum", "source_field": "n"},
            {"name": "mean", "op": "avg", "source_field": "n"},
        ]
    }
    r = await run_module("data:aggregate", params, inputs=inputs)
    assert r.records == [{"total": 3.5, "mean": 3.5 / 3}]


async def test_bad_value_fails_or_is_skipped_without_touching_the_group(tmp_path: Path) -> None:
    inputs = [{"t": "a", "n": 1}, {"t": "a", "n": "lots"}, {"t": "a", "n": 2}]
    params = {
        "group_by_fields": ["t"],
        "aggregate_fields": [
            {"name": "rows", "op": "count"},
            {"name": "total", "op": "sum", "source_field": "n"},
        ],
    }
    r = await run_module("data:aggregate", params, inputs=inputs)
    assert r.status == "Failed"
    assert r.error.startswith(
        'bad record #2 {"t": "a", "n": "lots"}: total (sum): \'lots\' is not a number'
    )
    r = await run_module(
        "data:aggregate",
        {**params, "on_error": "dead_letter", "dead_letter": {"path": "bad.jsonl"}},
        inputs=inputs,
        workspace=tmp_path,
    )
    assert r.records == [{"t": "a", "rows": 2, "total": 3}]
    assert r.counters == {"dead_lettered": 1}
    assert (
        json.loads((tmp_path / "bad.jsonl").read_text())["error"]
        == "total (sum): 'lots' is not a number"
    )


async def test_min_max_of_incomparable_values_is_a_bad_record() -> None:
    inputs = [{"v": 1}, {"v": "a"}, {"v": [1]}, {"v": 3}]
    r = await run_module(
        "data:aggregate",
        {
            "aggregate_fields": [{"name": "top", "op": "max", "source_field": "v"}],
            "on_error": "skip",
        },
        inputs=inputs,
    )
    assert r.records == [{"top": 3}]
    assert r.counters == {"skipped": 2}
    messages = [line for _, line in r.logs]
    assert messages[0] == "skipped bad record #2: top (max): cannot compare str 'a' with int 1"
    assert messages[1] == "skipped bad record #3: top (max): cannot compare a list"


async def test_summary_keeps_only_summary_limit_results() -> None:
    inputs = [{"k": i} for i in range(10)]
    r = await run_module(
        "data:aggregate",
        {
            "group_by_fields": ["k"],
            "aggregate_fields": [{"name": "c", "op": "count"}],
            "summary_limit": 3,
        },
        inputs=inputs,
    )
    assert len(r.records) == 10
    assert r.summary["results"] == [{"k": 0, "c": 1}, {"k": 1, "c": 1}, {"k": 2, "c": 1}]
    assert r.summary["groups_emitted"] == 10


# -- time windows: the input must arrive over time, so feed a live channel ----------------


async def run_fed(
    params: dict[str, Any], feed: Callable[[Channel], Awaitable[None]]
) -> tuple[WorkloadState, list[dict[str, Any]]]:
    """Run data:aggregate while ``feed`` writes to its input channel."""
    wl = Workload.model_validate(
        {
            "name": "agg",
            "process": Process(module="data:aggregate", params=params),
            "stream_inputs": ["src"],
        }
    )
    state = WorkloadState(wl)
    run = RunContext(
        run_id="t",
        workspace=Path.cwd(),
        variables={},
        states={"agg": state},
        access_mode=AccessMode.deep_copy,
    )
    inbound, outbound = Channel("src", "agg", 100), Channel("agg", "sink", 1000)

    async def producer() -> None:
        try:
            await feed(inbound)
        finally:
            inbound.close()

    out: list[dict[str, Any]] = []

    async def collect() -> None:
        with contextlib.suppress(UpstreamFailedError):
            while (batch := await outbound.get_batch()) is not None:
                out.extend(batch)

    tasks = [asyncio.create_task(producer()), asyncio.create_task(collect())]
    await WorkloadRunner(run).execute(
        state, MergedReader("agg", [inbound]), StreamWriter("agg", [outbound])
    )
    await asyncio.gather(*tasks)
    return state, out


async def test_time_window_flushes_while_the_stream_is_open() -> None:
    async def feed(ch: Channel) -> None:
        for n in (1, 2, 3):
            await ch.put({"team": "a", "n": n})
        await asyncio.sleep(0.45)  # the 0.2 s window closes at least once meanwhile
        for n in (10, 20):
            await ch.put({"team": "a", "n": n})

    params = {
        "group_by_fields": ["team"],
        "aggregate_fields": [{"name": "total", "op": "sum", "source_field": "n"}],
        "window": "200ms",
    }
    state, out = await run_fed(params, feed)
    assert state.status.value == "Completed", state.error
    assert [(r["team"], r["total"]) for r in out] == [("a", 6), ("a", 30)]
    first, second = out
    assert (
        first["window_start"] < first["window_end"] <= second["window_start"] < second["window_end"]
    )
    assert first["window_end"].endswith("Z")
    assert state.summary["windows"] == 2


async def test_time_window_timer_is_stopped_when_the_workload_fails() -> None:
    async def feed(ch: Channel) -> None:
        await ch.put({"n": 1})
        await asyncio.sleep(0.05)
        await ch.put({"n": "bad"})
        await asyncio.sleep(0.3)

    params = {
        "aggregate_fields": [{"name": "total", "op": "sum", "source_field": "n"}],
        "window": "100ms",
    }
    before = asyncio.all_tasks()
    state, _ = await run_fed(params, feed)
    assert state.status.value == "Failed"
    assert "'bad' is not a number" in (state.error or "")
    await asyncio.sleep(0)
    assert asyncio.all_tasks() <= before | {asyncio.current_task()}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"aggregate_fields": []}, "aggregate_fields: List should have at least 1 item"),
        ({"aggregate_fields": [{"name": "s", "op": "sum"}]}, "op 'sum' needs source_field"),
        (
            {"aggregate_fields": [{"name": "s", "op": "median", "source_field": "n"}]},
            "Input should be 'count', 'sum', 'avg', 'min', 'max' or 'collect'",
        ),
        (
            {"aggregate_fields": [{"name": "c", "op": "count"}], "window": "5m", "count": 10},
            "give at most one of 'window' and 'count'",
        ),
        (
            {"aggregate_fields": [{"name": "c", "op": "count"}], "window": "soon"},
            "invalid duration 'soon'",
        ),
        (
            {"aggregate_fields": [{"name": "c", "op": "count"}], "count": 0},
            "count: Input should be greater than or equal to 1",
        ),
        (
            {"aggregate_fields": [{"name": "c", "op": "count"}, {"name": "c", "op": "count"}]},
            "output field names must be unique: c",
        ),
        (
            {"group_by_fields": ["c"], "aggregate_fields": [{"name": "c", "op": "count"}]},
            "output field names must be unique: c",
        ),
    ],
)
def test_bad_params_are_rejected_at_validation(params: dict, message: str) -> None:
    from gxo.config.loader import load_playbook

    text = (
        "schemaVersion: '1.0.0'\nname: p\nworkloads:\n"
        "  - name: src\n    process: { module: data:generate_from_list, params: { items: [1] } }\n"
        f"  - name: agg\n    process:\n      module: data:aggregate\n      params: {json.dumps(params)}\n    stream_inputs: [src]\n"
    )
    with pytest.raises(PlaybookValidationError) as err:
        load_playbook(text=text, name="pb.yaml")
    assert message in str(err.value)
    assert "workload 'agg'" in str(err.value)
