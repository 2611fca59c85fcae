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
from gxo.engine.context import Status
from gxo.engine.events import EventBus, EventKind
from gxo.engine.report import write_report
from gxo.engine.scheduler import Engine, RunResult
from gxo.errors import UsageError
from gxo.template.limits import clear_interrupt, interrupt_renders

__all__ = ["freeze_loaded_objects", "run_headless", "run_with_signals"]


# What the progress printer never shows: not delivered to it, and when nobody else
# listens, not even built (RUN_STARTED's edges and levels cost O(graph), issue 19).
PROGRESS_SKIP_KINDS = (
    EventKind.RUN_STARTED,
    EventKind.STREAM_STATS,
    EventKind.WORKLOAD_ITERATION,
    EventKind.WORKLOAD_SUMMARY,
)

# Under -q the printer shows only failures and lost records (console._loud).
_QUIET_SKIP_KINDS = tuple(k for k in EventKind if k is not EventKind.WORKLOAD_STATUS)
_QUIET_SKIP_STATUSES = tuple(s.value for s in Status if s is not Status.FAILED)


def progress_filters(*, verbose: bool, quiet: bool) -> dict[str, Any]:
    """``EventBus.add_listener`` options for the progress printer: what it never shows
    is not delivered to it (and, when nobody else listens, not even built)."""
    if quiet:  # a failure, or any workload_status event that reports lost records
        return {
            "skip_kinds": _QUIET_SKIP_KINDS,
            "skip_statuses": _QUIET_SKIP_STATUSES,
            "keep_dropped": True,
        }
    return {"skip_kinds": PROGRESS_SKIP_KINDS, "skip_statuses": () if verbose else ("Running",)}


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


def _selected(loaded: Any, selection: Any, persisted: Any) -> set[str] | None:
    """``--only/--skip/--from/--tags/--skip-tags`` (gxo/config/select.py): the names to
    run, or None for all. A register a selected workload needs from one left out must
    be in the --state store, else a usage error says which."""
    from gxo.config.select import missing_registers, select_workloads

    if selection is None:
        return None
    only = select_workloads(loaded, selection)
    if only is None:
        return None
    stored: set[str] = set()
    if persisted is not None:
        from gxo.state._sql_results import stored_keys

        stored = set(stored_keys(persisted))
    missing = missing_registers(loaded, only, stored)
    if missing:
        store = "the --state store has no result for it" if persisted else "no --state store"
        raise UsageError(
            f"{selection.describe()}: "
            + "; ".join(missing)
            + f" ({store}: run it too, e.g. with --only, or pass --state with the store "
            "of an earlier run that registered it)"
        )
    return only


def _run_store(persisted: Any, playbook: str, check: bool) -> Any:
    """The --state store's results; a --check run reads a copy of them and keeps its
    predictions in memory: a dry run never writes the store."""
    if persisted is None:
        return None
    store = persisted.results(playbook)
    if not check:
        return store
    from gxo.state.store import MemoryStore

    return MemoryStore(store.snapshot())


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
    selection: Any = None,
    check: bool = False,
    diff: bool = False,
    keep_runs: int = 0,
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
    try:
        only = _selected(loaded, selection, persisted)
    except BaseException:
        if persisted is not None:
            persisted.close()
        raise
    if workspace is None:  # relative paths resolve against the playbook's directory
        workspace = str(loaded.base_dir)
    run_workspace: str | Confinement | None = workspace
    if confine:  # literal paths outside are refused before anything runs (exit 2)
        run_workspace = Confinement(workspace, allowed_dirs(allow_paths))
        check_literal_paths(loaded, run_workspace.resolver())
    bus = EventBus()
    bus.add_listener(
        ProgressPrinter(console, verbose=verbose, quiet=quiet, loaded=loaded),
        **progress_filters(verbose=verbose, quiet=quiet),
    )
    engine = Engine(
        loaded,
        extra_vars=variables,
        concurrency=concurrency,
        workspace=run_workspace,
        bus=bus,
        signals=signal_broker(loaded, resume_payload_file, console),
        store=_run_store(persisted, loaded.playbook.name, check),
        check=check,  # --check / --diff: docs/check-mode.md
        diff=diff,
        only=only,
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
    if diff:
        from gxo.console import print_diffs

        print_diffs(console, result)
    print_summary(console, result, verbose=verbose)
    if keep_runs > 0:  # --keep-runs N: .gxo/runs/ (gxo ui --replay shows them)
        from gxo.tui.history import save_run

        try:
            save_run(result, playbook=playbook, keep=keep_runs)
        except OSError as exc:
            print_warnings(console, [f"cannot keep the run in .gxo/runs: {exc.strerror or exc}"])
    if report is not None:
        write_report(result, report)
    return result.exit_code
