"""Expected-vs-actual rendering used by test:assert and the test runner."""

from __future__ import annotations

import pytest

from gxo.testing.diff import format_value, render_diff, type_name, values_equal


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (1, 1.0, True),
        (1, True, False),
        (0, False, False),
        ("200", 200, False),
        (None, None, True),
        ({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2.0}]}, True),
        ({"a": [1, True]}, {"a": [1, 1]}, False),
        ([1, 2], (1, 2), True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
    ],
)
def test_values_equal_is_strict_about_kinds_of_values(a: object, b: object, equal: bool) -> None:
    assert values_equal(a, b) is equal
    assert values_equal(b, a) is equal


def test_format_value_is_json_like_and_bounded() -> None:
    assert format_value("text") == '"text"'
    assert format_value(None) == "null"
    assert format_value({"k": [1, True]}) == '{"k": [1, true]}'
    assert format_value({1, 2}) in ("[1, 2]", "[2, 1]")
    assert format_value("x" * 50, limit=10) == '"xxxxxxxxx… (42 more characters)'
    loop: list = []
    loop.append(loop)
    assert format_value(loop) == "[[...]]"


def test_type_names_are_yaml_names() -> None:
    assert [type_name(v) for v in (None, True, 1, 1.5, "s", {}, [])] == [
        "null",
        "bool",
        "int",
        "float",
        "string",
        "mapping",
        "list",
    ]


def test_multiline_strings_get_a_unified_diff() -> None:
    diff = render_diff("one\ntwo\nthree\n", "one\n2\nthree\n")
    assert diff == "--- expected\n+++ actual\n@@ -1,3 +1,3 @@\n one\n-two\n+2\n three"


def test_strings_differing_only_in_trailing_newlines_say_so() -> None:
    assert "differ only in trailing newlines" in render_diff("a\nb\n", "a\nb")


def test_one_line_strings_get_a_caret_line() -> None:
    assert render_diff(
        "hello world", "hello wurld"
    ) == "- hello world\n?        ^\n\n+ hello wurld\n?        ^".replace("\n\n", "\n")


def test_mappings_get_a_per_key_diff_with_paths() -> None:
    expected = {"name": "ada", "roles": ["admin", "dev"], "address": {"city": "Paris"}, "gone": 1}
    actual = {
        "name": "ada",
        "roles": ["admin", "ops", "extra"],
        "address": {"city": "Lyon"},
        "new key": True,
    }
    assert render_diff(expected, actual).splitlines() == [
        "  roles: expected 2 items, actual has 3",
        '~ roles[1]: expected "dev", actual "ops"',
        '+ roles[2]: "extra"   (not expected)',
        '~ address.city: expected "Paris", actual "Lyon"',
        "- gone: 1   (missing from actual)",
        '+ ["new key"]: true   (not expected)',
    ]


def test_lists_get_a_per_index_diff_and_type_hints() -> None:
    assert render_diff([1, "2", {"a": 1}], [1, 2]).splitlines() == [
        "  (list): expected 3 items, actual has 2",
        '~ [1]: expected "2", actual 2   (string vs int)',
        '- [2]: {"a": 1}   (missing from actual)',
    ]


def test_long_diffs_are_cut() -> None:
    diff = render_diff(list(range(100)), [x + 1 for x in range(100)])
    lines = diff.splitlines()
    assert len(lines) == 61
    assert lines[-1] == "… 40 more differences"


@pytest.mark.parametrize(("a", "b"), [(1, 2), ("", "x"), ("a", 1), ({"a": 1}, [1])])
def test_scalars_and_mismatched_kinds_have_no_diff(a: object, b: object) -> None:
    assert render_diff(a, b) is None


@pytest.mark.parametrize(
    ("expected", "actual", "diff"),
    [
        (
            "one line",
            "first\nsecond",
            "--- expected\n+++ actual\n@@ -1 +1,2 @@\n-one line\n+first\n+second",
        ),
        (
            "line one\nline two\n",
            "line one",
            "--- expected\n+++ actual\n@@ -1,2 +1 @@\n line one\n-line two",
        ),
    ],
)
def test_a_multiline_string_against_a_one_line_string_gets_a_line_diff(
    expected: str, actual: str, diff: str
) -> None:
    # Either side spanning lines means a unified diff: ndiff on a multi-line string
    # would print its newlines inside one "- "/"+ " line and a garbled caret line.
    assert render_diff(expected, actual) == diff
    assert "?" not in render_diff(actual, expected)  # type: ignore[operator]
