"""``gxo repl``: evaluate templates, inspect state, run workloads and modules.

A front end: it uses the kernel only through its public classes, and the kernel
never imports it. prompt_toolkit is imported when the REPL starts, not here.

    session.py     the state (playbook, variables, registered results, secrets)
    core.py        one input → printed output (tests drive it directly)
    commands.py    the :commands and their table
    completion.py  the prompt_toolkit completer
    lexer.py       pygments highlighting of Jinja / YAML input
    multiline.py   when Enter submits and when it continues
    app.py         the PromptSession loop
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["run_repl"]


def run_repl(
    playbook: Path | None, *, variables: dict[str, Any], history: Path | None = None
) -> int:
    """Run the interactive REPL until Ctrl-D or ``:quit``; returns the exit code."""
    from gxo.repl.app import run_repl as run

    return run(playbook, variables=variables, history=history)
