"""The fast YAML path reads libyaml's events directly (no node objects): its state
machine — a stack of open collections, key/value alternation in mappings, documents —
must give ruamel's data and positions on every shape, not only the playbook ones."""

from __future__ import annotations

import pytest

from gxo.config import _yamlfast
from tests.unit.test_yaml_hardening import check_same, fast, reference

# Each takes the fast path and must read exactly as ruamel does (data and positions).
FAST = [
    "a: {}\nb: []\nc: [[], {}, [[]]]\nd: x\n",
    "a:\n  - {b: [1, {c: d}], e: f}\n  - g\nh: i\n",
    "a:\n  b:\n    c: [1, 2]\n  d: 3\ne:\n  - - x\n    - y\n  - z\n",
    "- {a: 1}\n- [b, {c: [d]}]\n- e\n",
    "hello\n",
    "--- a\n---\n--- [1, {b: 2}]\n...\n",
    "'<<': 1\n\"1\": a\n'true': b\n",
    "k: ''\nl: ~\nm:\nn: [~, '', null]\n",
    "{a: {b: {c: {}}}, d: [e]}\n",
]


@pytest.mark.parametrize("text", FAST)
def test_event_reader_reads_as_ruamel(text: str) -> None:
    for string_keys in (True, False):
        for all_documents in (False, True):
            if not all_documents and text.count("---") > 1:
                continue  # several documents: the single-document read is ruamel's error
            got = fast(text, string_keys=string_keys, all_documents=all_documents)
            assert got != "fallback", text
            assert got == reference(text, string_keys=string_keys, all_documents=all_documents)


def test_positions_of_nested_items_and_keys() -> None:
    text = "a:\n  - {b: 1, c: [x, y]}\n  - z\nd: 2\n"
    _, positions = _yamlfast.parse(text, string_keys=True, all_documents=False)
    assert positions == {
        (): (1, 1),
        ("a",): (1, 1),
        ("a", 0): (2, 5),
        ("a", 0, "b"): (2, 6),
        ("a", 0, "c"): (2, 12),
        ("a", 0, "c", 0): (2, 16),
        ("a", 0, "c", 1): (2, 19),
        ("a", 1): (3, 5),
        ("d",): (4, 1),
    }


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb: 2\na: 3\n",  # duplicate key
        "{[a]: b}\n",  # a collection as a key
        "? {a: 1}\n: b\n",
        "a: &x [1]\nb: *x\n",  # anchor and alias
        "a: !!str 1\n",  # explicit tag
        "- !x [1]\n",
        "<<: {a: 1}\n",  # merge key
        "a: b\n---\nc: d\n",  # two documents where one is expected
        "1: a\n",  # a non-string key where keys must be strings
    ],
)
def test_what_the_event_reader_leaves_to_ruamel(text: str) -> None:
    assert fast(text) == "fallback"
    check_same(text, string_keys=False, all_documents=True)


def test_the_fast_path_builds_no_node_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    # Composing yaml.nodes objects (a Python __init__ and two marks per scalar) and then
    # walking them cost ~a fifth of the parse: the data is built from the events.
    import yaml.nodes

    made: list[str] = []
    original = yaml.nodes.Node.__init__

    def counting(self: object, *args: object) -> None:
        made.append(type(self).__name__)
        original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(yaml.nodes.Node, "__init__", counting)
    monkeypatch.setattr(yaml.nodes.CollectionNode, "__init__", counting)
    monkeypatch.setattr(yaml.nodes.ScalarNode, "__init__", counting)
    data, _ = _yamlfast.parse("a: [1, {b: c}]\nd: e\n", string_keys=True, all_documents=False)
    assert data == {"a": [1, {"b": "c"}], "d": "e"}
    assert made == []


def test_kept_readings_are_the_readings() -> None:
    # Plain scalars' readings are kept across parses; a kept one must read as the first
    # time, and what falls back (an octal) must fall back every time, never be kept.
    for _ in range(2):
        data, _ = _yamlfast.parse(
            "a: [3, 30s, true, 2.0, ~, -1, 1e3]\n", string_keys=True, all_documents=False
        )
        assert data == {"a": [3, "30s", True, 2.0, None, -1, 1000.0]}
        assert [type(v) for v in data["a"]] == [int, str, bool, float, type(None), int, float]
        assert fast("a: 0o17\n") == "fallback"
    assert "0o17" not in _yamlfast._RESOLVED


def test_a_ruamel_comment_crash_is_a_located_error_not_a_traceback() -> None:
    # ruamel raises NotImplementedError("overlap in comment") on a comment after "a:"
    # above an indented value and a blank line; the anchor sends the text to ruamel.
    from gxo.config.yamlsafe import parse_yaml
    from gxo.errors import PlaybookSyntaxError

    with pytest.raises(PlaybookSyntaxError, match="YAML syntax error") as info:
        parse_yaml("a: # c\n  x\n\nb: &y 1\n", "f.yaml")
    assert str(info.value).startswith("f.yaml:1:1: ")  # file:line:col, no traceback
