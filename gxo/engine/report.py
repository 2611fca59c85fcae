"""The JSON run report (SPEC §4), secrets redacted."""

from __future__ import annotations

import glob
import json
import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gxo.errors import UsageError

if TYPE_CHECKING:
    from gxo.engine.context import WorkloadState
    from gxo.engine.scheduler import RunResult
    from gxo.template.secrets import SecretRegistry

__all__ = [
    "ReportPathError",
    "ReportTarget",
    "build_report",
    "report_target",
    "workload_report",
    "write_report",
]

TEMP_SUFFIX = ".gxo-tmp"  # as filesystem writes: one pattern to clean up or ignore


def build_report(result: RunResult) -> dict[str, Any]:
    workloads = {name: _workload_entry(s) for name, s in result.states.items()}
    report: dict[str, Any] = {
        "playbook": result.playbook,
        "run_id": result.run_id,
        "status": result.status,
        "started_at": result.started_at.isoformat().replace("+00:00", "Z"),
        "duration_ms": result.duration_ms,
        "workloads": workloads,
    }
    if result.check:  # a dry run (docs/check-mode.md): nothing was changed
        report["check"] = True
    if result.warnings:
        report["warnings"] = list(result.warnings)
    return result.secrets.redact(report) if result.secrets else report


def workload_report(
    playbook: str,
    run_id: str,
    status: str,
    started_at: str,
    state: WorkloadState,
    secrets: SecretRegistry | None,
) -> dict[str, Any]:
    """:func:`build_report` of a run of the one workload ``state`` that ended with
    ``status`` (``started_at`` as that report formats it): a daemon's history entry
    of one workload of an instance, without building a :class:`RunResult` per entry."""
    report: dict[str, Any] = {
        "playbook": playbook,
        "run_id": run_id,
        "status": status,
        "started_at": started_at,
        "duration_ms": state.duration_ms or 0.0,
        "workloads": {state.workload.name: _workload_entry(state)},
    }
    return secrets.redact(report) if secrets else report


def _workload_entry(s: WorkloadState) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "status": s.status.value,
        "attempts": s.attempts,
        "duration_ms": s.duration_ms,
        "error": s.error,
        "summary": s.summary,
        "records_in": s.records_in,
        "records_out": s.records_out,
    }
    if s.reason:
        entry["reason"] = s.reason
    if s.ignored:
        entry["ignored"] = True  # failed under ignore_errors: did not fail the run
    if s.records_dropped:
        entry["records_dropped"] = s.records_dropped
    if s.counters:
        entry["counters"] = dict(s.counters)
    if s.iterations:
        entry["iterations"] = list(s.iterations)
    if s.check_outcome:  # gxo run --check: "ran", "predicted" or "not run"
        entry["check"] = s.check_outcome
    if s.diffs:  # --diff: what changed (or would), as unified diffs
        entry["diff"] = "".join(d if d.endswith("\n") else d + "\n" for d in s.diffs)
    return entry


class ReportPathError(UsageError, OSError):
    """The report cannot be written there (a usage error, exit 2; an OSError for
    callers that already handle failed writes, such as the TUI)."""


@dataclass(frozen=True)
class ReportTarget:
    """How a report reaches ``path``: ``stdout`` (``-``), ``atomic`` (a temp file
    renamed over the regular file a symlink leads to), ``stream`` (appended to a
    device, FIFO or ``/dev/stdout``, which a rename would replace instead of feed) or
    ``direct`` (a writable file in a read-only directory, rewritten in place)."""

    kind: str
    path: Path


_PSEUDO_FS = ("/proc/", "/sys/")  # kernel files: writing them never stores a report


def report_target(path: str | Path) -> ReportTarget:
    """Where and how ``--report path`` will write, checked before the run starts.

    Raises :class:`ReportPathError` for a directory, a /proc or /sys file, a parent
    that is not a directory, or a place that cannot be written.
    """
    if str(path) == "-":
        return ReportTarget("stdout", Path("-"))
    given = Path(path)
    try:
        st: os.stat_result | None = os.stat(given)  # follows symlinks, as the write will
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise ReportPathError(
            f"--report {given}: a parent of it is a file, not a directory"
        ) from None
    except OSError as exc:
        raise ReportPathError(f"--report {given}: {exc.strerror or exc}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise ReportPathError(
            f"--report {given} is a directory; give a file name such as {given / 'report.json'}"
        )
    # A device or FIFO, or /dev/stdout & co. even when they lead to a regular file
    # (a shell redirection, which a rename would detach and truncating would clobber).
    if st is not None and (not stat.S_ISREG(st.st_mode) or str(given).startswith("/dev/")):
        if not os.access(given, os.W_OK):
            raise ReportPathError(f"--report {given}: permission denied")
        return ReportTarget("stream", given)
    real = Path(os.path.realpath(given))
    if str(real).startswith(_PSEUDO_FS):
        raise ReportPathError(
            f"--report {given}: {real} is a kernel pseudo-file, not a report file"
        )
    if st is not None:  # an existing regular file (perhaps behind a symlink)
        if os.access(real.parent, os.W_OK | os.X_OK):
            return ReportTarget("atomic", real)
        if os.access(real, os.W_OK):
            return ReportTarget("direct", real)  # in place: its directory is read-only
        raise ReportPathError(f"--report {given}: permission denied")
    ancestor = real.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ReportPathError(f"--report {given}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ReportPathError(f"--report {given}: permission denied in {ancestor}")
    return ReportTarget("atomic", real)


def write_report(result: RunResult, path: str | Path) -> None:
    """Write the report to ``path`` (``-``: stdout), through a symlink, atomically for
    a regular file: a half-written report is worse than none."""
    target = report_target(path)
    data = json.dumps(build_report(result), indent=2, default=str, ensure_ascii=False) + "\n"
    if target.kind == "stdout":
        sys.stdout.write(data)
        sys.stdout.flush()
        return
    try:
        if target.kind in ("direct", "stream"):
            with open(target.path, "w" if target.kind == "direct" else "a", encoding="utf-8") as fh:
                fh.write(data)
        else:
            _write_atomically(target.path, data)
    except OSError as exc:
        raise ReportPathError(f"cannot write the report to {path}: {exc.strerror or exc}") from None


def _write_atomically(target: Path, data: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(target)
    # The writer's pid is in the name, so the next write can tell a temp file of a
    # killed writer (removed) from one a live writer is still filling (kept).
    fd, tmp = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=TEMP_SUFFIX
    )
    try:
        # mkstemp creates 0600: keep the mode of the file replaced, else the umask's.
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_stale_temp_files(target: Path) -> None:
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*{TEMP_SUFFIX}"):
        pid_text = leftover.name[len(target.name) + 2 :].split(".", 1)[0]
        if pid_text.isdigit() and _alive(int(pid_text)) and int(pid_text) != os.getpid():
            continue
        leftover.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
