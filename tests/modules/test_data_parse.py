"""data:parse: every format, from content and from an input stream, and its errors."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from gxo.errors import PlaybookValidationError
from gxo.modules.testkit import run_module


async def parse(params: dict, inputs: list[dict] | None = None, **kw):
    return await run_module("data:parse", params, inputs=inputs, **kw)


async def test_json_lines_from_content_wraps_non_objects_and_ignores_blank_lines() -> None:
    r = await parse(
        {"format": "json_lines", "content": '{"a": 1}\n\n  \n[1, 2]\n"x"\r\n{"b": null}'}
    )
    assert r.ok, r.error
    assert r.records == [{"a": 1}, {"value": [1, 2]}, {"value": "x"}, {"b": None}]
    assert r.summary == {"records_parsed": 4, "bad_records": 0, "format": "json_lines"}


async def test_json_lines_from_stream_of_line_records_and_multi_line_texts() -> None:
    inputs = [{"line": '{"n": 1}'}, {"line": '{"n": 2}\n{"n": 3}\n'}, {"line": ""}]
    r = await parse({"format": "json_lines"}, inputs)
    assert r.ok, r.error
    assert r.records == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert r.state.records_in == 3


async def test_bad_line_fails_by_default_naming_the_line_and_the_policy() -> None:
    r = await parse({"format": "json_lines", "content": '{"a": 1}\n{"a": \n'})
    assert r.status == "Failed"
    assert r.error.startswith(
        'bad line 2 "{\\"a\\": ": invalid JSON: Expecting value: line 1 column 7'
    )
    assert "on_error: skip or dead_letter" in r.error


async def test_bad_lines_skipped_are_counted_and_logged() -> None:
    r = await parse({"format": "json_lines", "content": "{}\nnope\n{}\n", "on_error": "skip"})
    assert r.ok, r.error
    assert r.records == [{}, {}]
    assert r.counters == {"skipped": 1}
    assert r.summary["bad_records"] == 1
    assert (
        "log",
        "skipped bad line 2: invalid JSON: Expecting value: line 1 column 1 (char 0)",
    ) in r.logs


async def test_bad_lines_dead_lettered_to_a_json_lines_file(tmp_path: Path) -> None:
    r = await parse(
        {
            "format": "json_lines",
            "content": "{}\nnope\n",
            "on_error": "dead_letter",
            "dead_letter": {"path": "dl/bad.jsonl"},
        },
        workspace=tmp_path,
    )
    assert r.ok, r.error
    assert r.counters == {"dead_lettered": 1}
    entries = [json.loads(x) for x in (tmp_path / "dl" / "bad.jsonl").read_text().splitlines()]
    assert entries == [
        {
            "workload": "under_test",
            "index": 2,
            "error": "invalid JSON: Expecting value: line 1 column 1 (char 0)",
            "record": "nope",
        }
    ]


async def test_input_record_without_the_text_field() -> None:
    r = await parse({"format": "text_lines"}, [{"line": "a"}, {"text": "b"}, {"line": 3}])
    assert r.status == "Failed"
    assert r.error.startswith('bad record #2 {"text": "b"}: input record has no field \'line\'')
    r = await parse(
        {"format": "text_lines", "on_error": "skip"}, [{"line": "a"}, {"text": "b"}, {"line": 3}]
    )
    assert r.records == [{"line": "a", "line_number": 1}]
    assert r.counters == {"skipped": 2}
    assert any("has a int, not text, in 'line'" in line for _, line in r.logs)


async def test_text_lines_keep_blank_lines_and_strip_line_ends() -> None:
    r = await parse({"format": "text_lines", "content": "one\r\n\ntwo"})
    assert r.records == [
        {"line": "one", "line_number": 1},
        {"line": "", "line_number": 2},
        {"line": "two", "line_number": 3},
    ]


async def test_input_field_may_be_a_dotted_path() -> None:
    r = await parse(
        {"format": "text_lines", "input_field": "resp.body"}, [{"resp": {"body": "x\ny"}}]
    )
    assert [x["line"] for x in r.records] == ["x", "y"]


async def test_csv_with_header_quoted_newlines_and_delimiter() -> None:
    content = 'name;note\nada;"line one\nline two"\nbob;"say ""hi"""\n\n'
    r = await parse({"format": "csv", "content": content, "delimiter": ";"})
    assert r.ok, r.error
    assert r.records == [
        {"name": "ada", "note": "line one\nline two"},
        {"name": "bob", "note": 'say "hi"'},
    ]


async def test_csv_quoted_field_spanning_input_records() -> None:
    inputs = [{"line": "id,text"}, {"line": '1,"first'}, {"line": 'second"'}, {"line": "2,plain"}]
    r = await parse({"format": "csv"}, inputs)
    assert r.records == [{"id": "1", "text": "first\nsecond"}, {"id": "2", "text": "plain"}]


