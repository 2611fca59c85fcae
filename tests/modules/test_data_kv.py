"""data:kv: keyed state shared by the records and workloads of one run."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from gxo.engine.kvstore import KVError, KVStores, as_number
from gxo.errors import PlaybookValidationError
from gxo.modules.base import REGISTRY, CheckMode
from gxo.modules.testkit import run_module, run_playbook_text
from gxo.template.secrets import REDACTED, SecretStr

TOKEN = "kv-t0ken-5e3d2c1b"


async def run(tmp_path: Path, workloads: str, **kw: Any) -> Any:
    text = 'schemaVersion: "1.0.0"\nname: kv\nworkloads:\n' + textwrap.indent(
        textwrap.dedent(workloads).strip("\n"), "  "
    )
    return await run_playbook_text(text, workspace=tmp_path, **kw)


STREAM = {
    "op": "{{ record.op }}",
    "key": "{{ record.k }}",
    "value": "{{ record.v | default(none) }}",
    "by": "{{ record.by | default(1) }}",
    "default": "{{ record.d | default(none) }}",
}


# -- stream mode ---------------------------------------------------------------------


async def test_stream_applies_each_op_in_record_order() -> None:
    ops = [
        {"op": "get", "k": "a", "d": "fallback"},
        {"op": "set", "k": "a", "v": {"n": [1, 2]}},
        {"op": "get", "k": "a"},
        {"op": "has", "k": "a"},
        {"op": "set", "k": "a", "v": {"n": [1, 2]}},  # same value: not a change
        {"op": "incr", "k": "n", "by": 5},
        {"op": "INCR", "k": "n", "by": "-2.5"},  # op case-insensitive, numeric text
        {"op": "delete", "k": "a"},
        {"op": "delete", "k": "a"},
        {"op": "has", "k": "a"},
        {"op": "none", "k": "ignored"},
        {"op": "incr", "k": 7, "d": 100},  # a number key is text; default starts incr
    ]
    r = await run_module("data:kv", STREAM, inputs=ops)
    assert r.ok, r.error
    got = [
        (x["kv"] and (x["kv"]["value"], x["kv"]["found"], x["kv"]["changed"])) for x in r.records
    ]
    assert got == [
        ("fallback", False, False),
        ({"n": [1, 2]}, False, True),
        ({"n": [1, 2]}, True, False),
        (True, True, False),
        ({"n": [1, 2]}, True, False),
        (5, False, True),
        (2.5, True, True),
        ({"n": [1, 2]}, True, True),
        (None, False, False),
        (False, False, False),
        None,
        (101, False, True),
    ]
    assert [x["op"] for x in r.records] == [o["op"] for o in ops]  # input fields kept, in order
    assert r.records[0]["kv"] == {
        "op": "get",
        "store": "default",
        "key": "a",
        "value": "fallback",
        "found": False,
        "changed": False,
    }
    assert r.records[-1]["kv"]["key"] == "7"
    assert r.summary == {
        "records": 12,
        "changed": 5,
        "bad_records": 0,
        "store": "default",
        "size": 2,
    }


async def test_values_are_deep_copies_in_and_out() -> None:
    stores = KVStores()
    value = {"tags": ["a"]}
    stores.set("s", "k", value, 10)
    value["tags"].append("changed by the writer")
    found, got = stores.lookup("s", "k")
    assert (found, got) == (True, {"tags": ["a"]})
    got["tags"].append("changed by a reader")
    assert stores.lookup("s", "k") == (True, {"tags": ["a"]})
    assert stores.lookup("other", "k") == (False, None)
    assert stores.delete("other", "k") == (False, None)
    assert stores.names() == ["s"] and stores.size("s") == 1 and stores.size("nope") == 0


async def test_two_workloads_of_a_run_share_the_store_concurrently(tmp_path: Path) -> None:
    result = await run(
        tmp_path,
        """
        - name: evens
          process: { module: data:generate_from_list, params: { items: "{{ range(0, 1000, 2) | list }}" } }
        - name: odds
          process: { module: data:generate_from_list, params: { items: "{{ range(1, 1000, 2) | list }}" } }
        - name: count_evens
          stream_inputs: [evens]
          process: { module: data:kv, params: { op: incr, key: hits, store: counters } }
        - name: count_odds
          stream_inputs: [odds]
          process:
            module: data:kv
            params: { op: set, key: "n{{ record.item }}", value: "{{ record.item }}", store: counters }
          # and count in the same store, from the same record stream
        - name: count_odds_too
          stream_inputs: [odds]
          process: { module: data:kv, params: { op: incr, key: hits, store: counters } }
        - name: total
          depends_on: [count_evens, count_odds, count_odds_too]
          process: { module: data:kv, params: { op: get, key: hits, store: counters } }
          register: total
        - name: one
          depends_on: [count_odds]
          process: { module: data:kv, params: { op: get, key: n999, store: counters } }
        - name: elsewhere
          depends_on: [total]
          process: { module: data:kv, params: { op: get, key: hits, default: 0 } }
        """,
    )
    assert result.status == "Completed", {n: s.error for n, s in result.states.items()}
    total = result.states["total"].summary
    assert (total["value"], total["found"], total["size"]) == (1000, True, 501)
    assert result.states["one"].summary["value"] == 999  # a single {{ }} keeps its type
    assert result.states["count_evens"].summary["changed"] == 500
    # another store is another namespace
    assert result.states["elsewhere"].summary["value"] == 0
    assert result.states["elsewhere"].summary["found"] is False


async def test_single_ops_between_workloads_and_summary(tmp_path: Path) -> None:
    result = await run(
        tmp_path,
        """
        - name: put
          process: { module: data:kv, params: { op: set, key: cfg, value: { env: prod, n: [1] } } }
        - name: read
          depends_on: [put]
          process: { module: data:kv, params: { op: get, key: cfg } }
          register: cfg
        - name: use
          depends_on: [read]
          process: { module: control:identity, params: { env: "{{ cfg.value.env }}" } }
        - name: drop
          depends_on: [use]
          process: { module: data:kv, params: { op: delete, key: cfg } }
        - name: gone
          depends_on: [drop]
          process: { module: data:kv, params: { op: has, key: cfg } }
        - name: nothing
          depends_on: [gone]
          process: { module: data:kv, params: { op: none } }
        """,
    )
    assert result.status == "Completed", {n: s.error for n, s in result.states.items()}
    assert result.states["put"].summary == {
        "op": "set",
        "store": "default",
        "key": "cfg",
        "value": {"env": "prod", "n": [1]},
        "found": False,
        "changed": True,
        "size": 1,
    }
    assert result.states["read"].summary["value"] == {"env": "prod", "n": [1]}
    assert result.states["use"].summary == {"env": "prod"}
    drop = result.states["drop"].summary
    assert (drop["value"], drop["found"], drop["changed"], drop["size"]) == (
        {"env": "prod", "n": [1]},
        True,
        True,
        0,
    )
    assert result.states["gone"].summary["value"] is False
    assert result.states["nothing"].summary == {
        "op": "none",
        "store": "default",
        "size": 0,
        "changed": False,
    }
    assert any("set cfg in store 'default'" in line for _, _, line in result.states["put"].logs)


async def test_stores_end_with_the_run() -> None:
    r = await run_module("data:kv", {"op": "set", "key": "k", "value": 1})
    assert r.ok and r.run is not None
    assert r.run.kv.closed and r.run.kv.size("default") == 0
    with pytest.raises(KVError, match="the run has ended"):
        r.run.kv.set("default", "k", 1, 10)
    # a new run starts empty
    again = await run_module("data:kv", {"op": "get", "key": "k", "default": "none yet"})
    assert again.summary["value"] == "none yet" and again.summary["found"] is False


# -- bounds ------------------------------------------------------------------------------


async def test_max_keys_bounds_new_keys_only() -> None:
    records = [
        {"op": "set", "k": "a", "v": 1},
        {"op": "set", "k": "b", "v": 2},
        {"op": "set", "k": "a", "v": 3},  # an existing key: fine when full
        {"op": "incr", "k": "b"},
        {"op": "set", "k": "c", "v": 4},
    ]
    params = {**STREAM, "max_keys": 2, "store": "small"}
    r = await run_module("data:kv", params, inputs=records)
    assert not r.ok
    assert "bad record #5" in r.error
    assert "store 'small' is full: 2 keys (max_keys: 2)" in r.error
    assert [x["kv"]["value"] for x in r.records] == [1, 2, 3, 3]

    r = await run_module("data:kv", {**params, "on_error": "skip"}, inputs=records)
    assert r.ok and len(r.records) == 4
    assert r.summary["bad_records"] == 1 and r.counters == {"skipped": 1}

    r = await run_module(
        "data:kv",
        {**STREAM, "max_keys": 1},
        inputs=[{"op": "incr", "k": "x"}, {"op": "incr", "k": "y"}],
    )
    assert "store 'default' is full: 1 keys (max_keys: 1)" in r.error


def test_number_of_stores_is_bounded() -> None:
    stores = KVStores(max_stores=2)
    stores.set("a", "k", 1, 10)
    stores.incr("b", "k", 1, 0, 10)
    with pytest.raises(KVError, match=r"store 'c': too many key-value stores in this run \(2\)"):
        stores.set("c", "k", 1, 10)


# -- errors ------------------------------------------------------------------------------


async def test_incr_of_a_non_number_is_a_clear_error() -> None:
    r = await run_module(
        "data:kv",
        STREAM,
        inputs=[{"op": "set", "k": "name", "v": "ada"}, {"op": "incr", "k": "name"}],
    )
    assert not r.ok
    assert "bad record #2" in r.error
    assert "incr: key 'name' holds a str that is not a number" in r.error

    r = await run_module("data:kv", {"op": "incr", "key": "n", "by": "lots"})
    assert r.status == "Failed" and "by: str is not a number" in r.error
    r = await run_module("data:kv", {"op": "incr", "key": "n", "default": [1]})
    assert "incr: key 'n' default is a list that is not a number" in r.error
    r = await run_module("data:kv", {"op": "incr", "key": "n", "by": True})
    assert "by: bool is not a number" in r.error


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"op": "fly", "key": "k"}, "op: 'fly' is not one of get, set, delete, incr, has, none"),
        ({"op": "{{ 3 }}", "key": "k"}, "op: 3 is not one of"),
        ({"op": "{{ [1] }}", "key": "k"}, "op: 'list' is not one of"),
        ({"op": "get"}, "key: rendered to nothing"),
        ({"op": "get", "key": ""}, "key: rendered to empty text"),
        ({"op": "get", "key": "{{ true }}"}, "key: must be text, got a bool"),
        ({"op": "set", "key": "{{ [1] }}", "value": 1}, "key: must be text, got a list"),
        ({"op": "get", "key": "{{ nope.x }}"}, "param 'key': undefined name 'nope'"),
    ],
)
async def test_bad_params_at_run_time_name_the_param(params: dict, message: str) -> None:
    r = await run_module("data:kv", params)
    assert r.status == "Failed"
    assert message in r.error


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "missing required key 'op'"),
        (
            {"op": "get", "key": "k", "max_keys": 0},
            "max_keys: Input should be greater than or equal to 1",
        ),
        ({"op": "get", "key": "k", "store": ""}, "store: String should have at least 1 character"),
        ({"op": "get", "key": "k", "colour": 1}, "colour"),
        ({"op": "get", "key": "k", "on_error": "ignore"}, "on_error"),
        (
            {"op": "get", "key": "k", "dead_letter": {"path": "x.jsonl"}},
            "dead_letter is set but on_error is 'fail'",
        ),
    ],
)
def test_bad_params_are_rejected_at_validation(params: dict, message: str) -> None:
    from gxo.config.loader import load_playbook

    text = (
        "schemaVersion: '1.0.0'\nname: p\nworkloads:\n"
        f"  - name: step\n    process:\n      module: data:kv\n      params: {json.dumps(params)}\n"
    )
    with pytest.raises(PlaybookValidationError) as err:
        load_playbook(text=text, name="pb.yaml")
    assert message in str(err.value)
    assert "workload 'step'" in str(err.value)


async def test_on_error_emit_sends_the_failed_record_on_with_kv_error() -> None:
    records = [
        {"op": "set", "k": "s", "v": "text"},
        {"op": "incr", "k": "s"},
        {"op": "get", "k": ""},
        {"op": "{{", "k": "x"},
        {"op": "get", "k": "s"},
    ]
    params = {**STREAM, "op": "{{ record.op if record.op != '{{' else undefined_name }}"}
    r = await run_module("data:kv", {**params, "on_error": "emit"}, inputs=records)
    assert r.ok, r.error
    kvs = [x["kv"] for x in r.records]
    assert kvs[1] == {
        "op": "incr",
        "store": "default",
        "key": "s",
        "error": "incr: key 's' holds a str that is not a number",
    }
    assert kvs[2]["error"] == "key: rendered to empty text"
    assert kvs[3]["op"] is None and "undefined name 'undefined_name'" in kvs[3]["error"]
    assert kvs[3]["error"].startswith("param 'op': ")
    assert kvs[4]["value"] == "text"
    assert r.summary["bad_records"] == 3 and r.summary["records"] == 2
    assert r.counters == {"errors": 3}


async def test_dead_letter_policy(tmp_path: Path) -> None:
    r = await run_module(
        "data:kv",
        {**STREAM, "on_error": "dead_letter"},
        inputs=[{"op": "get", "k": ""}, {"op": "get", "k": "x"}],
        workspace=tmp_path,
    )
    assert r.ok and len(r.records) == 1
    letters = (tmp_path / "dead_letters" / "under_test.jsonl").read_text().splitlines()
    assert json.loads(letters[0])["error"] == "key: rendered to empty text"


# -- secrets -----------------------------------------------------------------------------


async def test_secrets_stay_tainted_in_records_and_redacted_in_summaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GXO_TEST_KV_TOKEN", TOKEN)
    result = await run(
        tmp_path,
        """
        - name: put
          process:
            module: data:kv
            params: { op: set, key: token, value: "{{ secret('GXO_TEST_KV_TOKEN') }}" }
        - name: read
          depends_on: [put]
          process: { module: data:kv, params: { op: get, key: token } }
        - name: bad
          depends_on: [read]
          process: { module: data:kv, params: { op: incr, key: token } }
        """,
    )
    assert result.states["put"].summary["value"] == REDACTED
    assert result.states["read"].summary["value"] == REDACTED
    assert result.states["read"].summary["found"] is True
    assert result.states["bad"].status.value == "Failed"
    assert "holds a SecretStr that is not a number" in result.states["bad"].error
    report = json.dumps(result.report(), default=str)
    assert TOKEN not in report

    monkeypatch.setenv("GXO_TEST_KV_TOKEN2", TOKEN + "x")
    r = await run_module(
        "data:kv",
        {"op": "set", "key": "{{ record.k }}", "value": "{{ secret('GXO_TEST_KV_TOKEN2') }}"},
        inputs=[{"k": "a"}],
    )
    assert r.ok, r.error
    value = r.records[0]["kv"]["value"]
    assert isinstance(value, SecretStr) and value == TOKEN + "x"  # tainted, usable downstream


async def test_a_secret_key_is_redacted_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GXO_TEST_KV_KEY", TOKEN)
    r = await run_module(
        "data:kv",
        {"op": "incr", "key": "{{ secret('GXO_TEST_KV_KEY') }}", "default": "x"},
    )
    assert r.status == "Failed"
    assert TOKEN not in r.error and f"incr: key '{REDACTED}'" in r.error


# -- check mode --------------------------------------------------------------------------


def test_check_mode_declared_per_op() -> None:
    module = REGISTRY.get("data:kv").cls()
    params = module.Params
    assert module.check_mode_for(params(op="get", key="k")) is CheckMode.safe
    assert module.check_mode_for(params(op="has", key="k")) is CheckMode.safe
    assert module.check_mode_for(params(op="set", key="k")) is CheckMode.predict
    assert module.check_mode_for(params(op="{{ record.op }}", key="k")) is CheckMode.predict


async def test_check_mode_predicts_writes_and_changes_nothing(tmp_path: Path) -> None:
    result = await run(
        tmp_path,
        """
        - name: put
          process: { module: data:kv, params: { op: set, key: a, value: 1 } }
        - name: read
          depends_on: [put]
          process: { module: data:kv, params: { op: get, key: a, default: unset } }
        - name: src
          process:
            module: data:generate_from_list
            params: { items: [{op: set, k: b, v: 2}, {op: incr, k: b, by: 3}, {op: get, k: b}, {op: delete, k: b}, {op: has, k: b}, {op: incr, k: c}] }
        - name: stream
          stream_inputs: [src]
          process:
            module: data:kv
            params: { op: "{{ record.op }}", key: "{{ record.k }}", value: "{{ record.v | default(none) }}", by: "{{ record.by | default(1) }}" }
        - name: sink
          stream_inputs: [stream]
          process: { module: passthrough }
        - name: after
          depends_on: [stream]
          process: { module: data:kv, params: { op: has, key: b } }
        - name: full
          process: { module: data:kv, params: { op: set, key: z, value: 1, max_keys: 1, store: f } }
        """,
        check=True,
    )
    states = result.states
    assert states["put"].check_outcome == "predicted"
    assert states["put"].summary["changed"] is True and states["put"].summary["size"] == 1
    assert any("would set a in store 'default'" in line for _, _, line in states["put"].logs)
    assert states["read"].check_outcome == "ran"
    assert states["read"].summary["value"] == "unset"  # nothing was written
    stream = states["stream"].summary
    assert stream == {"records": 6, "changed": 4, "bad_records": 0, "store": "default", "size": 1}
    assert states["after"].summary["value"] is False
    assert states["full"].status.value == "Completed"


async def test_check_mode_predicts_refusals(tmp_path: Path) -> None:
    records = [
        {"op": "set", "k": "a", "v": "x"},
        {"op": "set", "k": "b", "v": 1},
        {"op": "incr", "k": "a"},
    ]
    items = json.dumps(records)
    result = await run(
        tmp_path,
        f"""
        - name: src
          process: {{ module: data:generate_from_list, params: {{ items: {items} }} }}
        - name: kv
          stream_inputs: [src]
          process:
            module: data:kv
            params: {{ op: "{{{{ record.op }}}}", key: "{{{{ record.k }}}}", value: "{{{{ record.v }}}}", max_keys: 1, on_error: skip }}
        - name: sink
          stream_inputs: [kv]
          process: {{ module: passthrough }}
        """,
        check=True,
    )
    summary = result.states["kv"].summary
    assert summary["bad_records"] == 2 and summary["size"] == 1
    assert result.states["kv"].counters == {"skipped": 2}


def test_as_number() -> None:
    assert [as_number(v) for v in (3, 2.5, " 7 ", "1e3", "x", True, None, "nan", "inf")] == [
        3,
        2.5,
        7,
        1000.0,
        None,
        None,
        None,
        None,
        None,
    ]


async def test_refuses_to_run_without_the_run_state() -> None:
    from types import SimpleNamespace

    from gxo.errors import ModuleError
    from gxo.modules.data.kv import KV, _apply

    def fail(message: str) -> ModuleError:
        return ModuleError(message)

    ctx = SimpleNamespace(run=SimpleNamespace(), fail=fail)  # a sandbox child's context
    with pytest.raises(ModuleError, match="data:kv cannot run sandboxed"):
        await _apply(ctx, KV.Params(op="get", key="k"), dry=False)  # type: ignore[arg-type]
