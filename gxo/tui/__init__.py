"""``gxo ui``: the live Textual workbench.

This package is imported by the CLI only when ``gxo ui`` runs, and it imports
Textual only inside :func:`run_ui`, so importing it stays cheap. The kernel
never imports it; it watches a run through the public API and the event bus.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["NO_TERMINAL", "require_terminal", "run_ui"]

NO_TERMINAL = 2  # exit code of `gxo ui` without a terminal (a usage error)


def require_terminal(stdin: Any = None, stdout: Any = None) -> str | None:
    """None when stdin and stdout are a terminal, else the message to print: the UI
    would write escape codes into a pipe or a file and wait for keys nobody types."""
    import sys

    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    missing = [
        name
        for name, stream in (("stdin", stdin), ("stdout", stdout))
        if stream is None or not _isatty(stream)
    ]
    if not missing:
        return None
    return (
        f"gxo ui needs a terminal, but {' and '.join(missing)} "
        f"{'is' if len(missing) == 1 else 'are'} not one; "
        "use 'gxo run' in scripts and CI (same exit codes, plain output)"
    )


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed or not a file
        return False


def run_ui(
    playbook: Path | None,
    *,
    variables: dict[str, Any],
    report: Path | None = None,
    concurrency: int | None = None,
    workspace: str | None = None,
    watch: bool = False,
    keep_runs: int = 10,
    replay: str | None = None,
) -> int:
    """Run ``playbook`` in the terminal UI; returns the exit code (like ``gxo run``).

    ``watch``: run again whenever the playbook or a file it reads is saved.
    ``keep_runs``: finished runs kept under ``.gxo/runs/`` (0: none). ``replay``: a
    report file or run id to show instead of running (``playbook`` may then be None:
    the run directory names it).

    0 success, 1 a workload failed, 130 interrupted, 2 the playbook was invalid.
    """
    from gxo.tui.app import create_app, print_outcome

    problem = require_terminal()
    if problem is not None:
        from gxo.console import err_console, print_error

        print_error(err_console(), problem)
        return NO_TERMINAL
    shown = None
    if replay is not None:
        from gxo.tui.history import load_replay

        playbook, report_data, logs = load_replay(replay, playbook)
        shown = (report_data, logs)
    if playbook is None:
        from gxo.errors import UsageError

        raise UsageError("missing PLAYBOOK (or --replay RUN, or --attach [SOCKET])")
    app = create_app(
        playbook,
        variables=variables,
        report=report,
        concurrency=concurrency,
        workspace=workspace,
        watch=watch,
        keep_runs=keep_runs,
        replay=shown,
    )
    result = app.run()
    print_outcome(app)
    if result is None:  # Textual crashed (it printed the traceback) or exited without a code
        return app.return_code or 1
    return int(result)
