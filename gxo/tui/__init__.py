"""``gxo ui``: the live Textual workbench.

This package is imported by the CLI only when ``gxo ui`` runs, and it imports
Textual only inside :func:`run_ui`, so importing it stays cheap. The kernel
never imports it; it watches a run through the public API and the event bus.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["run_ui"]


def run_ui(
    playbook: Path,
    *,
    variables: dict[str, Any],
    report: Path | None = None,
    concurrency: int | None = None,
    workspace: str | None = None,
) -> int:
    """Run ``playbook`` in the terminal UI; returns the exit code (like ``gxo run``).

    0 success, 1 a workload failed, 130 interrupted, 2 the playbook was invalid.
    """
    from gxo.tui.app import create_app, print_outcome

    app = create_app(
        playbook, variables=variables, report=report, concurrency=concurrency, workspace=workspace
    )
    result = app.run()
    print_outcome(app)
    if result is None:  # Textual crashed (it printed the traceback) or exited without a code
        return app.return_code or 1
    return int(result)
