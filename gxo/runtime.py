"""Running a playbook headless: the body of ``gxo run``.

Signals: SIGINT/SIGTERM cancel the run cleanly (child processes are killed,
the report is still written) and the exit code is 130.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from gxo.config.loader import load_playbook
from gxo.console import ProgressPrinter, err_console, print_summary, print_warnings
from gxo.engine.events import EventBus
from gxo.engine.report import write_report
from gxo.engine.scheduler import Engine, RunResult

__all__ = ["run_headless", "run_with_signals"]


async def run_with_signals(engine: Engine) -> RunResult:
    """Run ``engine``; SIGINT and SIGTERM cancel it instead of killing the process."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, engine.cancel)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass
    try:
        return await engine.run()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def run_headless(
    playbook: Path,
    *,
    variables: dict[str, Any],
    report: Path | None = None,
    concurrency: int | None = None,
    workspace: str | None = None,
    verbose: bool = False,
    quiet: bool = False,
) -> int:
    console = err_console()
    loaded = load_playbook(playbook, check_lifecycles=True, extra_names=set(variables))
    print_warnings(console, loaded.warnings)
    bus = EventBus()
    bus.add_listener(ProgressPrinter(console, verbose=verbose, quiet=quiet))
    engine = Engine(loaded, extra_vars=variables, concurrency=concurrency, workspace=workspace, bus=bus)
    result = asyncio.run(run_with_signals(engine))
    print_warnings(console, [w for w in result.warnings if w not in loaded.warnings])
    if report is not None:
        write_report(result, report)
    print_summary(console, result, verbose=verbose)
    return result.exit_code
