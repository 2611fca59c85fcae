"""data:map and data:filter: per-record templates, the bad-record policy, params."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gxo.errors import PlaybookValidationError
from gxo.modules.testkit import run_module

USERS = [{"name": "ada", "n": 1, "tags": ["x"]}, {"name": "bob", "n": 3, "tags": []}]


# -- data:map ----------------------------------------------------------------------------


async def test_map_fields_keep_native_types_constants_and_nesting() -> None:
    params = {
        "fields": {
            "name": "{{ record.name | upper }}",
            "n": "{{ record.n * 2 }}",
            "label": "n={{ record.n }}",
            "source": "api",
            "weight": 1.5,
            "meta": {
                "first_tag": "{{ record.tags[0] | default(none) }}",
                "fixed": [1, "{{ record.n }}"],
            },
        }
    }
    r = await run_module("data:map", params, inputs=USERS)
    assert r.ok, r.error
    assert r.records == [
        {
            "name": "ADA",
            "n": 2,
            "label": "n=1",
            "source": "api",
            "weight": 1.5,
            "meta": {"first_tag": "x", "fixed": [1, 1]},
        },
        {
            "name": "BOB",
            "n": 6,
            "label": "n=3",
            "source": "api",
            "weight": 1.5,
            "meta": {"first_tag": None, "fixed": [1, 3]},
        },
    ]
    assert r.summary == {"records_mapped": 2, "bad_records": 0}


async def test_map_keep_adds_and_replaces_fields() -> None:
    r = await run_module(
        "data:map",
        {"fields": {"n": "{{ record.n + 1 }}", "big": "{{ record.n > 2 }}"}, "keep": True},
        inputs=USERS,
    )
    assert r.records == [
        {"name": "ada", "n": 2, "tags": ["x"], "big": False},
        {"name": "bob", "n": 4, "tags": [], "big": True},
    ]


async def test_map_sees_playbook_vars_and_registered_results() -> None:
    r = await run_module(
        "data:map",
        {"fields": {"scaled": "{{ record.n * factor }}", "env": "{{ cfg.env }}"}},
        inputs=USERS,
        variables={"factor": 10},
        state={"cfg": {"env": "prod"}},
    )
    assert r.records == [{"scaled": 10, "env": "prod"}, {"scaled": 30, "env": "prod"}]


async def test_map_template_mapping_or_json_string() -> None:
    r = await run_module(
        "data:map", {"template": "{{ {'who': record.name, 'n': record.n} | tojson }}"}, inputs=USERS
    )
    assert r.records == [{"who": "ada", "n": 1}, {"who": "bob", "n": 3}]
    r = await run_module("data:map", {"template": "{{ {'who': record.name} }}"}, inputs=USERS)
    assert r.records == [{"who": "ada"}, {"who": "bob"}]


async def test_map_template_that_is_not_a_mapping_is_a_bad_record() -> None:
    r = await run_module("data:map", {"template": "{{ record.n }}"}, inputs=USERS)
    assert r.status == "Failed"
    assert r.error.startswith(
        'bad record #1 {"name": "ada", "n": 1, "tags": ["x"]}: template must produce a mapping'
    )
    r = await run_module(
        "data:map", {"template": "{{ record.name }}", "on_error": "skip"}, inputs=USERS
    )
    assert r.records == []
    assert r.counters == {"skipped": 2}
    assert r.logs[0][1].startswith("skipped bad record #1: template output is not JSON")


async def test_map_failing_template_names_record_and_field() -> None:
    r = await run_module("data:map", {"fields": {"x": "{{ record.missing.deeper }}"}}, inputs=USERS)
    assert r.status == "Failed"
    assert "bad record #1" in r.error
    assert "param 'fields.x': undefined name 'missing'" in r.error


async def test_map_dead_letters_default_path(tmp_path: Path) -> None:
    inputs = [{"n": 1}, {"n": "x"}, {"n": 2}]
    r = await run_module(
        "data:map",
        {"fields": {"n": "{{ record.n + 1 }}"}, "on_error": "dead_letter"},
        inputs=inputs,
        workspace=tmp_path,
    )
    assert r.ok, r.error
    assert r.records == [{"n": 2}, {"n": 3}]
    assert r.counters == {"dead_lettered": 1}
    [entry] = [
        json.loads(x)
        for x in (tmp_path / "dead_letters" / "under_test.jsonl").read_text().splitlines()
    ]
    assert (
        entry["index"] == 2 and entry["record"] == {"n": "x"} and entry["workload"] == "under_test"
    )
    assert entry["error"].startswith("param 'fields.n': TypeError")


async def test_map_output_records_are_independent_copies_of_constants() -> None:
    r = await run_module("data:map", {"fields": {"list": [1, 2]}}, inputs=USERS)
    assert r.records[0]["list"] is not r.records[1]["list"]


# -- data:filter -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "condition", ["record.n > 2", "{{ record.n > 2 }}", "{{ record.name == 'bob' }}"]
)
async def test_filter_braced_or_bare(condition: str) -> None:
    r = await run_module("data:filter", {"condition": condition}, inputs=USERS)
    assert r.ok, r.error
    assert r.records == [USERS[1]]
    assert r.summary == {"records_passed": 1, "records_filtered": 1, "bad_records": 0}


async def test_filter_spec_truthiness_and_constant_conditions() -> None:
    inputs = [{"v": "false"}, {"v": "0"}, {"v": ""}, {"v": []}, {"v": "yes"}, {"v": 2}]
    r = await run_module("data:filter", {"condition": "record.v"}, inputs=inputs)
    assert r.records == [{"v": "yes"}, {"v": 2}]
    r = await run_module("data:filter", {"condition": True}, inputs=USERS)
    assert r.records == USERS
    r = await run_module("data:filter", {"condition": False}, inputs=USERS)
    assert r.records == []


async def test_filter_uses_playbook_vars() -> None:
    r = await run_module(
        "data:filter",
        {"condition": "record.n >= threshold"},
        inputs=USERS,
        variables={"threshold": 3},
    )
    assert [x["name"] for x in r.records] == ["bob"]


async def test_filter_condition_error_is_a_bad_record() -> None:
    inputs = [{"n": 5}, {"other": 1}, {"n": 1}]
    r = await run_module("data:filter", {"condition": "record.n > 2"}, inputs=inputs)
    assert r.status == "Failed"
    assert r.error.startswith("bad record #2 {\"other\": 1}: param 'condition': undefined name 'n'")
    r = await run_module(
        "data:filter", {"condition": "record.n > 2", "on_error": "skip"}, inputs=inputs
    )
    assert r.records == [{"n": 5}]
    assert r.summary == {"records_passed": 1, "records_filtered": 1, "bad_records": 1}
    r = await run_module(
        "data:filter", {"condition": "record.n is defined and record.n > 2"}, inputs=inputs
    )
    assert r.ok and r.records == [{"n": 5}]


async def test_many_bad_records_log_only_the_first_few() -> None:
    inputs = [{"x": i} for i in range(20)]
    r = await run_module(
        "data:filter", {"condition": "record.n", "on_error": "skip"}, inputs=inputs
    )
    assert r.counters == {"skipped": 20}
    lines = [line for _, line in r.logs]
    assert len(lines) == 7
    assert lines[5] == "further bad records are counted but not logged"
    assert lines[6] == "20 bad records skipped in total"


@pytest.mark.parametrize(
    ("module", "params", "message"),
    [
        (
            "data:map",
            {"fields": {"a": "{{ record.a }}"}, "template": "{{ {} }}"},
            "give exactly one of 'fields' or 'template'",
        ),
        ("data:map", {}, "give exactly one of 'fields' or 'template'"),
        ("data:map", {"template": "{{ {} }}", "keep": True}, "'keep' applies to 'fields' only"),
        (
            "data:map",
            {"fields": {"a": "{{ record.a }}"}, "on_error": "ignore"},
            "on_error: Input should be 'fail', 'skip' or 'dead_letter'",
        ),
        ("data:filter", {}, "missing required key 'condition'"),
        (
            "data:filter",
            {"condition": "record.n >"},
            "template syntax error: unexpected 'end of print statement'",
        ),
        ("data:filter", {"condition": "recrd.n > 1"}, "'recrd' is not defined"),
    ],
)
def test_bad_params_are_rejected_at_validation(module: str, params: dict, message: str) -> None:
    from gxo.config.loader import load_playbook

    text = (
        "schemaVersion: '1.0.0'\nname: p\nworkloads:\n"
        "  - name: src\n    process: { module: data:generate_from_list, params: { items: [1] } }\n"
        f"  - name: step\n    process:\n      module: {module}\n      params: {json.dumps(params)}\n    stream_inputs: [src]\n"
    )
    with pytest.raises(PlaybookValidationError) as err:
        load_playbook(text=text, name="pb.yaml")
    assert message in str(err.value)
    assert "pb.yaml:" in str(err.value) and "workload 'step'" in str(err.value)


async def test_map_output_keeps_the_declared_field_order() -> None:
    fields = {"a": 1, "b": "{{ record.n }}", "c": {"x": "{{ record.n }}"}, "d": "{{ record.name }}"}
    r = await run_module("data:map", {"fields": fields}, inputs=USERS[:1])
    assert list(r.records[0]) == ["a", "b", "c", "d"]
    r = await run_module("data:map", {"fields": fields, "keep": True}, inputs=USERS[:1])
    assert list(r.records[0]) == ["name", "n", "tags", "a", "b", "c", "d"]
