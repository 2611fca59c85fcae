"""Loader and validation: every problem is one readable message with file:line:col and workload."""

from __future__ import annotations

import textwrap

import pytest

from gxo.config.loader import load_playbook
from gxo.errors import ConfigError, PlaybookSyntaxError, PlaybookValidationError


def load(text: str, **kwargs):
    return load_playbook(text=textwrap.dedent(text).lstrip(), name="pb.yaml", **kwargs)


def messages(text: str, **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(text, **kwargs)
    exc = info.value
    problems = getattr(exc, "problems", None) or [exc]
    return [str(p) for p in problems]


HEAD = 'schemaVersion: "1.0.0"\nname: t\nworkloads:\n'


def test_valid_playbook_loads_with_defaults() -> None:
    loaded = load(HEAD + "  - name: a\n    process: { module: exec, params: { command: ls } }\n")
    w = loaded.playbook.workloads[0]
    assert w.lifecycle.policy == "run_once"
    assert loaded.playbook.channel_policy.buffer_size == 100
    assert loaded.playbook.state_policy.access_mode == "deep_copy"
    assert loaded.location(("workloads", 0, "process")).line == 5


def test_v_prefixed_schema_version_is_accepted() -> None:
    loaded = load(
        'schemaVersion: "v1.0.0"\nname: t\nworkloads:\n  - name: a\n    process: { module: exec, params: { command: ls } }\n'
    )
    assert loaded.playbook.schema_version == "v1.0.0"


def test_yaml_syntax_error_has_line_and_column() -> None:
    with pytest.raises(PlaybookSyntaxError) as info:
        load(HEAD + "  - name: a\n    process: {module: exec\n")
    assert str(info.value).startswith("pb.yaml:6:1: YAML syntax error:")


def test_duplicate_yaml_keys_are_errors() -> None:
    with pytest.raises(PlaybookSyntaxError) as info:
        load(
            HEAD
            + "  - name: a\n    name: b\n    process: { module: exec, params: { command: ls } }\n"
        )
    assert "pb.yaml:5:5" in str(info.value)
    assert "duplicate key" in str(info.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "  - name: a\n    proces: { module: exec }\n",
            "pb.yaml:5:5: workload 'a': unknown key 'proces' (did you mean 'process'?)",
        ),
        (
            "  - name: a\n    process: { module: exec, params: { command: ls } }\n    timeout: 5 minutes\n",
            "pb.yaml:6:5: workload 'a': timeout: invalid duration '5 minutes': expected e.g. 500ms, 10s, 1m30s",
        ),
        (
            "  - name: a\n    when: []\n    process: { module: exec, params: { command: ls } }\n",
            "pb.yaml:5:5: workload 'a': when: expected a string or a boolean, got a list",
        ),
        (
            "  - name: 'bad name'\n    process: { module: exec, params: { command: ls } }\n",
            "pb.yaml:4:5: workload 'bad name': name: String should match pattern '^[A-Za-z0-9_-]+$'",
        ),
        ("  - name: a\n", "pb.yaml:4:5: workload 'a': missing required key 'process'"),
        (
            "  - name: a\n    lifecycle: { policy: scheduled }\n    process: { module: exec, params: { command: ls } }\n",
            "pb.yaml:5:5: workload 'a': lifecycle: lifecycle 'scheduled' needs a 'cron' expression",
        ),
        (
            "  - name: a\n    process: { module: exec, params: { command: ls } }\n    retry: { attempts: 2, dely: 1s }\n",
            "pb.yaml:6:27: workload 'a': unknown key 'dely' (did you mean 'delay'?)",
        ),
    ],
)
def test_shape_errors(body: str, expected: str) -> None:
    assert expected in messages(HEAD + body)


def test_top_level_errors() -> None:
    assert messages('schemaVersion: "2.0.0"\nname: t\nworkloads: []\n')[0] == (
        "pb.yaml:1:1: schemaVersion: unsupported schemaVersion '2.0.0': expected \"1.0.0\""
    )
    assert messages("- 1\n- 2\n")[0].startswith("pb.yaml:1:1: a playbook must be a mapping")
    assert messages("")[0] == "pb.yaml: playbook is empty"
    assert messages('schemaVersion: "1.0.0"\nname: t\nworkloads: []\nextra: 1\n')[0].startswith(
        "pb.yaml:3:1: workloads: List should have at least 1 item"
    )


def test_both_tasks_and_workloads_is_an_error() -> None:
    text = 'schemaVersion: "1.0.0"\nname: t\ntasks: []\nworkloads: []\n'
    assert "cannot have both 'tasks' (legacy) and 'workloads'" in messages(text)[0]


