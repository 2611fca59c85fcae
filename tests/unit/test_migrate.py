"""``gxo migrate`` (file rewrite) and the in-memory legacy shim agree, keep comments and style."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gxo.config.legacy import migrate_data, rewrite_go_template
from gxo.config.loader import load_playbook, parse_yaml
from gxo.config.migrate import guess_indent, migrate_file, migrate_text
from gxo.errors import ConfigError, PlaybookSyntaxError, PlaybookValidationError

ROOT = Path(__file__).resolve().parents[2]
LEGACY = ROOT / "tests" / "playbooks" / "legacy"
LOADABLE = sorted(LEGACY.glob("*.gxo.yaml"))
ALL_FIXTURES = sorted(LEGACY.glob("*.yaml"))
MODERN = [ROOT / "examples" / "quickstart.gxo.yaml"]
COMMENT = re.compile(r"(?:^|\s)(#.*)$")


def comments(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        m = COMMENT.search(line)
        if m and "'" not in line[: m.start(1)] and '"' not in line[: m.start(1)]:
            found.append(m.group(1))
    return found


def test_there_are_enough_fixtures() -> None:
    assert len(LOADABLE) >= 3
    modules = " ".join(p.read_text() for p in ALL_FIXTURES)
    for legacy_name in ("type: exec", "type: generate:from_list", "type: stream:join", "{{ eq .a"):
        assert legacy_name in modules


@pytest.mark.parametrize("path", LOADABLE, ids=lambda p: p.name)
def test_migrated_fixture_loads_and_validates(path: Path) -> None:
    text, warnings = migrate_file(path)
    loaded = load_playbook(text=text, name="migrated.yaml")
    assert not loaded.legacy
    assert loaded.warnings == []  # no deprecated module names left
    assert loaded.playbook.schema_version == "1.0.0"
    assert all(w.lifecycle.policy.value == "run_once" for w in loaded.playbook.workloads)
    assert not re.search(r"^(tasks|\s*-?\s*type):", text, re.MULTILINE)
    for w in warnings:
        assert re.match(rf"{re.escape(str(path))}:\d+: ", w), w


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.name)
def test_file_migration_and_shim_agree(path: Path) -> None:
    text, warnings = migrate_file(path)
    data, positions = parse_yaml(path.read_text(), str(path))
    shim_data, _, shim_warnings = migrate_data(data, positions, str(path))
    assert parse_yaml(text, "x")[0] == shim_data
    assert warnings == shim_warnings


@pytest.mark.parametrize("path", LOADABLE, ids=lambda p: p.name)
def test_shim_warnings_are_the_migrate_warnings_after_one_deprecation(path: Path) -> None:
    loaded = load_playbook(path)
    assert loaded.legacy
    deprecation, *rest = loaded.warnings
    assert "deprecated 'tasks' format" in deprecation and f"gxo migrate -f {path}" in deprecation
    assert rest == migrate_file(path)[1]
    assert sum("gxo migrate" in w for w in loaded.warnings) == 1


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.name)
def test_comments_survive(path: Path) -> None:
    original = path.read_text()
    text, _ = migrate_file(path)
    dropped = {"# always true in the Go engine"}  # the comment of retry.on_error, which is dropped
    assert [c for c in comments(original) if c not in dropped] == comments(text)


@pytest.mark.parametrize("path", [*ALL_FIXTURES, *MODERN], ids=lambda p: p.name)
def test_migration_is_idempotent(path: Path, tmp_path: Path) -> None:
    once, _ = migrate_file(path)
    target = tmp_path / "once.yaml"
    target.write_text(once)
    twice, warnings = migrate_file(target)
    assert twice == once
    assert warnings == []


@pytest.mark.parametrize("path", MODERN, ids=lambda p: p.name)
def test_modern_file_is_returned_byte_for_byte(path: Path) -> None:
    assert migrate_file(path) == (path.read_text(encoding="utf-8"), [])


def test_nightly_report_shape_quoting_and_warnings() -> None:
    path = LEGACY / "nightly_report.gxo.yaml"
    text, warnings = migrate_file(path)
    p = str(path)
    assert warnings == [
        f"{p}:13: 'task_policy' is not supported in 1.0.0 and was dropped",
        f"{p}:15: buffer_size 0 (unbuffered) is not supported in 1.0.0; using 1",
        f"{p}:16: overflow_strategy 'error' is not supported in 1.0.0; using 'block'",
        f"{p}:26: retry.on_error is implied in 1.0.0 and was dropped",
        f"{p}:37: 'policy_ref' is not supported in 1.0.0 and was dropped",
    ]
    lines = text.splitlines()
    assert lines[:4] == [
        "# Nightly host report, written for the Go engine (GXO v0.1.2a).",
        "# Kept in the old `tasks:` format on purpose: it is a fixture for `gxo migrate`.",
        'schemaVersion: "1.0.0"    # the Go engine accepted any semver here',
        "name: nightly-report",
    ]
    assert "  greeting: 'hello'            # single quotes must survive" in lines
    assert '  recipients: [ops, "on-call"] # flow list with mixed quoting' in lines
    assert "workloads: # everything below runs once" in lines
    # type/params moved under process, one level deeper, with their comments
    start = lines.index("  - name: whoami")
    assert lines[start : start + 8] == [
        "  - name: whoami",
        "    lifecycle: {policy: run_once}",
        "    process:",
        "      module: exec        # the module that runs a command",
        "      params:",
        "        command: uname",
        "        args: [-s]        # flow list kept",  # end-of-line comments shift with their line
        "    register: result",
    ]
    assert "    retry: {attempts: 2, delay: 10ms}" in lines
    assert "          - '{{ _gxo.tasks.whoami.status }}'" in lines  # single quotes kept
    assert '          - "{{ greeting }} from {{ result.stdout }}"' in lines
    # literal block scalars keep their style; Go templates inside are rewritten
    assert '            echo "{{ banner }} for {{ recipients[0] }}"' in lines
    # a flow-style task stays on one line
    assert lines[-1] == (
        "  - {name: final_check, lifecycle: {policy: run_once}, process: {module: control:assert, "
        "params: {condition: \"{{ echoed.stdout != '' }}\"}}}"
    )


def test_key_order_is_the_users() -> None:
    text, _ = migrate_file(LEGACY / "nightly_report.gxo.yaml")
    data, _ = parse_yaml(text, "x")
    assert list(data) == ["schemaVersion", "name", "vars", "channel_policy", "workloads"]
    assert list(data["workloads"][1]) == ["name", "register", "lifecycle", "process"]
    assert list(data["workloads"][2]) == ["name", "lifecycle", "process", "register", "timeout"]
    looped, _ = parse_yaml(migrate_file(LEGACY / "looped_checks.gxo.yaml")[0], "x")
    assert list(looped["workloads"][0]) == [
        "name", "loop", "loop_control", "lifecycle", "process", "register", "ignore_errors",
    ]  # fmt: skip
    assert list(looped["workloads"][2]) == ["name", "lifecycle", "process"]  # generated name first


def test_indentation_style_is_kept_and_old_module_names_are_replaced() -> None:
    text, warnings = migrate_file(LEGACY / "user_orders.gxo.yaml")
    assert "\n- name: users              # old generator name\n" in text  # sequence offset 0 kept
    assert "module: data:generate_from_list" in text and "module: data:join" in text
    assert "generate:from_list" not in text and "stream:join" not in text
    # the blank line that followed the dropped 'policy' block still separates the tasks
    assert "  register: join_stats\n\n- name: sink\n" in text
    assert warnings == [
        f"{LEGACY / 'user_orders.gxo.yaml'}:38: task 'policy' (skip_on_no_input) is not supported in 1.0.0 and was dropped"
    ]


def test_explicit_document_start_is_kept() -> None:
    text, _ = migrate_file(LEGACY / "looped_checks.gxo.yaml")
    assert text.startswith("---\n# Loops, conditions and retries in the legacy format.\n")


def test_unconvertible_expressions_are_kept_and_reported_with_their_line() -> None:
    path = LEGACY / "needs_manual_fix.yaml"
    text, warnings = migrate_file(path)
    assert warnings == [
        f'{path}:13: Go template {{{{ eq .a "b" }}}} cannot be converted mechanically; rewrite it in Jinja2',
        f"{path}:14: Go template {{{{ len .items }}}} cannot be converted mechanically; rewrite it in Jinja2",
    ]
    assert "same: '{{ eq .a \"b\" }}'" in text and 'count: "{{ len .items }}"' in text
    assert 'plain: "{{ a }}"' in text
    # Kept as written, the expression still needs the human: loading names the same expression.
    with pytest.raises(PlaybookValidationError) as info:
        load_playbook(text=text, name="m.yaml")
    assert '{{ eq .a "b" }}' in str(info.value) and str(info.value).startswith("m.yaml:15:")
    fixed = text.replace('eq .a "b"', 'a == "b"').replace("len .items", "items | length")
    assert load_playbook(text=fixed, name="m.yaml").playbook.workloads[0].process.params == {
        "same": '{{ a == "b" }}',
        "count": "{{ items | length }}",
        "plain": "{{ a }}",
    }


def test_anchors_and_aliases_survive(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text(
        'schemaVersion: "1.0.0"\nname: anchors\nvars: {greeting: hi}\ntasks:\n'
        '  - name: a\n    type: control:identity\n    params: &common\n      msg: "{{ .greeting }}"\n'
        "  - name: b\n    type: control:identity\n    params: *common\n"
    )
    text, warnings = migrate_file(path)
    assert warnings == []
    assert '      params: &common\n        msg: "{{ greeting }}"\n' in text
    assert "      params: *common\n" in text
    loaded = load_playbook(text=text)
    assert [w.process.params for w in loaded.playbook.workloads] == [{"msg": "{{ greeting }}"}] * 2


def test_comments_of_dropped_keys_are_not_lost(tmp_path: Path) -> None:
    text, warnings = migrate_text(
        "schemaVersion: v1.0.0\nname: t\n\n# stream settings\ntask_policy: {skip_on_no_input: true}\n"
        "tasks:\n  - name: a\n    type: exec\n    params: {command: 'true'}\n    policy_ref: x  # gone\n"
        "    # about b\n\n  - name: b\n    type: exec\n    params: {command: 'true'}\n",
        "pb.yaml",
    )
    assert "# stream settings\nworkloads:\n" in text
    assert "# gone" not in text and "policy_ref" not in text
    assert "    # about b\n\n  - name: b\n" in text
    assert warnings == [
        "pb.yaml:5: 'task_policy' is not supported in 1.0.0 and was dropped",
        "pb.yaml:10: 'policy_ref' is not supported in 1.0.0 and was dropped",
    ]


def test_missing_schema_version_is_added() -> None:
    text, _ = migrate_text(
        "name: t\ntasks:\n  - {name: a, type: exec, params: {command: 'true'}}\n"
    )
    assert text.startswith('schemaVersion: "1.0.0"\nname: t\n')
    assert load_playbook(text=text).playbook.schema_version == "1.0.0"


# -- errors ---------------------------------------------------------------------------


def test_both_tasks_and_workloads_is_an_error_with_a_line() -> None:
    text = 'schemaVersion: "1.0.0"\nname: t\nworkloads: []\ntasks: []\n'
    with pytest.raises(ConfigError) as info:
        migrate_text(text, "both.yaml")
    assert isinstance(info.value, PlaybookValidationError)
    assert info.value.exit_code == 2
    assert str(info.value) == (
        "both.yaml:4:1: a playbook cannot have both 'tasks' (legacy) and 'workloads': use only 'workloads'"
    )


def test_invalid_yaml_uses_the_loader_syntax_error_format() -> None:
    with pytest.raises(PlaybookSyntaxError) as info:
        migrate_text("name: t\ntasks:\n  - name: [a\n", "bad.yaml")
    assert re.match(r"bad\.yaml:\d+:\d+: YAML syntax error: ", str(info.value)), str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"playbook not found: .*nope\.yaml"):
        migrate_file(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        migrate_file(tmp_path)


def test_non_utf8_and_non_mapping_and_empty_files(tmp_path: Path) -> None:
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(PlaybookSyntaxError, match="not UTF-8"):
        migrate_file(binary)
    with pytest.raises(
        PlaybookValidationError, match=r"^l\.yaml:1:1: a playbook must be a mapping"
    ):
        migrate_text("- a\n- b\n", "l.yaml")
    with pytest.raises(PlaybookValidationError, match="playbook is empty"):
        migrate_text("# nothing\n", "e.yaml")


def test_a_file_neither_legacy_nor_modern_is_left_alone() -> None:
    assert migrate_text("name: t\nvars: {a: '{{ .x }}'}\n") == (
        "name: t\nvars: {a: '{{ .x }}'}\n",
        [],
    )


# -- Go template rewriting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("go", "jinja"),
    [
        ("{{ .x }}", "{{ x }}"),
        ("{{ .x.y }}", "{{ x.y }}"),
        ("{{ .items.0.id }}", "{{ items[0].id }}"),
        ("{{- .x -}}", "{{- x -}}"),
        ('{{ .a == "b" }}', '{{ a == "b" }}'),
        ("{{ ._gxo.tasks.x.status }}", "{{ _gxo.tasks.x.status }}"),
        ("a {{ .x }} b {{ .y.z }}", "a {{ x }} b {{ y.z }}"),
        ("{{ x.y }} already Jinja", "{{ x.y }} already Jinja"),
        ("{{ 'a.b' | upper }}", "{{ 'a.b' | upper }}"),
        ("no template .x", "no template .x"),
    ],
)
def test_mechanical_go_templates_are_rewritten(go: str, jinja: str) -> None:
    assert rewrite_go_template(go) == (jinja, [])


@pytest.mark.parametrize(
    "go",
    ['{{ eq .a "b" }}', "{{ . }}", "{{ len .items }}", "{{ if .x }}", "{{ end }}", "{{ range .items }}",
     "{{ .x | printf \"%d\" }}", "{{/* a comment */}}", "{{ $v := .x }}", "{{ .x | nosuchfilter }}"],
)  # fmt: skip
def test_other_go_templates_are_kept_and_reported(go: str) -> None:
    assert rewrite_go_template(f"a {go} b") == (f"a {go} b", [go])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a:\n  b: 1\nl:\n  - x\n", (2, 4, 2)),
        ("a:\n    b: 1\nl:\n- x\n", (4, 2, 0)),
        ("a: 1\ntasks:   # c\n- name: x\n  type: exec\n", (2, 2, 0)),
        ("vars:\n  l:\n    - 1\ntasks:\n- name: x\n", (2, 2, 0)),  # the tasks list wins
        ("a: 1\n", (2, 4, 2)),
    ],
)
def test_guess_indent(text: str, expected: tuple[int, int, int]) -> None:
    assert guess_indent(text) == expected
