"""Running one test file through the engine, and what came of it.

A test file is a normal playbook. It runs with the directory that holds it as
its workspace, so relative paths in it (data files, ``exec`` cwd, SQLite
files) resolve next to the test file, whatever directory ``gxo test`` was
started from. It also gets the variable ``gxo_test``: ``file`` (absolute path),
``dir`` (its directory), ``tmp_dir`` (a fresh directory for scratch files,
removed after the test, like pytest's ``tmp_path``) and ``python`` (the
interpreter running GXO, so a test can run a playbook end to end with
``exec: {command: "{{ gxo_test.python }}", args: [-m, gxo.cli, run, x.gxo.yaml]}``).

PASS: the run ends ``Completed`` (failures under ``ignore_errors`` allowed).
SKIP: it completed but every workload was skipped by its own ``when``.
FAIL: anything else, including a test file the loader rejects.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gxo.engine.locate import failure_location
from gxo.errors import GxoError
from gxo.testing.discovery import SUFFIX, TEST_VAR, TestFile, selected

if TYPE_CHECKING:
    import re

    from gxo.config.loader import LoadedPlaybook
    from gxo.engine.context import WorkloadState
    from gxo.engine.scheduler import RunResult

__all__ = ["TEST_VAR", "Outcome", "run_test_file"]

OUTPUT_TAIL = 20  # output lines of a failed workload shown with its failure

PASS, FAIL, SKIP, DESELECTED = "PASS", "FAIL", "SKIP", "DESELECTED"


@dataclass
class Outcome:
    """The result of one test file, ready for the text report and JUnit."""

    test: TestFile
    name: str
    status: str  # PASS | FAIL | SKIP | DESELECTED
    duration: float = 0.0  # seconds
    message: str = ""  # one line: why it failed or was skipped
    kind: str = ""  # invalid-playbook | workload-failed | run-failed | interrupted
    details: list[str] = field(default_factory=list)  # the failure report
    output: list[str] = field(default_factory=list)  # each workload's status, duration and output

    @property
    def failed(self) -> bool:
        return self.status == FAIL


async def run_test_file(test: TestFile, selector: re.Pattern[str] | None = None) -> Outcome:
    """Load and run ``test``; never raises for a problem of the test itself."""
    from gxo.config.loader import load_playbook
    from gxo.engine.scheduler import Engine

    started = time.monotonic()
    fallback_name = (
        test.path.name.removesuffix(SUFFIX).removesuffix(".gxo.yaml").removesuffix(".yaml")
    )
    try:
        loaded = await asyncio.to_thread(
            load_playbook,
            test.path,
            name=test.display,
            check_lifecycles=True,
            extra_names={TEST_VAR},
        )
    except GxoError as exc:
        if not selected(selector, test, None):
            return Outcome(test, fallback_name, DESELECTED)
        lines = str(exc).splitlines() or [type(exc).__name__]
        return Outcome(
            test,
            fallback_name,
            FAIL,
            time.monotonic() - started,
            lines[0],
            "invalid-playbook",
            lines,
        )
    name = loaded.playbook.name
    if not selected(selector, test, name):
        return Outcome(test, name, DESELECTED)
    scratch = Path(tempfile.mkdtemp(prefix="gxo-test-"))
    try:
        variables = {
            TEST_VAR: {
                "file": str(test.path),
                "dir": str(test.path.parent),
                "tmp_dir": str(scratch),
                "python": sys.executable,
            }
        }
        engine = Engine(loaded, extra_vars=variables, workspace=test.path.parent)
        result = await engine.run()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    outcome = judge(test, loaded, result)
    outcome.duration = time.monotonic() - started
    return outcome


def judge(test: TestFile, loaded: LoadedPlaybook, result: RunResult) -> Outcome:
    """PASS/FAIL/SKIP of a finished run, with its failure report and output."""
    states = list(result.states.values())
    output = [f"warning: {w}" for w in result.warnings] + workload_output(states)
    name = loaded.playbook.name
    if result.status == "Interrupted":
        return Outcome(
            test,
            name,
            FAIL,
            message="interrupted",
            kind="interrupted",
            details=["interrupted"],
            output=output,
        )
    if result.status == "Completed":
        if states and all(s.status.value == "Skipped" and not s.blocked for s in states):
            reasons = sorted({s.reason or "skipped" for s in states})
            return Outcome(test, name, SKIP, message="; ".join(reasons), output=output)
        return Outcome(test, name, PASS, output=output)
    details: list[str] = []
    failed = [s for s in states if s.status.value == "Failed" and not s.workload.ignore_errors]
    for state in failed:
        details.extend(_workload_failure(loaded, state))
    blocked = [s.name for s in states if s.status.value == "Skipped" and s.blocked]
    if blocked:
        details.append(f"skipped because a dependency failed: {', '.join(blocked)}")
    new_warnings = [w for w in result.warnings if w not in loaded.warnings]
    details.extend(f"error: {w}" for w in new_warnings)
    if failed:
        message = f"workload '{failed[0].name}' failed: {_headline(failed[0])}"
        kind = "workload-failed"
    else:
        message = new_warnings[0] if new_warnings else "the run failed"
        kind = "run-failed"
    return Outcome(
        test, name, FAIL, message=message, kind=kind, details=details or [message], output=output
    )


def workload_output(states: list[WorkloadState]) -> list[str]:
    """Per workload: status, duration, attempts or skip reason, then its output lines."""
    lines: list[str] = []
    for s in states:
        line = f"{s.name}: {s.status.value}"
        if s.duration_ms is not None and s.status.value != "Skipped":
            line += f" ({s.duration_ms / 1000:.2f}s)"
        if s.attempts > 1:
            line += f", {s.attempts} attempts"
        if s.reason:
            line += f" — {s.reason}"
        if s.error and s.status.value == "Failed":
            line += f": {s.error}"
        if s.status.value == "Failed" and s.workload.ignore_errors:
            line += " (ignored)"
        lines.append(line)
        for _, stream, text in s.logs:
            lines.append(
                f"    {stream} | {text}" if stream in ("stdout", "stderr") else f"    {text}"
            )
    return lines


def _assertion_failures(summary: Any) -> list[dict[str, Any]]:
    """Structured ``test:assert`` failures in a summary (or a loop's list of summaries)."""
    entries = summary if isinstance(summary, list) else [summary]
    out: list[dict[str, Any]] = []
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("failures"), list):
            out.extend(f for f in entry["failures"] if isinstance(f, dict))
    return out