def test_all_problems_are_reported_in_line_order() -> None:
    found = messages(
        HEAD
        + "  - name: a\n    when: []\n    timeout: nope\n    process: { module: exec, params: { command: ls } }\n"
    )
    assert [m.split(": ")[0] for m in found] == ["pb.yaml:5:5", "pb.yaml:6:5"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "  - name: a\n    process: { module: exex, params: {} }\n",
            "pb.yaml:5:16: workload 'a': unknown module 'exex' (did you mean 'exec'?)",
        ),
        (
            "  - name: a\n    process: { module: exec, params: { command: ls, bogus: 1 } }\n",
            "pb.yaml:5:53: workload 'a': module 'exec' params: unknown key 'bogus' (allowed: args, check_mode, command, cwd, environment, inherit_environment, ok_exit_codes, shell, stdin)",
        ),
        (
            "  - name: a\n    process: { module: exec, params: { args: [x] } }\n",
            "pb.yaml:5:30: workload 'a': module 'exec' params: missing required key 'command'",
        ),
        (
            "  - name: a\n    process: { module: exec, params: { command: ls } }\n  - name: a\n    process: { module: exec, params: { command: ls } }\n",
            "pb.yaml:6:5: workload 'a': duplicate workload name 'a' (first defined as workload #1)",
        ),
        (
            "  - name: a\n    process: { module: exec, params: { command: ls } }\n    register: r\n  - name: b\n    process: { module: exec, params: { command: ls } }\n    register: r\n",
            "pb.yaml:9:5: workload 'b': register key 'r' is already used by workload 'a'",
        ),
        (
            "  - name: a\n    process: { module: exec, params: { command: 'echo {{ nope }}' } }\n",
            "pb.yaml:5:40: workload 'a': 'nope' is not defined: not a playbook var, register key, or -e override (in 'echo {{ nope }}')",
        ),
        (
            "  - name: a\n    process: { module: exec, params: { command: '{{ _gxo.workloads.ghost.status }}' } }\n",
            "pb.yaml:5:40: workload 'a': _gxo.workloads.ghost: unknown workload 'ghost'",
        ),
        (
            "  - name: a\n    process: { module: exec, params: { command: '{{ r.stdout }}' } }\n    register: r\n",
            "pb.yaml:5:40: workload 'a': workload reads its own register key 'r'",
        ),
        (
            "  - name: a\n    depends_on: [ghost]\n    process: { module: exec, params: { command: ls } }\n",
            "pb.yaml:5:18: workload 'a': depends_on names unknown workload 'ghost'",
        ),
        (
            "  - name: a\n    depends_on: [a]\n    process: { module: exec, params: { command: ls } }\n",
            "pb.yaml:5:18: workload 'a': depends_on names the workload itself",
        ),
        (
            "  - name: a\n    process: { module: exec, params: { command: '{{ x | }}' } }\n",
            "pb.yaml:5:40: workload 'a': template syntax error: expected token 'name', got 'end of print statement' in '{{ x | }}'",
        ),
        (
            "  - name: a\n    process: { module: exec, params: { command: ls } }\n  - name: b\n    stream_inputs: [a]\n    process: { module: passthrough }\n",
            "pb.yaml:7:21: workload 'b': stream input 'a' (module exec) does not produce a stream",
        ),
        (
            "  - name: a\n    process: { module: passthrough }\n",
            "pb.yaml:5:16: workload 'a': module 'passthrough' needs stream_inputs",
        ),
        (
            "  - name: a\n    loop_control: { parallel: 2 }\n    process: { module: exec, params: { command: ls } }\n",
            "pb.yaml:5:5: workload 'a': loop_control is set but there is no loop",
        ),
    ],
)
def test_semantic_errors(body: str, expected: str) -> None:
    assert expected in messages(HEAD + body)


def test_cycle_is_printed_as_a_path() -> None:
    found = messages(
        HEAD
        + "  - name: a\n    process: { module: control:identity, params: { x: '{{ c_out }}' } }\n    register: a_out\n"
        + "  - name: b\n    process: { module: control:identity, params: { x: '{{ a_out }}' } }\n    register: b_out\n"
        + "  - name: c\n    depends_on: [b]\n    process: { module: control:identity, params: {} }\n    register: c_out\n"
    )
    assert found == ["pb.yaml:4:5: workload 'a': dependency cycle: a -> b -> c -> a"]


def test_stream_pipeline_deadlock_is_rejected() -> None:
    found = messages(
        HEAD
        + "  - name: gen\n    process: { module: data:generate_from_list, params: { items: [1] } }\n    register: g\n"
        + "  - name: fwd\n    stream_inputs: [gen]\n    process: { module: passthrough }\n"
        + "  - name: sink\n    stream_inputs: [fwd]\n    when: '{{ g.records_generated > 0 }}'\n    process: { module: control:barrier }\n"
    )
    assert len(found) == 1
    assert (
        "workload 'sink' waits for 'gen' (state or depends_on) while both are in the same stream pipeline"
        in found[0]
    )


