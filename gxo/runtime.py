"""Running a playbook headless: the body of ``gxo run``.

Signals: SIGINT/SIGTERM cancel the run cleanly (child processes are killed,
the report is still written) and the exit code is 130.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gxo.config.loader import load_playbook
from gxo.console import ProgressPrinter, err_console, print_summary, print_warnings
from gxo.engine.confine import Confinement, allowed_dirs, check_literal_paths
from gxo.engine.events import EventBus
from gxo.engine.report import write_report
from gxo.engine.scheduler import Engine, RunResult
from gxo.errors import UsageError
from gxo.template.limits import clear_interrupt, interrupt_renders

__all__ = ["freeze_loaded_objects", "run_headless", "run_with_signals"]


FREEZE_FROM = 500  # workloads; below this the collect costs more than it saves


def freeze_loaded_objects() -> None:
    """Move everything alive now (imports, the playbook, its graph) out of GC's reach.

    ``gxo run`` is one run per process: these objects live until exit, and the
    cyclic GC would otherwise re-traverse them on every collection during the
    run (measured: ~15 % of scheduler time on a 10,000-workload DAG). The
    ``gc.collect()`` first costs ~20 ms, so small playbooks skip all this.
    """
    gc.collect()
    gc.freeze()


async def run_with_signals(engine: Engine) -> RunResult:
    """Run ``engine``; SIGINT and SIGTERM cancel it instead of killing the process."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, engine.cancel)
            # A CPU-bound template blocks the loop, which then never runs engine.cancel:
            # this Python-level handler runs between bytecodes of the render and makes
            # it fail; the loop still learns of the signal through its wakeup fd.
            signal.signal(sig, interrupt_renders)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass
    try:
        return await engine.run()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        clear_interrupt()


def signal_broker(loaded: Any, payload_file: Path | None, console: Any) -> Any:
    """Who answers ``control:wait_for_signal`` under ``gxo run``: the payload file, else
    the terminal when there is one, else nobody (the workload fails, naming the ways out)."""
    waiting = {
        w.name
        for w in loaded.playbook.workloads
        if getattr(w.process, "module", None) == "control:wait_for_signal"
    }
    if payload_file is not None:
        from gxo.engine.signals import NoAnswer, PayloadFileBroker, load_payload_file

        try:
            payload = load_payload_file(payload_file)
        except NoAnswer as exc:
            raise UsageError(str(exc)) from None
        return PayloadFileBroker(payload, source=str(payload_file), waiting=waiting)
    if waiting and sys.stdin.isatty() and console.is_terminal:
        from gxo.console_prompt import TerminalBroker

        return TerminalBroker(console)
    return None


def open_run_state(url: str, key_file: str | None, key_cmd: str | None = None) -> Any:
    """``gxo run --state``: the encrypted store where the playbook's registered results
    persist between runs (the same store and keys as the daemon's; docs/state.md)."""
    from gxo.state._sql_crypto import open_encrypted_state
    from gxo.state._sql_schema import StateError

    try:
        return open_encrypted_state(url, key_file, key_cmd)
    except StateError as exc:
        raise UsageError(f"--state: {exc}") from None


def run_headless(
    playbook: Path,
    *,
    variables: dict[str, Any],
    report: Path | None = None,
    concurrency: int | None = None,
    workspace: str | None = None,
    confine: bool = False,
    allow_paths: Sequence[str] = (),
    verbose: bool = False,
    quiet: bool = False,
    resume_payload_file: Path | None = None,
    state: str | None = None,
    state_key_file: str | None = None,
    state_key_cmd: str | None = None,
) -> int:
    console = err_console()
    persisted = open_run_state(state, state_key_file, state_key_cmd) if state else None
    names = set(variables)
    if persisted is not None:  # results of earlier runs are names templates may read
        from gxo.state._sql_results import stored_keys

        names |= stored_keys(persisted)
    try:
        loaded = load_playbook(playbook, check_lifecycles=True, extra_names=names)
    except BaseException:
        if persisted is not None:
            persisted.close()
        raise
    print_warnings(console, loaded.warnings)
    run_workspace: str | Confinement | None = workspace
    if confine:  # literal paths outside are refused before anything runs (exit 2)
        run_workspace = Confinement(workspace, allowed_dirs(allow_paths))
        check_literal_paths(loaded, run_workspace.resolver())
    bus = EventBus()
    bus.add_listener(ProgressPrinter(console, verbose=verbose, quiet=quiet, loaded=loaded))
    engine = Engine(
        loaded,
        extra_vars=variables,
        concurrency=concurrency,
        workspace=run_workspace,
        bus=bus,
        signals=signal_broker(loaded, resume_payload_file, console),
        store=persisted.results(loaded.playbook.name) if persisted else None,
    )
    if len(loaded.playbook.workloads) >= FREEZE_FROM:
        freeze_loaded_objects()
    try:
        result = asyncio.run(run_with_signals(engine))
    finally:
        if persisted is not None:
            persisted.close()
    print_warnings(console, [w for w in result.warnings if w not in loaded.warnings])
    # The summary first: a report that cannot be written after all (disk full) is
    # an error of its own, and must not hide how the run went.
    print_summary(console, result, verbose=verbose)
    if report is not None:
        write_report(result, report)
    return result.exit_code
