"""data:format: every format, the atomic file write, streaming to a file, params."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from gxo.errors import PlaybookValidationError
from gxo.modules.testkit import run_module

ROWS = [
    {"team": "red", "total": 5, "ok": True},
    {"team": "blue", "total": 1.5, "tags": ["a", "b"], "ok": False},
]


async def fmt(params: dict, inputs: list[dict] = ROWS, **kw):
    return await run_module("data:format", params, inputs=inputs, **kw)


async def test_csv_header_is_the_union_of_keys_in_first_seen_order() -> None:
    r = await fmt({"format": "csv"})
    assert r.ok, r.error
    assert (
        r.summary["formatted_content"]
        == 'team,total,ok,tags\nred,5,true,\nblue,1.5,false,"[""a"", ""b""]"\n'
    )
    assert r.summary["records_formatted"] == 2
    assert r.summary["path"] is None
    assert r.summary["bytes"] == len(r.summary["formatted_content"])


async def test_csv_with_columns_delimiter_and_no_header() -> None:
    r = await fmt({"format": "csv", "columns": ["total", "team", "missing"], "delimiter": ";"})
    assert r.summary["formatted_content"] == "total;team;missing\n5;red;\n1.5;blue;\n"
    r = await fmt({"format": "csv", "columns": ["team"], "header": False})
    assert r.summary["formatted_content"] == "red\nblue\n"


async def test_csv_round_trips_through_the_csv_module(tmp_path: Path) -> None:
    tricky = [{"text": 'comma, "quote"\nnewline', "n": 1}]
    r = await fmt({"format": "csv", "path": "t.csv"}, tricky, workspace=tmp_path)
    with (tmp_path / "t.csv").open(newline="", encoding="utf-8") as fh:
        assert list(csv.DictReader(fh)) == [{"text": 'comma, "quote"\nnewline', "n": "1"}]
    assert r.summary["path"] == str(tmp_path / "t.csv")


async def test_json_json_lines_and_yaml() -> None:
    r = await fmt({"format": "json"})
    assert json.loads(r.summary["formatted_content"]) == ROWS
    assert r.summary["formatted_content"].startswith('[\n  {\n    "team": "red"')
    r = await fmt({"format": "json", "indent": 0})
    assert r.summary["formatted_content"] == json.dumps(ROWS) + "\n"
    r = await fmt({"format": "json_lines"})
    assert [json.loads(x) for x in r.summary["formatted_content"].splitlines()] == ROWS
    r = await fmt({"format": "yaml"})
    assert r.summary["formatted_content"].startswith("- ok: true\n  team: red\n  total: 5\n")
    r = await fmt({"format": "yaml"}, [])
    assert r.summary["formatted_content"] == "[]\n"


async def test_text_template_per_record_and_bad_records() -> None:
    r = await fmt({"format": "text", "template": "{{ record.team }}: {{ record.total }}"})
    assert r.summary["formatted_content"] == "red: 5\nblue: 1.5\n"
    r = await fmt({"format": "text", "template": "{{ record.tags | join('+') }}"})
    assert r.status == "Failed"
    assert r.error.startswith(
        'bad record #1 {"team": "red", "total": 5, "ok": true}: param \'template\': undefined name \'tags\''
    )
    r = await fmt(
        {"format": "text", "template": "{{ record.tags | join('+') }}", "on_error": "skip"}
    )
    assert r.summary["formatted_content"] == "a+b\n"
    assert r.counters == {"skipped": 1}


async def test_non_json_values_are_written_as_strings() -> None:
    from datetime import date

    r = await fmt({"format": "json_lines"}, [{"d": date(2024, 1, 2)}])
    assert r.summary["formatted_content"] == '{"d": "2024-01-02"}\n'


async def test_file_is_replaced_atomically_and_parents_created(tmp_path: Path) -> None:
    target = tmp_path / "out" / "deep" / "report.json"
    target.parent.mkdir(parents=True)
    target.write_text("old")
    r = await fmt({"format": "json", "path": "out/deep/report.json"}, workspace=tmp_path)
    assert r.ok, r.error
    assert json.loads(target.read_text()) == ROWS
    assert sorted(os.listdir(target.parent)) == ["report.json"]  # no temporary file left
    r = await fmt({"format": "csv", "path": "new/dir/x.csv"}, workspace=tmp_path)
    assert (tmp_path / "new" / "dir" / "x.csv").read_text().startswith("team,total,ok,tags\n")


async def test_large_stream_to_file_without_keeping_the_content(tmp_path: Path) -> None:
    rows = [{"i": i, "text": "x" * 50} for i in range(30_000)]  # > 1 MiB: spilled in several writes
    r = await fmt(
        {"format": "json_lines", "path": "big.jsonl", "include_content": False},
        rows,
        workspace=tmp_path,
    )
    assert r.ok, r.error
    assert r.summary["formatted_content"] is None
    data = (tmp_path / "big.jsonl").read_text()
    assert r.summary["bytes"] == len(data)
    lines = data.splitlines()
    assert len(lines) == 30_000 and json.loads(lines[-1]) == {"i": 29_999, "text": "x" * 50}
    assert os.listdir(tmp_path) == ["big.jsonl"]


async def test_unwritable_path_fails_cleanly_and_leaves_no_temp_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    r = await fmt({"format": "csv", "path": "afile/sub/out.csv"}, workspace=tmp_path)
    assert r.status == "Failed"
    assert r.error.startswith(f"cannot write {tmp_path}/afile/sub/out.csv: ")
    assert sorted(os.listdir(tmp_path)) == ["afile"]
    os.chmod(tmp_path, 0o500)
    try:
        if os.access(tmp_path, os.W_OK):  # root ignores permissions
            return
        r = await fmt({"format": "csv", "path": "x.csv"}, workspace=tmp_path)
        assert r.error == f"cannot write {tmp_path}/x.csv: Permission denied"
    finally:
        os.chmod(tmp_path, 0o700)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"format": "html"},
            "format: Input should be 'json', 'json_lines', 'csv', 'yaml' or 'text'",
        ),
        ({"format": "text"}, "format text needs a template"),
        ({"format": "csv", "template": "{{ record }}"}, "template only applies to format text"),
        ({"format": "json", "columns": ["a"]}, "columns only applies to format csv"),
        ({"format": "json", "include_content": False}, "include_content: false needs a path"),
        ({"format": "json", "indent": -1}, "indent: Input should be greater than or equal to 0"),
    ],
)
def test_bad_params_are_rejected_at_validation(params: dict, message: str) -> None:
    from gxo.config.loader import load_playbook

    text = (
        "schemaVersion: '1.0.0'\nname: p\nworkloads:\n"
        "  - name: src\n    process: { module: data:generate_from_list, params: { items: [1] } }\n"
        f"  - name: out\n    process:\n      module: data:format\n      params: {json.dumps(params)}\n    stream_inputs: [src]\n"
    )
    with pytest.raises(PlaybookValidationError) as err:
        load_playbook(text=text, name="pb.yaml")
    assert message in str(err.value)
    assert "workload 'out'" in str(err.value)
