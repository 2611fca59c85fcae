"""Param keys holding ``[`` or ``.`` (``a[ctual``): located errors, never a ValueError.

Found by ``test_fuzz_loader.py::test_mutated_real_playbooks`` (seed 101): the
template paths went through a dotted string (``assertions[4].a[ctual``) that
was split back with ``int(...)`` on whatever followed a bracket.
"""

from __future__ import annotations

import textwrap

import pytest

from gxo.config.loader import load_playbook
from gxo.engine.dag import _split
from gxo.engine.locate import failure_location
from gxo.errors import ConfigError

ODD_KEYS = textwrap.dedent(
    """\
    schemaVersion: "1.0.0"
    name: odd
    workloads:
      - name: a
        process:
          module: control:identity
          params:
            ok: 1
            "a[ctual": "{{ missing_one }}"
            "x.y[0]": ["{{ missing_two }}"]
            "[3]": "{{ missing_three }}"
    """
)


def test_bracket_and_dot_keys_give_located_errors() -> None:
    with pytest.raises(ConfigError) as info:
        load_playbook(text=ODD_KEYS, name="pb.yaml")
    problems = [str(p) for p in info.value.problems]
    # Each error at its own key (line:col), not at the workload or a neighbour.
    assert any(p.startswith("pb.yaml:9:9:") and "'missing_one'" in p for p in problems), problems
    assert any(p.startswith("pb.yaml:10:20:") and "'missing_two'" in p for p in problems), problems
    assert any(p.startswith("pb.yaml:11:9:") and "'missing_three'" in p for p in problems), problems


def test_bracket_key_in_a_valid_playbook_still_infers_dependencies() -> None:
    text = textwrap.dedent(
        """\
        schemaVersion: "1.0.0"
        name: odd
        workloads:
          - name: first
            process: { module: control:identity, params: { n: 1 } }
            register: out
          - name: second
            process:
              module: control:identity
              params: { "a[ctual": "{{ out.n }}", "b.c": "{{ out.n }}" }
        """
    )
    loaded = load_playbook(text=text, name="pb.yaml")
    assert loaded.graph is not None
    assert loaded.graph.state_deps["second"] == {"first"}
    paths = [ref.path for ref in loaded.graph.refs["second"]]
    assert paths == [("process", "params", "a[ctual"), ("process", "params", "b.c")]


@pytest.mark.parametrize(
    ("dotted", "parts"),
    [
        ("assertions[4].a[ctual", ["assertions", 4, "a[ctual"]),
        ("args[0]", ["args", 0]),
        ("m[1][2].k", ["m", 1, 2, "k"]),
        ("a[x]", ["a[x]"]),
        ("a[", ["a["]),
        ("a[²]", ["a[²]"]),  # a unicode digit is no index (int() would raise)
    ],
)
def test_split_never_raises(dotted: str, parts: list[object]) -> None:
    assert _split(dotted) == parts


def test_runtime_failure_in_a_bracket_key_is_located() -> None:
    text = ODD_KEYS.replace("{{ missing_one }}", "x").replace("{{ missing_two }}", "y")
    text = text.replace("{{ missing_three }}", "z")
    loaded = load_playbook(text=text, name="pb.yaml")
    where = failure_location(loaded, "a", "param 'a[ctual': undefined name 'nope'")
    assert (where.line, where.column) == (9, 9)


def test_template_paths_are_exact_tuples_in_document_order() -> None:
    from gxo.template.engine import iter_template_strings
    from gxo.template.references import iter_template_paths

    value = {
        "a.b": "{{ x }}",
        "plain": "no template",
        "list": ["{% if y %}1{% endif %}", 3, {"k[0]": "{# c #}", "n": None}],
        "deep": {"l": [["{{ z }}"]]},
    }
    assert iter_template_paths(value, ("process", "params")) == [
        (("process", "params", "a.b"), "{{ x }}"),
        (("process", "params", "list", 0), "{% if y %}1{% endif %}"),
        (("process", "params", "list", 2, "k[0]"), "{# c #}"),
        (("process", "params", "deep", "l", 0, 0), "{{ z }}"),
    ]
    # Same strings, same order as the dotted form (whose paths are ambiguous).
    assert [s for _, s in iter_template_paths(value)] == [
        s for _, s in iter_template_strings(value)
    ]
    assert iter_template_paths("{{ top }}") == [((), "{{ top }}")]
