"""The JSON run report (SPEC §4), secrets redacted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gxo.engine.scheduler import RunResult

__all__ = ["build_report", "write_report"]


def build_report(result: RunResult) -> dict[str, Any]:
    workloads: dict[str, Any] = {}
    for name, s in result.states.items():
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
        workloads[name] = entry
    report = {
        "playbook": result.playbook,
        "run_id": result.run_id,
        "status": result.status,
        "started_at": result.started_at.isoformat().replace("+00:00", "Z"),
        "duration_ms": result.duration_ms,
        "workloads": workloads,
    }
    if result.warnings:
        report["warnings"] = list(result.warnings)
    return result.secrets.redact(report) if result.secrets else report


def write_report(result: RunResult, path: str | Path) -> None:
    """Write atomically: a half-written report is worse than none."""
    import os
    import tempfile

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(build_report(result), indent=2, default=str, ensure_ascii=False)
    fd, tmp = tempfile.mkstemp(prefix=".gxo-report-", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data + "\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
