"""Validation reports every problem of a file in one pass, and each check on its own."""

from __future__ import annotations

import textwrap

import pytest

from gxo.config.loader import load_playbook
from gxo.config.validate import CHECKS
from gxo.errors import ConfigError


def messages(text: str, **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_playbook(text=textwrap.dedent(text).lstrip(), name="pb.yaml", **kwargs)
    problems = getattr(info.value, "problems", None) or [info.value]
    return [str(p) for p in problems]


FOUR_PROBLEMS = """\
    schemaVersion: "1.0.0"
    name: four
    vars: { greeting: hi }
    workloads:
      - name: A
        bogus_key: 1
        process: { module: exec, params: { command: echo } }
      - name: B
        process: { module: exec, params: { command: echo, colour: red } }
      - name: C
        timeout: 10 parsecs
        process: { module: exec, params: { command: echo } }
      - name: D
        register: d_out
        process: { module: exec, params: { command: "echo {{ ghost }}" } }
      - name: E
        depends_on: [A, C]
        process: { module: exec, params: { command: "echo {{ d_out.stdout }} {{ greeting }}" } }
    """


def test_schema_param_duration_and_reference_problems_in_one_pass() -> None:
    found = messages(FOUR_PROBLEMS)
    assert [m.split(": ", 1)[0] for m in found] == [
        "pb.yaml:6:5",
        "pb.yaml:9:55",
        "pb.yaml:11:5",
        "pb.yaml:15:40",
    ]
    assert "workload 'A': unknown key 'bogus_key'" in found[0]
    assert "workload 'B': module 'exec' params: unknown key 'colour'" in found[1]
    assert "workload 'C': timeout: invalid duration '10 parsecs'" in found[2]
    assert "workload 'D': 'ghost' is not defined" in found[3]
    # E's references to the workloads the schema rejected (A, C) are not "unknown".
    assert not any("'E'" in m for m in found)


def test_rejected_workloads_keep_their_register_keys_known() -> None:
    found = messages(
        """\
        schemaVersion: "1.0.0"
        name: t
        workloads:
          - name: a
            register: r
            retry: { attempts: 0 }
            process: { module: exec, params: { command: ls } }
          - name: b
            process: { module: exec, params: { command: "echo {{ r.stdout }}", bogus: 1 } }
        """
    )
    assert len(found) == 2
    assert "retry.attempts" in found[0]
    assert "unknown key 'bogus'" in found[1]


def test_a_bad_top_level_key_does_not_hide_workload_problems() -> None:
    found = messages(
        """\
        schemaVersion: "1.0.0"
        name: t
        channel_policy: { buffer_size: 0 }
        workloads:
          - name: a
            process: { module: exex }
        """
    )
    assert len(found) == 2
    assert "buffer_size" in found[0]
    assert "unknown module 'exex' (did you mean 'exec'?)" in found[1]


def test_every_bad_template_is_reported_not_only_the_first() -> None:
    found = messages(
        """\
        schemaVersion: "1.0.0"
        name: t
        vars: { v: "{{ 1 | bogus_filter }}" }
        workloads:
          - name: a
            process: { module: exec, params: { command: "{{ x | }}" } }
          - name: b
            when: "1 is frobbed"
            process: { module: exec, params: { command: "echo {{ nope }}" } }
        """
    )
    assert [m.split(": ", 1)[0] for m in found] == [
        "pb.yaml:3:9",
        "pb.yaml:6:40",
        "pb.yaml:8:5",
        "pb.yaml:9:40",
    ]
    assert "unknown filter 'bogus_filter'" in found[0]
    assert "template syntax error" in found[1]
    assert "workload 'b': unknown test 'frobbed'" in found[2]
    assert "'nope' is not defined" in found[3]


@pytest.mark.parametrize(
    ("place", "template", "expected"),
    [
        ("params", "'{{ 1 | uppr }}'", "unknown filter 'uppr' (did you mean 'upper'?)"),
        ("params", "'{{ [1] | lenght }}'", "unknown filter 'lenght' (did you mean 'length'?)"),
        ("when", "'x is evn'", "unknown test 'evn' (did you mean 'even'?)"),
        ("when", "'x is frobbed'", "unknown test 'frobbed'"),
        ("loop", "'{{ [1] | sortd }}'", "unknown filter 'sortd' (did you mean 'sort'?)"),
        # jinja itself accepts an unknown filter inside an {% if %} until it runs
        ("params", "'{% if x %}{{ x | uppr }}{% endif %}'", "unknown filter 'uppr'"),
    ],
)
def test_unknown_filter_or_test_is_a_load_error_with_location(
    place: str, template: str, expected: str
) -> None:
    line = {
        "params": f"    process: {{ module: exec, params: {{ command: {template} }} }}\n",
        "when": f"    when: {template}\n    process: {{ module: exec, params: {{ command: ls }} }}\n",
        "loop": f"    loop: {template}\n    process: {{ module: exec, params: {{ command: ls }} }}\n",
    }[place]
    text = 'schemaVersion: "1.0.0"\nname: t\nvars: { x: 1 }\nworkloads:\n  - name: w\n' + line
    found = messages(text)
    assert len(found) == 1
    assert found[0].startswith("pb.yaml:6:")
    assert f"workload 'w': {expected}" in found[0]


def test_templated_sql_query_is_a_warning_naming_the_line() -> None:
    loaded = load_playbook(
        text=textwrap.dedent(
            """\
            schemaVersion: "1.0.0"
            name: t
            vars: { who: ada }
            workloads:
              - name: safe
                process:
                  module: database:query
                  params: { url: "sqlite:///x.db", query: "SELECT :n", params: { n: "{{ who }}" } }
              - name: spliced
                process:
                  module: database:query
                  params:
                    url: "sqlite:///x.db"
                    query: "SELECT * FROM t WHERE name = '{{ who }}'"
            """
        ),
        name="pb.yaml",
    )
    assert len(loaded.warnings) == 1
    assert loaded.warnings[0].startswith("pb.yaml:14:")
    assert "workload 'spliced'" in loaded.warnings[0]
    assert "'params'" in loaded.warnings[0]


def test_checks_are_named_functions_in_a_fixed_order() -> None:
    names = [c.__name__ for c in CHECKS]
    assert names[0] == "check_names"
    assert names.index("check_modules") < names.index("check_links")
    assert names.index("check_templates") < names.index("check_references")
    assert names.index("check_references") < names.index("check_cycles_and_pipelines")
