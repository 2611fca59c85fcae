"""The REPL's :commands, driven through the core (no terminal)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gxo.repl.commands import COMMANDS


async def test_help_lists_every_command(repl) -> None:
    out = await repl(":help")
    for name in ("help", "load", "vars", "state", "modules", "run", "module", "set", "quit"):
        assert f":{name}" in out
    assert "Esc+Enter" in out
    out = await repl(":help run")
    assert ":run WORKLOAD" in out and "missing" in out
    assert "no command ':nope'" in await repl(":help nope")


async def test_unknown_command_suggests_the_closest(repl) -> None:
    assert "unknown command ':lod' (did you mean ':load'?)" in await repl(":lod x")


async def test_quit_and_aliases_end_the_session(harness) -> None:
    h = harness()
    for word in ("quit", "q", "exit"):
        assert await h.repl.handle(f":{word}") is False
    assert COMMANDS["q"] is COMMANDS["quit"]


# -- :load ------------------------------------------------------------------------------


async def test_load_reports_workloads(harness, playbook_path: Path) -> None:
    h = harness()
    out = await h(f":load {playbook_path}")
    assert "loaded demo from" in out and "7 workloads (a, b, c, s1, s2, flaky, after_flaky)" in out


async def test_load_bad_yaml_names_file_and_line(harness, repl, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gxo.yaml"
    bad.write_text(
        'schemaVersion: "1.0.0"\nname: x\nworkloads:\n  - name: [unclosed\n', encoding="utf-8"
    )
    out = await repl(f":load {bad}")
    assert out.startswith("error: ") and f"{bad}:" in out and "YAML syntax error" in out
    # the previous playbook stays loaded
    assert repl.session.loaded.playbook.name == "demo"
    assert (await repl("n")).strip() == "2"


async def test_load_invalid_playbook_names_line_and_workload(repl, tmp_path: Path) -> None:
    bad = tmp_path / "invalid.gxo.yaml"
    bad.write_text(
        'schemaVersion: "1.0.0"\nname: x\nworkloads:\n  - name: w\n    process: { module: exec, params: { comand: ls } }\n',
        encoding="utf-8",
    )
    out = await repl(f":load {bad}")
    assert f"{bad}:5:" in out and "workload 'w'" in out and "unknown key 'comand'" in out


async def test_load_missing_file_and_usage(repl) -> None:
    assert "playbook not found: nowhere.yaml" in await repl(":load nowhere.yaml")
    assert "usage: :load FILE" in await repl(":load")


async def test_load_clears_results_but_keeps_overrides(repl, playbook_path: Path) -> None:
    repl.answers = [True]
    await repl(":run b")
    await repl(":set mine = 1")
    assert "a_out" in repl.session.store
    await repl(f":load {playbook_path}")
    assert repl.session.store.keys() == []
    assert (await repl("mine + extra")).strip() == "8"


async def test_load_keeps_a_var_that_fails_to_render(harness, tmp_path: Path) -> None:
    path = tmp_path / "secretvar.gxo.yaml"
    path.write_text(
        'schemaVersion: "1.0.0"\nname: s\nvars: { token: "{{ secret(\'GXO_REPL_NOT_SET\') }}" }\n'
        "workloads:\n  - { name: w, process: { module: control:identity } }\n",
        encoding="utf-8",
    )
    h = harness()
    out = await h(f":load {path}")
    assert "warning: var 'token' could not be rendered" in out and "loaded s" in out


# -- :vars, :state, :set ----------------------------------------------------------------


async def test_vars_shows_sources(repl) -> None:
    out = await repl(":vars")
    assert "greeting" in out and "'hi 2'" in out and "playbook" in out
    assert "extra" in out and "-e / :set" in out


async def test_vars_and_state_when_empty(harness) -> None:
    h = harness()
    assert "no variables" in await h(":vars")
    assert "no registered results yet" in await h(":state")


async def test_set_evaluates_and_stores(repl) -> None:
    out = await repl(":set total = n + extra")
    assert out == "total =\n9\n"
    assert (await repl("total * 2")).strip() == "18"
    await repl(":set items = [1,\n  2, 3]")
    assert (await repl("items | sum")).strip() == "6"


async def test_set_errors(repl) -> None:
    assert "usage: :set NAME = EXPRESSION" in await repl(":set x")
    assert "invalid variable name '1x'" in await repl(":set 1x = 2")
    assert "'_gxo' is reserved" in await repl(":set _gxo = 2")
    assert "undefined name 'missing'" in await repl(":set x = missing")
    assert "x" not in repl.session.overrides


async def test_set_warns_when_a_register_key_shadows(repl) -> None:
    assert "'a_out' is also a register key" in await repl(":set a_out = 1")


async def test_state_shows_results_and_statuses(repl) -> None:
    repl.answers = [True]
    await repl(":run b")
    out = await repl(":state")
    assert "{'a_out': {'x': 4}, 'b_out': {'y': 5}}" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "Completed" in lines["a"] and "Completed" in lines["b"] and "Pending" in lines["c"]
    assert "a, b" in lines["c"]  # what c needs


# -- :modules ---------------------------------------------------------------------------


async def test_modules_list_and_detail(repl) -> None:
    out = await repl(":modules")
    assert "control:identity" in out and "exec" in out and "system" in out
    out = await repl(":modules exec")
    assert "command" in out and "ok_exit_codes" in out and "Example" in out
    assert "unknown module 'exce' (did you mean exec?)" in await repl(":modules exce")


# -- :module ----------------------------------------------------------------------------


async def test_module_runs_with_session_context(repl) -> None:
    out = await repl(":module control:identity {a: '{{ n * extra }}', b: [1, 2]}")
    assert "{'a': 14, 'b': [1, 2]}" in out and "✔ control:identity Completed" in out


async def test_module_json_params_and_multi_line_yaml(repl) -> None:
    assert "{'k': 'v'}" in await repl(':module control:identity {"k": "v"}')
    out = await repl(":module control:identity \\\n  first: 1\n  second: '{{ greeting }}'")
    assert "{'first': 1, 'second': 'hi 2'}" in out


async def test_module_shows_logs_and_records(repl) -> None:
    out = await repl(":module exec {command: echo, args: [hello]}")
    assert "stdout | hello" in out and "'exit_code': 0" in out
    out = await repl(":module data:generate_from_list {items: '{{ range(25) | list }}'}")
    assert "records (25)" in out and "{'item': 19}" in out and "{'item': 20}" not in out
    assert "… and 5 more" in out and "'records_generated': 25" in out


async def test_module_failure_is_printed(repl) -> None:
    out = await repl(":module exec {command: sh, args: [-c, 'echo oops >&2; exit 3']}")
    assert "stderr | oops" in out
    assert "error: exec Failed:" in out and "3" in out
    assert (await repl("n")).strip() == "2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (":module", "usage: :module NAME"),
        (":module nosuch {}", "unknown module 'nosuch'"),
        (":module control:assert {conditoin: x}", "unknown param 'conditoin'"),
        (":module exec {}", "missing required param 'command'"),
        (":module exec {command: [unclosed", "<params>:1:"),
        (":module exec [1, 2]", "params must be a mapping"),
        (":module control:identity {x: '{{ nope }}'}", "undefined name 'nope'"),
    ],
)
async def test_module_errors(repl, text: str, message: str) -> None:
    out = await repl(text)
    assert "error:" in out and message in out


async def test_module_old_name_warns(repl) -> None:
    out = await repl(":module generate:from_list {items: [1]}")
    assert "deprecated: use 'data:generate_from_list'" in out and "records (1)" in out