def _headline(state: WorkloadState) -> str:
    failures = _assertion_failures(state.summary)
    if failures and isinstance(state.summary, dict) and "assertions_passed" in state.summary:
        total = len(failures) + int(state.summary.get("assertions_passed") or 0)
        return f"{len(failures)} of {total} assertions failed"
    return (state.error or "failed").splitlines()[0]


def _workload_failure(loaded: LoadedPlaybook, state: WorkloadState) -> list[str]:
    from gxo.testing.diff import format_value, type_name

    where = failure_location(loaded, state.name, state.error)
    module = state.workload.process.module
    lines = [f"{where}: workload '{state.name}' ({module}) failed: {_headline(state)}"]
    failures = _assertion_failures(state.summary)
    for it in state.iterations:
        if it.get("status") == "Failed":
            lines.append(f"    loop iteration {it.get('index')}: {it.get('error')}")
    if not failures:
        if state.error and "\n" in state.error:
            lines.extend(f"    {line}" for line in state.error.splitlines()[1:])
        tail = [(stream, text) for _, stream, text in state.logs][-OUTPUT_TAIL:]
        if tail:
            lines.append("    output:")
            lines.extend(
                f"      {stream} | {text}" if stream in ("stdout", "stderr") else f"      {text}"
                for stream, text in tail
            )
        return lines
    index = loaded.workload_index(state.name)
    for f in failures:
        i = f.get("index")
        label = f"assertions[{i}]" + (f" ({f['msg']})" if f.get("msg") else "")
        loc = (
            loaded.location(("workloads", index, "process", "params", "assertions", i))
            if index is not None
            else where
        )
        op = f.get("operator")
        if op == "equal_to" and not f.get("error"):
            lines.append(f"    {label} at {loc}: equal_to")
        else:
            lines.append(f"    {label} at {loc}: {f.get('reason')}")
        if f.get("actual_template"):
            lines.append(f"        template: {f['actual_template']}")
        if op == "equal_to" and not f.get("error"):
            lines.append(f"        expected: {format_value(f.get('expected'))}")
            lines.append(f"        actual:   {format_value(f.get('actual'))}")
            kinds = type_name(f.get("expected")), type_name(f.get("actual"))
            if kinds[0] != kinds[1] and set(kinds) != {"int", "float"}:
                lines.append(f"        types:    expected {kinds[0]}, actual {kinds[1]}")
        if f.get("diff"):
            lines.append("        diff:")
            lines.extend(f"          {d}" for d in str(f["diff"]).splitlines())
    return lines