def test_stream_consumers_cannot_loop_or_retry() -> None:
    base = (
        HEAD
        + "  - name: gen\n    process: { module: data:generate_from_list, params: { items: [1] } }\n"
    )
    assert (
        "a workload with stream_inputs cannot loop"
        in messages(
            base
            + "  - name: c\n    stream_inputs: [gen]\n    loop: [1]\n    process: { module: passthrough }\n"
        )[0]
    )
    assert (
        "cannot retry: consumed records cannot be read again"
        in messages(
            base
            + "  - name: c\n    stream_inputs: [gen]\n    retry: { attempts: 2 }\n    process: { module: passthrough }\n"
        )[0]
    )


def test_non_run_once_lifecycle_is_refused_only_when_asked() -> None:
    text = (
        HEAD
        + "  - name: svc\n    lifecycle: { policy: supervise, restart_policy: always }\n    process: { module: exec, params: { command: ls } }\n"
    )
    load(text)  # gxo validate accepts it (the daemon can run it)
    found = messages(text, check_lifecycles=True)
    assert found[0].startswith(
        "pb.yaml:5:5: workload 'svc': lifecycle 'supervise' needs the long-running kernel"
    )
    assert "gxo daemon" in found[0]


def test_names_guarded_by_default_or_defined_are_optional() -> None:
    load(
        HEAD
        + "  - name: a\n    when: \"env | default('dev') == 'prod' or other is defined\"\n    process: { module: exec, params: { command: ls } }\n"
    )
    # ...but a name used unguarded anywhere is still required
    assert (
        "'env' is not defined"
        in messages(
            HEAD
            + "  - name: a\n    when: \"env | default('dev') == env\"\n    process: { module: exec, params: { command: ls } }\n"
        )[0]
    )


def test_extra_names_make_run_time_variables_known() -> None:
    text = (
        HEAD
        + "  - name: a\n    process: { module: exec, params: { command: 'echo {{ target }}' } }\n"
    )
    load(text, extra_names={"target"})


def test_template_valued_params_are_checked_after_rendering_not_before() -> None:
    # ok_exit_codes must be a list; a template is accepted at load time
    load(
        "schemaVersion: '1.0.0'\nname: t\nvars: { codes: [0] }\nworkloads:\n  - name: a\n    process: { module: exec, params: { command: ls, ok_exit_codes: '{{ codes }}' } }\n"
    )


def test_deprecated_module_alias_warns_with_location() -> None:
    loaded = load(
        HEAD
        + "  - name: g\n    process: { module: 'generate:from_list', params: { items: [1] } }\n"
    )
    assert loaded.warnings == [
        "pb.yaml:5:16: workload 'g': module name 'generate:from_list' is deprecated: use 'data:generate_from_list'"
    ]


def test_missing_and_unreadable_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="playbook not found"):
        load_playbook(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_playbook(tmp_path)
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(PlaybookSyntaxError, match="not UTF-8"):
        load_playbook(bad)


def test_alias_bomb_is_refused_quickly() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        bomb += (
            f"l{i}: &l{i} [" + ", ".join([f"*{'a' if i == 1 else 'l' + str(i - 1)}"] * 10) + "]\n"
        )
    with pytest.raises(PlaybookSyntaxError, match="document too large"):
        load(bomb)


def test_non_string_keys_are_rejected() -> None:
    with pytest.raises(PlaybookValidationError, match="mapping keys must be strings"):
        load('schemaVersion: "1.0.0"\nname: t\nvars: { 1: x }\nworkloads: []\n')


def test_loop_index_is_a_known_loop_name() -> None:
    load(
        HEAD
        + "  - name: a\n    loop: [x, y]\n    process: { module: control:identity, params: { i: '{{ loop_index }}' } }\n"
    )


def test_lenient_modules_may_reference_undefined_names_in_raw_params() -> None:
    load(
        HEAD
        + "  - name: t\n    process:\n      module: test:assert\n      params:\n"
        + "        assertions: [{ actual: '{{ never_defined }}', is_defined: false }]\n"
    )


def test_plain_text_in_module_rendered_templates_is_not_an_expression() -> None:
    base = (
        HEAD
        + "  - name: gen\n    process: { module: data:generate_from_list, params: { items: [1] } }\n"
    )
    load(
        base
        + "  - name: fmt\n    stream_inputs: [gen]\n    process: { module: data:format, params: { format: text, template: plain } }\n"
    )
    # ...while a bare condition is analysed as an expression
    assert (
        "'nope' is not defined"
        in messages(
            base
            + "  - name: f\n    stream_inputs: [gen]\n    process: { module: data:filter, params: { condition: nope > 1 } }\n"
        )[0]
    )
