"""Playbook imports (gxo/config/imports.py): composition, renaming, scoping, errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gxo.config.imports import rename_template
from gxo.config.loader import load_playbook
from gxo.errors import PlaybookValidationError

PLAYBOOKS = Path(__file__).resolve().parent.parent / "playbooks" / "imports"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(PlaybookValidationError) as info:
        load_playbook(path)
    problems = getattr(info.value, "problems", None) or [info.value]
    return "\n".join(str(p) for p in problems)


def test_shipped_example_composes_names_registers_vars_and_paths() -> None:
    loaded = load_playbook(PLAYBOOKS / "site.gxo.yaml")
    pb = loaded.playbook
    assert [w.name for w in pb.workloads] == ["report", "db_read", "db_rows"]
    read, rows = pb.workload("db_read"), pb.workload("db_rows")
    assert read.register_key == "db_content" and rows.register_key == "db_rows"
    assert rows.depends_on == ["db_read"]
    # Templates read the prefixed names; _gxo.workloads follows the workload's new name.
    assert rows.when == (
        "db_content.content | length > 0 and _gxo.workloads.db_read.status == 'Completed'"
    )
    assert rows.process.params["args"] == ["{{ db_label }}", "{{ db_content.content | trim }}"]
    # Paths stay relative to the imported file; exec runs in its directory.
    assert read.process.params["path"] == "lib/data.txt"
    assert rows.process.params["cwd"] == "lib"
    # The imported vars are scoped: prefixed, the import's own vars replacing them.
    assert pb.vars == {
        "greeting": "hello",
        "db_table": "users_{{ greeting }}",
        "db_label": "t={{ db_table }}",
    }
    edges = set(loaded.graph.edges())
    assert ("db_read", "db_rows", "state") in edges and ("db_rows", "report", "state") in edges
    # Positions of imported workloads point into the imported file.
    assert str(loaded.workload_location("db_rows", "when")).endswith(
        "imports/lib/common.gxo.yaml:15:5"
    )
    assert str(loaded.workload_location("report")).endswith("imports/site.gxo.yaml:11:5")


def test_two_imports_of_one_file_with_different_prefixes_and_stream_inputs(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "lib.gxo.yaml",
        """
        schemaVersion: "1.0.0"
        name: lib
        vars: {n: 2}
        workloads:
          - name: gen
            process: {module: data:generate_from_list, params: {items: "{{ range(n) | list }}"}}
          - name: sink
            stream_inputs: [gen]
            process: {module: passthrough}
            register: out
          - name: after
            process:
              module: exec
              params:
                command: echo
                args: ["{{ out | default('x') }}", "{{ _gxo.workloads['sink'].status }}"]
        """,
    )
    main = write(
        tmp_path / "main.gxo.yaml",
        """
        schemaVersion: "1.0.0"
        name: main
        vars: {n: 7}
        imports:
          - {path: lib.gxo.yaml, prefix: a_}
          - {path: lib.gxo.yaml, prefix: b_, vars: {n: "{{ n + 1 }}"}}
        workloads:
          - name: use
            process: {module: exec, params: {command: echo, args: ["{{ a_out }}", "{{ b_out }}"]}}
        """,
    )
    loaded = load_playbook(main)
    pb = loaded.playbook
    assert pb.workload("a_sink").stream_inputs == ["a_gen"]
    assert pb.workload("b_sink").stream_inputs == ["b_gen"]
    assert pb.workload("b_gen").process.params["items"] == "{{ range(b_n) | list }}"
    assert pb.workload("b_after").process.params["args"] == [
        "{{ b_out | default('x') }}",
        "{{ _gxo.workloads['b_sink'].status }}",
    ]
    # b's import var is the importer's template, reading the importer's own n.
    assert pb.vars == {"n": 7, "a_n": 2, "b_n": "{{ n + 1 }}"}
    assert ("a_gen", "a_sink", "stream") in loaded.graph.edges()


def test_nested_imports_compound_prefixes_and_relative_paths(tmp_path: Path) -> None:
    write(
        tmp_path / "a" / "b" / "leaf.gxo.yaml",
        """
        schemaVersion: "1.0.0"
        name: leaf
        vars: {file: leaf.txt}
        workloads:
          - name: w
            process: {module: filesystem:read, params: {path: "{{ file }}"}}
            register: r
          - name: x
            process: {module: filesystem:write, params: {path: "out/{{ file }}", content: "{{ r.content }}"}}
        """,
    )
    write(
        tmp_path / "a" / "mid.gxo.yaml",
        """
        imports: [{path: b/leaf.gxo.yaml, prefix: leaf_, vars: {file: "{{ fname }}"}}]
        vars: {fname: mid.txt}
        workloads:
          - name: m
            depends_on: [leaf_w]
            process: {module: filesystem:stat, params: {path: /tmp}}
        """,
    )
    main = write(
        tmp_path / "main.gxo.yaml",
        """
        schemaVersion: "1.0.0"
        name: main
        imports: [{path: a/mid.gxo.yaml, prefix: mid_}]
        """,
    )
    pb = load_playbook(main).playbook
    assert [w.name for w in pb.workloads] == ["mid_m", "mid_leaf_w", "mid_leaf_x"]
    assert pb.workload("mid_m").depends_on == ["mid_leaf_w"]
    # leaf's var is set by mid's import, whose value reads mid's own var (renamed by mid_).
    assert pb.vars == {"mid_fname": "mid.txt", "mid_leaf_file": "{{ mid_fname }}"}
    # A literal path is left to the template (it starts with an expression) ...
    assert pb.workload("mid_leaf_w").process.params["path"] == "{{ mid_leaf_file }}"
    # ... text before the expression is rebased onto the two directories.
    assert pb.workload("mid_leaf_x").process.params["path"] == "a/b/out/{{ mid_leaf_file }}"
    assert pb.workload("mid_leaf_x").process.params["content"] == "{{ mid_leaf_r.content }}"
    assert pb.workload("mid_m").process.params["path"] == "/tmp"  # absolute: kept


def test_without_prefix_names_are_kept_and_a_clash_names_both_files(tmp_path: Path) -> None:
    write(
        tmp_path / "lib" / "common.gxo.yaml",
        """
        workloads:
          - name: build
            process: {module: exec, params: {command: "true"}}
        """,
    )
    main = write(
        tmp_path / "main.gxo.yaml",
        """
        schemaVersion: "1.0.0"
        name: main
        imports: [lib/common.gxo.yaml]
        workloads:
          - name: build
            process: {module: exec, params: {command: "true"}}
        """,
    )
    message = load_error(main)
    assert "workload name 'build' is defined twice" in message
    assert f"{main}:5:5" in message and "lib/common.gxo.yaml:2:5" in message


def test_register_and_var_clashes_without_prefix(tmp_path: Path) -> None:
    write(
        tmp_path / "lib.gxo.yaml",
        """
        vars: {region: eu}
        workloads:
          - name: lib_w
            register: result
            process: {module: exec, params: {command: "true"}}
        """,
    )
    main = write(
        tmp_path / "main.gxo.yaml",
        """
        schemaVersion: "1.0.0"
        name: main
        imports: [{path: lib.gxo.yaml}]
        workloads:
          - name: w
            register: result
            process: {module: exec, params: {command: "true"}}
        """,
    )
    message = load_error(main)
    assert "register key 'result' is defined twice" in message and "lib.gxo.yaml:4:5" in message
    main.write_text(
        main.read_text().replace("register: result", "register: other") + "vars: {region: us}\n"
    )
    message = load_error(main)
    assert "var 'region' is defined twice" in message and "lib.gxo.yaml:1:8" in message
    # The prefix scopes the var: no clash, two vars.
    main.write_text(
        main.read_text().replace("{path: lib.gxo.yaml}", "{path: lib.gxo.yaml, prefix: l_}")
    )
    assert load_playbook(main).playbook.vars == {"region": "us", "l_region": "eu"}


def test_import_cycle_names_both_files(tmp_path: Path) -> None:
    a = write(
        tmp_path / "a.gxo.yaml",
        """
        schemaVersion: "1.0.0"
        name: a
        imports: [{path: b.gxo.yaml, prefix: b_}]
        workloads:
          - {name: a1, process: {module: exec, params: {command: "true"}}}
        """,
    )
    write(
        tmp_path / "b.gxo.yaml",
        """
        imports:
          - {path: a.gxo.yaml, prefix: a_}
        workloads:
          - {name: b1, process: {module: exec, params: {command: "true"}}}
        """,
    )
    message = load_error(a)
    assert "import cycle" in message
    assert str(tmp_path / "b.gxo.yaml") + ":2:5" in message and str(a) in message


def test_self_import_is_a_cycle(tmp_path: Path) -> None:
    a = write(
        tmp_path / "a.gxo.yaml",
        """
        schemaVersion: "1.0.0"
        name: a
        imports: [a.gxo.yaml]
        workloads:
          - {name: a1, process: {module: exec, params: {command: "true"}}}
        """,
    )
    assert "import cycle" in load_error(a)


def test_errors_inside_an_imported_file_point_into_it(tmp_path: Path) -> None:
    lib = write(
        tmp_path / "lib" / "bad.gxo.yaml",
        """
        workloads:
          - name: ok
            process: {module: exec, params: {command: "true"}}
          - name: typo
            process: {module: exce, params: {command: "true"}}
          - name: bad_param
            process: {module: filesystem:read, params: {path: 3, nope: 1}}
          - name: bad_ref
            process: {module: exec, params: {command: "{{ missing_name }}"}}
        """,
    )
    main = write(
        tmp_path / "main.gxo.yaml",
        """
        schemaVersion: "1.0.0"
        name: main
        imports: [{path: lib/bad.gxo.yaml, prefix: x_}]
        workloads:
          - {name: w, process: {module: exec, params: {command: "true"}}, retry: {attempts: 0}}
        """,
    )
    message = load_error(main)
    shown = str(lib)
    assert f"{shown}:5:15: workload 'x_typo': unknown module 'exce'" in message
    assert f"{shown}:7:" in message and "x_bad_param" in message
    assert f"{shown}:9:" in message and "'missing_name' is not defined" in message
    assert f"{main}:5:" in message  # the importer's own problem, in its own file


def test_yaml_error_in_imported_file(tmp_path: Path) -> None:
    lib = write(tmp_path / "lib.gxo.yaml", "workloads: [\n  {name: a\n")
    main = write(
        tmp_path / "main.gxo.yaml",
        'schemaVersion: "1.0.0"\nname: m\nimports: [lib.gxo.yaml]\n',
    )
    with pytest.raises(Exception) as info:
        load_playbook(main)
    assert str(lib) in str(info.value) and "Traceback" not in str(info.value)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{path: nope.gxo.yaml}", "imported playbook not found"),
        ("{path: lib.gxo.yaml, pefix: x_}", "unknown key 'pefix' (allowed: path, vars, prefix)"),
        ("{path: lib.gxo.yaml, prefix: 'x-'}", "prefix 'x-' must match"),
        ("{path: lib.gxo.yaml, vars: [1]}", "'vars' must be a mapping"),
        ("{path: lib.gxo.yaml, vars: {'a-b': 1}}", "variable name 'a-b' must match"),
        ("{path: ''}", "'path' must be a non-empty string"),
        ("42", "expected a mapping with 'path'"),
        ("{path: .}", "directory"),
    ],
)
def test_bad_import_entries(tmp_path: Path, entry: str, expected: str) -> None:
    write(tmp_path / "lib.gxo.yaml", "workloads: []\n")
    main = write(
        tmp_path / "main.gxo.yaml",
        f'schemaVersion: "1.0.0"\nname: m\nimports:\n  - {entry}\n',
    )
    message = load_error(main)
    assert expected in message and f"{main}:4:" in message


def test_imports_must_be_a_list(tmp_path: Path) -> None:
    main = write(tmp_path / "main.gxo.yaml", 'schemaVersion: "1.0.0"\nname: m\nimports: lib\n')
    assert "imports: expected a list" in load_error(main)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n", "must be a playbook mapping with 'workloads'"),
        ("tasks: []\n", "legacy 'tasks' format"),
        ("workloads: []\nhosts: all\n", "unknown key 'hosts' in imported file"),
        ("name: x\n", "needs a 'workloads' list"),
        ("workloads: []\nvars: [1]\n", "'vars' must be a mapping"),
    ],
)
def test_bad_imported_files(tmp_path: Path, text: str, expected: str) -> None:
    lib = write(tmp_path / "lib.gxo.yaml", text)
    main = write(
        tmp_path / "main.gxo.yaml",
        'schemaVersion: "1.0.0"\nname: m\nimports: [lib.gxo.yaml]\n'
        "workloads: [{name: w, process: {module: exec, params: {command: 'true'}}}]\n",
    )
    message = load_error(main)
    assert expected in message and str(lib) in message


def test_text_playbook_imports_relative_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        tmp_path / "lib.gxo.yaml",
        "workloads: [{name: w, process: {module: exec, params: {command: 'true'}}}]\n",
    )
    monkeypatch.chdir(tmp_path)
    loaded = load_playbook(
        text='schemaVersion: "1.0.0"\nname: m\nimports: [{path: lib.gxo.yaml, prefix: p_}]\n'
    )
    assert [w.name for w in loaded.playbook.workloads] == ["p_w"]


def test_playbooks_without_imports_are_left_alone(tmp_path: Path) -> None:
    main = write(
        tmp_path / "main.gxo.yaml",
        'schemaVersion: "1.0.0"\nname: m\n'
        "workloads: [{name: w, tags: [db, deploy], process: {module: exec, params: {command: 'true'}}}]\n",
    )
    loaded = load_playbook(main)
    assert loaded.playbook.imports == [] and loaded.playbook.workloads[0].tags == ["db", "deploy"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ a }}", "{{ p_a }}"),
        ("{{ a.a }}", "{{ p_a.a }}"),  # the attribute is not a context name
        (
            "x {{ a | a }} {{ b is a }} {{ b is not a }}",
            "x {{ p_a | a }} {{ b is a }} {{ b is not a }}",
        ),
        ("{{ f(a=a) }}", "{{ f(a=p_a) }}"),  # a keyword argument keeps its name
        ("{% for i in a %}{{ i }}{% endfor %}", "{% for i in p_a %}{{ i }}{% endfor %}"),
        ("{{ _gxo.workloads.w.status }}", "{{ _gxo.workloads.p_w.status }}"),
        ('{{ _gxo.tasks["w"] }}', '{{ _gxo.tasks["p_w"] }}'),
        ("{{ _gxo.workloads.other }}", "{{ _gxo.workloads.other }}"),
        ("{{ 'a' ~ a }}", "{{ 'a' ~ p_a }}"),  # a string is not a name
        ("no template a", "no template a"),
        ("{{ a ' }}", "{{ a ' }}"),  # a syntax error is left for validation to report
    ],
)
def test_rename_template(source: str, expected: str) -> None:
    assert rename_template(source, {"a": "p_a"}, {"w": "p_w"}) == expected


def test_rename_bare_condition() -> None:
    assert rename_template("a > 1 and b", {"a": "p_a"}, {}, bare=True) == "p_a > 1 and b"
    assert rename_template("{{ a }}", {"a": "p_a"}, {}, bare=True) == "{{ p_a }}"
    assert rename_template("nothing here", {"a": "p_a"}, {}, bare=True) == "nothing here"


def test_text_named_by_an_absolute_path_imports_relative_to_it(tmp_path: Path) -> None:
    """The daemon's apply: the client's file text, named by its absolute path."""
    write(
        tmp_path / "lib.gxo.yaml",
        "workloads: [{name: w, process: {module: exec, params: {command: 'true'}}}]\n",
    )
    main = tmp_path / "main.gxo.yaml"
    loaded = load_playbook(
        text='schemaVersion: "1.0.0"\nname: m\nimports: [{path: lib.gxo.yaml, prefix: p_}]\n',
        name=str(main),
    )
    assert [w.name for w in loaded.playbook.workloads] == ["p_w"]
    assert str(loaded.workload_location("p_w")) == f"{tmp_path / 'lib.gxo.yaml'}:1:13"


def test_nested_path_params_bare_module_conditions_and_urls(tmp_path: Path) -> None:
    write(
        tmp_path / "lib" / "etl.gxo.yaml",
        """
        vars: {limit: 3}
        workloads:
          - name: gen
            process: {module: data:generate_from_list, params: {items: [1, 2]}}
          - name: keep
            stream_inputs: [gen]
            process:
              module: data:filter
              params:
                condition: record.value < limit
                on_error: dead_letter
                dead_letter: {path: bad.jsonl}
          - name: sh
            process: {module: exec, params: {command: ls, cwd: sub}}
          - name: db
            process: {module: database:query, params: {url: "sqlite:///x.db", query: "select 1"}}
        """,
    )
    main = write(
        tmp_path / "main.gxo.yaml",
        """
        schemaVersion: "1.0.0"
        name: main
        imports: [{path: lib/etl.gxo.yaml, prefix: e_}]
        """,
    )
    pb = load_playbook(main).playbook
    keep = pb.workload("e_keep").process.params
    assert keep["condition"] == "record.value < e_limit"
    assert keep["dead_letter"] == {"path": "lib/bad.jsonl"}
    assert pb.workload("e_sh").process.params["cwd"] == "lib/sub"
    assert pb.workload("e_db").process.params["url"] == "sqlite:///x.db"


def test_repl_sees_the_composed_playbook_and_playbook_info() -> None:
    from gxo.repl.session import ReplSession

    session = ReplSession()
    session.load(PLAYBOOKS / "site.gxo.yaml")
    assert session.workload_names == ["report", "db_read", "db_rows"]
    assert session.evaluate("_gxo.playbook.name") == "site"
    assert session.evaluate("_gxo.playbook_dir") == str(PLAYBOOKS)
    assert session.evaluate("db_label") == "t=users_hello"


def test_a_loop_variable_is_not_renamed(tmp_path: Path) -> None:
    write(
        tmp_path / "lib.gxo.yaml",
        """
        vars: {item: shadowed, host: h0, hosts: [a, b]}
        workloads:
          - name: ping
            loop: "{{ hosts }}"
            loop_control: {loop_var: host}
            process: {module: exec, params: {command: echo, args: ["{{ host }}", "{{ item }}"]}}
        """,
    )
    main = write(
        tmp_path / "main.gxo.yaml",
        'schemaVersion: "1.0.0"\nname: m\nimports: [{path: lib.gxo.yaml, prefix: l_}]\n',
    )
    ping = load_playbook(main).playbook.workload("l_ping")
    assert ping.loop == "{{ l_hosts }}"
    assert ping.process.params["args"] == ["{{ host }}", "{{ l_item }}"]
