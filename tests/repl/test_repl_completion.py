"""Completion candidates, from the live session and the module registry."""

from __future__ import annotations

import os

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from gxo.repl.commands import COMMANDS
from gxo.repl.completion import ReplCompleter


def complete(repl, text: str) -> dict[str, str]:
    """Candidates for ``text`` (cursor at the end): completed word → meta text."""
    completer = ReplCompleter(repl.session, COMMANDS)
    out = {}
    for c in completer.get_completions(
        Document(text, len(text)), CompleteEvent(completion_requested=True)
    ):
        # applying the completion must give a text that starts with what was typed minus the prefix
        assert -c.start_position <= len(text)
        out[text[: len(text) + c.start_position] + c.text] = c.display_meta_text
    return out


def test_command_names(repl) -> None:
    names = complete(repl, ":")
    assert {
        ":help",
        ":load",
        ":vars",
        ":state",
        ":modules",
        ":run",
        ":module",
        ":set",
        ":quit",
    } <= set(names)
    assert set(complete(repl, ":mo")) == {":module", ":modules"}
    assert "ad hoc" in complete(repl, ":mo")[":module"]
    assert set(complete(repl, ":help ru")) == {":help run"}


def test_module_names(repl) -> None:
    data = complete(repl, ":module data:")
    assert ":module data:generate_from_list" in data and ":module exec" not in data
    assert set(complete(repl, ":modules ex")) == {":modules exec"}
    assert "Run a local command" in complete(repl, ":modules ex")[":modules exec"]


def test_module_params_from_the_pydantic_model(repl) -> None:
    params = complete(repl, ":module exec {")
    assert {":module exec {command", ":module exec {args", ":module exec {cwd"} <= set(params)
    assert "(required)" in params[":module exec {command"]
    assert set(complete(repl, ":module exec {com")) == {":module exec {command"}
    # keys already given are not offered again
    after = complete(repl, ":module exec {command: ls, ")
    assert ":module exec {command: ls, args" in after
    assert not any(k.endswith("command") for k in after)
    # multi-line block YAML
    assert ":module exec \\\n  command: ls\n  sh" + "ell" in complete(
        repl, ":module exec \\\n  command: ls\n  sh"
    )
    # a value position offers nothing; an unknown module offers nothing
    assert complete(repl, ":module exec {command: l") == {}
    assert complete(repl, ":module nosuch {a") == {}


def test_expression_inside_module_params(repl) -> None:
    names = complete(repl, ":module exec {command: '{{ gre")
    assert set(names) == {":module exec {command: '{{ greeting"}


def test_workload_names_for_run(repl) -> None:
    names = complete(repl, ":run ")
    assert {
        ":run a",
        ":run b",
        ":run c",
        ":run s1",
        ":run s2",
        ":run flaky",
        ":run after_flaky",
    } == set(names)
    assert names[":run a"] == "control:identity — Pending"
    assert set(complete(repl, ":run s")) == {":run s1", ":run s2"}


async def test_variables_and_register_keys(repl) -> None:
    names = complete(repl, "")
    assert {"n", "greeting", "extra", "_gxo", "a_out", "b_out", "secret"} <= set(names)
    assert names["a_out"] == "register of a (not run yet)"
    assert names["n"] == "variable"
    await repl(":run a")
    assert complete(repl, "a_")["a_out"] == "registered"
    assert set(complete(repl, "{{ a_out.")) == {"{{ a_out.x"}


async def test_gxo_paths(repl) -> None:
    assert {"_gxo.workloads", "_gxo.run_id", "_gxo.workspace"} <= set(complete(repl, "_gxo."))
    workloads = complete(repl, "_gxo.workloads.")
    assert "_gxo.workloads.after_flaky" in workloads
    assert workloads["_gxo.workloads.a"] == "map (7 keys)"
    assert set(complete(repl, "_gxo.workloads.a.st")) == {"_gxo.workloads.a.status"}
    assert complete(repl, "_gxo.nothing.") == {}


def test_filters_and_tests(repl) -> None:
    assert "n | upper" in complete(repl, "n | up")
    assert "n is defined" in complete(repl, "n is def")
    assert "n is not number" in complete(repl, "n is not numb")


def test_set_completes_the_expression(repl) -> None:
    assert set(complete(repl, ":set x = gre")) == {":set x = greeting"}
    assert complete(repl, ":set gre") == {}


def test_nothing_right_after_a_value(repl) -> None:
    assert complete(repl, "(n)") == {}
    assert complete(repl, "'abc'") == {}


def test_load_completes_paths(repl, tmp_path) -> None:
    (tmp_path / "site.gxo.yaml").write_text("", encoding="utf-8")
    os.chdir(tmp_path)
    assert ":load site.gxo.yaml" in complete(repl, ":load si")


@pytest.mark.parametrize("text", [":vars ", ":quit ", ":nosuch x"])
def test_commands_without_arguments_offer_nothing(repl, text: str) -> None:
    assert complete(repl, text) == {}


async def test_completion_shows_no_secret(repl, monkeypatch) -> None:
    monkeypatch.setenv("REPL_COMPLETE_SECRET", "topsecretvalue")
    await repl(":set auth = {'token': 'Bearer ' ~ secret('REPL_COMPLETE_SECRET')}")
    metas = complete(repl, "auth.")
    assert "topsecretvalue" not in str(metas) and "[REDACTED]" in metas["auth.token"]
