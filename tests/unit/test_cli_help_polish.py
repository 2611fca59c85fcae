"""Command-line polish (issue 18): flags, option suggestions, module reference, docs pages."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from typer.testing import CliRunner

from gxo.cli import app

WIDE = {"COLUMNS": "120", "TERM": "dumb", "NO_COLOR": "1"}


def test_help_shows_no_bool_beside_flags() -> None:
    result = CliRunner().invoke(app, ["run", "--help"], env=WIDE)
    assert result.exit_code == 0
    assert "<bool>" not in result.output
    verbose = next(line for line in result.output.splitlines() if "--verbose" in line)
    assert re.search(r"--verbose\s+-v\s+Show each", verbose), verbose
    assert "<path>" in result.output  # options with a value still show its type


@pytest.mark.parametrize(
    ("typed", "suggested"),
    [("--bogus", None), ("--verbos", "--verbose"), ("--quite", "--quiet")],
)
def test_unknown_option_suggests_only_a_close_one(typed: str, suggested: str | None) -> None:
    result = CliRunner().invoke(app, ["run", typed, "x.gxo.yaml"], env=WIDE)
    assert result.exit_code == 2
    assert f"No such option: {typed}" in result.output
    if suggested is None:
        assert "Possible options" not in result.output
    else:
        assert f"(Possible options: {suggested})" in result.output


def _module_text(name: str, width: int) -> str:
    from gxo.modules.reference import print_module

    out = io.StringIO()
    print_module(name, console=Console(file=out, width=width, color_system=None))
    return out.getvalue()


def test_module_reference_renders_rst_literals_and_whole_names() -> None:
    text = _module_text("exec", 80)
    assert "``" not in text
    assert "unless cwd says otherwise" in text
    assert "inherit_environment" in text  # the longest name, whole at 80 columns
    assert not re.search(r"inherit_envi\S*…", text)


def test_rst_inline_escapes_markup() -> None:
    from gxo.modules.reference import rst_inline

    assert rst_inline("use ``[x]`` and [b]") == r"use [bold]\[x][/] and \[b]"


def test_docs_pages_escape_html_outside_code() -> None:
    from gxo.modules.docs import _md, generate

    assert _md("dead_letters/<workload>.jsonl & ``a<b>`` `c<d>`") == (
        "dead_letters/&lt;workload&gt;.jsonl &amp; `a<b>` `c<d>`"
    )
    data = generate()["data.md"]
    assert "dead_letters/&lt;workload&gt;.jsonl" in data
    assert "dead_letters/<workload>" not in data
    assert "Fail the workload unless `condition` is truthy." in generate()["system.md"]