async def test_csv_columns_and_header_options() -> None:
    r = await parse({"format": "csv", "content": "1,2\n3,4\n", "columns": ["a", "b"]})
    assert r.records == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]
    r = await parse(
        {"format": "csv", "content": "x,y\n1,2\n", "columns": ["a", "b"], "header": True}
    )
    assert r.records == [{"a": "1", "b": "2"}]
    r = await parse({"format": "csv", "content": "1,2\n", "header": False})
    assert r.records == [{"col1": "1", "col2": "2"}]


async def test_csv_row_with_wrong_field_count_and_unterminated_quote() -> None:
    r = await parse({"format": "csv", "content": "a,b\n1,2\n3\n"})
    assert r.status == "Failed"
    assert r.error.startswith('bad csv row 3 ["3"]: row has 1 fields, expected 2 (a, b)')
    r = await parse({"format": "csv", "content": 'a,b\n1,"open\n', "on_error": "skip"})
    assert r.ok
    assert r.counters == {"skipped": 1}
    assert any("unterminated quoted field" in line for _, line in r.logs)


async def test_json_document_list_object_and_items_field() -> None:
    r = await parse({"format": "json", "content": '[{"a": 1}, 2]'})
    assert r.records == [{"a": 1}, {"value": 2}]
    r = await parse({"format": "json", "content": '{"a": 1}'})
    assert r.records == [{"a": 1}]
    body = json.dumps({"data": {"items": [{"id": 1}, {"id": 2}]}})
    r = await parse({"format": "json", "content": body, "items_field": "data.items"})
    assert r.records == [{"id": 1}, {"id": 2}]
    r = await parse({"format": "json", "content": "   "})
    assert r.ok and r.records == []


async def test_json_documents_from_a_stream_one_per_record() -> None:
    inputs = [{"body": '{"items": [{"id": 1}]}'}, {"body": "{broken"}, {"body": '{"other": 1}'}]
    r = await parse(
        {"format": "json", "input_field": "body", "items_field": "items", "on_error": "skip"},
        inputs,
    )
    assert r.records == [{"id": 1}]
    assert r.counters == {"skipped": 2}
    messages = [line for _, line in r.logs]
    assert messages[0].startswith("skipped bad document #2: invalid JSON: Expecting property name")
    assert messages[1] == "skipped bad document #3: document has no field 'items'"


async def test_yaml_several_documents_and_non_json_values() -> None:
    content = textwrap.dedent(
        """
        - { name: a, when: 2024-01-02 }
        - name: b
        ---
        name: c
        """
    )
    r = await parse({"format": "yaml", "content": content})
    assert r.records == [{"name": "a", "when": "2024-01-02"}, {"name": "b"}, {"name": "c"}]


async def test_yaml_error_names_line_and_column() -> None:
    r = await parse({"format": "yaml", "content": "a: [1, 2\nb: 3\n"})
    assert r.status == "Failed"
    assert r.error.startswith('bad document 1 "a: [1, 2\\nb: 3\\n": invalid YAML:')
    assert "line 2 column 2" in r.error


async def test_content_and_stream_are_exclusive_and_one_is_needed() -> None:
    r = await parse({"format": "json_lines", "content": "{}"}, [{"line": "{}"}])
    assert r.error == "give either content or stream_inputs, not both"
    r = await parse({"format": "json_lines"})
    assert r.error == "nothing to parse: give content, or stream_inputs whose records hold the text"


async def test_large_content_streams_through_a_small_buffer() -> None:
    content = "\n".join(f'{{"i": {i}}}' for i in range(10_000))
    r = await run_module("data:parse", {"format": "json_lines", "content": content}, buffer_size=10)
    assert r.ok, r.error
    assert len(r.records) == 10_000
    assert r.records[-1] == {"i": 9999}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"format": "xml", "content": "x"},
            "format: Input should be 'json', 'json_lines', 'text_lines', 'csv' or 'yaml'",
        ),
        ({"format": "json", "content": "{}", "columns": ["a"]}, "columns only apply to format csv"),
        (
            {"format": "csv", "content": "a", "items_field": "x"},
            "items_field only applies to formats json and yaml",
        ),
        (
            {"format": "csv", "content": "a", "delimiter": ";;"},
            "delimiter: String should have at most 1 character",
        ),
        (
            {"format": "json", "content": "{}", "dead_letter": {"path": "x"}},
            "dead_letter is set but on_error is 'fail'",
        ),
        ({"format": "json", "content": "{}", "on_eror": "skip"}, "on_eror"),
    ],
)
def test_bad_params_are_rejected_at_validation(params: dict, message: str) -> None:
    from gxo.config.loader import load_playbook

    text = (
        "schemaVersion: '1.0.0'\nname: p\nworkloads:\n  - name: parse_it\n    process:\n      module: data:parse\n      params: "
        + json.dumps(params)
        + "\n"
    )
    with pytest.raises(PlaybookValidationError) as err:
        load_playbook(text=text, name="pb.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("pb.yaml:")
    assert "workload 'parse_it'" in str(err.value)
