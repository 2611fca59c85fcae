"""``gxo run``'s stderr without rich (issue 19: start-up): where stderr is not a
terminal, :class:`gxo.console.PlainConsole` prints exactly what rich's console prints,
and hands rich every line it could not render the same way."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from rich.console import Console
from rich.markup import escape as rich_escape

from gxo.console import PlainConsole, err_console, escape, plain_text

TEXTS = [
    "plain",
    "",
    "a [b] c",
    "[x]",
    "back\\slash\\",
    "\\[bold]not a tag",
    "\\\\[bold]two backslashes",
    "line one\nline two\n",
    "trailing space ",
    "emoji :thumbs_up: code",
    "a:b:c",
    "one: colon",
    "tab\there",
    "bell\x07 cr\r ff\x0c",
    "[/]",
    "[@click]x[/]",
    "ünïcødé ✔ ↷",
    "[red]already markup[/red]",
    "open \\[ brace",
    "url http://x/y?q=[a]&b",
]

MARKUP = [
    "[bold red]error:[/] {t}",
    "[yellow]warning:[/] {t}",
    "[green]✔ {t}[/] [dim]Completed[/] [dim]3ms[/]",
    "[red]✘ w[/] [dim]Failed[/]\n    [red]{t}[/]",
    "[bold green]Completed[/] {t} [dim](run abc: 1 completed in 1ms)[/]",
    "{t}",
]


def rich_output(markup: str) -> str:
    out = io.StringIO()
    Console(file=out, highlight=False, soft_wrap=True, force_terminal=False).print(markup)
    return out.getvalue()


@pytest.mark.parametrize("text", TEXTS)
def test_escape_is_richs(text: str) -> None:
    assert escape(text) == rich_escape(text)


@pytest.mark.parametrize("template", MARKUP)
@pytest.mark.parametrize("text", TEXTS)
def test_plain_console_prints_what_rich_prints(
    template: str, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for markup in (template.format(t=escape(text)), template.format(t=text)):
        try:
            expected = rich_output(markup)
        except Exception as exc:  # rich refuses some raw markup: so must the plain console
            expected = type(exc)
        err = io.StringIO()
        monkeypatch.setattr(sys, "stderr", err)
        try:
            PlainConsole().print(markup)
            got: object = err.getvalue()
        except Exception as exc:
            got = type(exc)
        assert got == expected, markup


def test_lines_rich_would_change_go_to_rich() -> None:
    assert plain_text("[bold]ok[/] fine") == "ok fine"
    assert plain_text("a :thumbs_up: b") is None  # emoji code
    assert plain_text("a\tb") is None  # tab expanded by column
    assert plain_text("[/]") is None  # rich: nothing to close
    assert plain_text("[b]x[/c]") is None  # explicit closes: rich decides


def test_err_console_is_plain_only_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert isinstance(err_console(), PlainConsole)
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert isinstance(err_console(), Console)
    monkeypatch.delenv("FORCE_COLOR")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    assert isinstance(err_console(), Console)


def test_gxo_run_off_a_terminal_imports_no_rich(tmp_path) -> None:
    playbook = tmp_path / "one.gxo.yaml"
    playbook.write_text(
        'schemaVersion: "1.0.0"\nname: one\nworkloads:\n'
        "  - { name: only, process: { module: control:identity, params: { ok: true } } }\n"
    )
    code = (
        "import sys\n"
        "from gxo.cli import main\n"
        f"sys.argv = ['gxo', 'run', {str(playbook)!r}]\n"
        "try:\n    main()\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))\n"
    )
    env = {
        k: v
        for k, v in __import__("os").environ.items()
        if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.stdout.split("\n")[0] == "0 []", done.stdout + done.stderr
    assert "✔ only Completed" in done.stderr
    assert "Completed one (run " in done.stderr
