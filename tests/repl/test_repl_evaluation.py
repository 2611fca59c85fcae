"""Evaluating expressions in the REPL core: native values, context, errors, secrets."""

from __future__ import annotations

import pytest


async def test_braced_expression_prints_native_value(repl) -> None:
    assert (await repl("{{ [1, 2, 3] | length }}")).strip() == "3"
    assert (await repl("{{ {'a': [1, true, none]} }}")).strip() == "{'a': [1, True, None]}"


async def test_bare_expression_and_string_template(repl) -> None:
    assert (await repl("n * 3")).strip() == "6"
    assert (await repl("greeting | upper")).strip() == "'HI 2'"
    # text around a template renders to a string, as in a playbook
    assert (await repl("n={{ n }}, e={{ extra }}")).strip() == "'n=2, e=7'"


async def test_multi_line_string_prints_as_text(repl) -> None:
    out = await repl("{% for i in range(3) %}line {{ i }}\n{% endfor %}")
    assert out == "line 0\nline 1\nline 2\n\n"


async def test_context_has_vars_overrides_and_gxo(repl) -> None:
    assert (await repl("extra")).strip() == "7"
    assert (await repl("_gxo.workloads.a.status")).strip() == "'Pending'"
    assert (await repl("_gxo.run_id")).strip() == repr(repl.session.run_id)
    assert (await repl("_gxo.tasks | list | length")).strip() == "7"


async def test_override_wins_over_playbook_var(harness, playbook_path) -> None:
    h = harness({"n": 10})
    h.session.load(playbook_path)
    assert (await h("n")).strip() == "10"
    # templated playbook vars see the override, like gxo run -e
    assert (await h("greeting")).strip() == "'hi 10'"


async def test_undefined_name_is_an_error_not_a_crash(repl) -> None:
    out = await repl("{{ nope + 1 }}")
    assert out.startswith("error: ")
    assert "undefined name 'nope'" in out
    assert (await repl("n")).strip() == "2"  # the session goes on


async def test_syntax_error_and_sandbox_are_reported(repl) -> None:
    assert "template syntax error" in await repl("{{ n + }}")
    assert "error:" in await repl("n.__class__.__mro__")


async def test_secret_is_redacted_everywhere(harness, monkeypatch) -> None:
    monkeypatch.setenv("REPL_TOKEN", "s3cr3t-value")
    h = harness()
    out = await h("secret('REPL_TOKEN')")
    assert "s3cr3t-value" not in out and "[REDACTED]" in out
    # derived strings lose the taint mark but are still redacted by value
    out = await h("'Bearer ' ~ secret('REPL_TOKEN')")
    assert out.strip() == "'Bearer [REDACTED]'"
    await h(":set token = secret('REPL_TOKEN')")
    assert "s3cr3t-value" not in await h(":vars")
    assert (await h("token | length")).strip() == "12"
    # an error message quoting the value is redacted too
    out = await h("{{ {}[secret('REPL_TOKEN')] }}")
    assert out.startswith("error:") and "s3cr3t-value" not in out and "[REDACTED]" in out
    out = await h(':module control:identity {auth: "{{ token }}"}')
    assert "s3cr3t-value" not in out and "[REDACTED]" in out


async def test_missing_secret_names_the_variable(harness) -> None:
    out = await (harness())("secret('GXO_REPL_UNSET_SECRET')")
    assert "secret 'GXO_REPL_UNSET_SECRET' is not set" in out


async def test_internal_error_is_printed_and_session_survives(repl, monkeypatch) -> None:
    def broken(text: str) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(repl.session, "evaluate", broken)
    out = await repl("n")
    assert out.strip() == "error: internal error: RuntimeError: boom"
    monkeypatch.undo()
    assert (await repl("n")).strip() == "2"


@pytest.mark.parametrize("text", ["", "   ", "\n"])
async def test_blank_input_prints_nothing(repl, text: str) -> None:
    assert await repl(text) == ""


async def test_values_derived_from_a_secret_are_redacted_in_the_repl(harness, monkeypatch) -> None:
    monkeypatch.setenv("REPL_TOKEN", "s3cr3t-value")
    h = harness()
    for expression, derived in [
        ("secret('REPL_TOKEN') | upper", "S3CR3T-VALUE"),
        ("secret('REPL_TOKEN') | b64encode", "czNjcjN0LXZhbHVl"),
        ("secret('REPL_TOKEN')[::-1]", "eulav-t3rc3s"),
        ("secret('REPL_TOKEN') | list", "'s', '3'"),
    ]:
        out = await h(expression)
        assert derived not in out and "[REDACTED]" in out, expression
    # once derived, the value is a secret for the rest of the session, wherever it appears
    out = await h("'S3CR3T-VALUE seen'")
    assert out.strip() == "'[REDACTED] seen'"
