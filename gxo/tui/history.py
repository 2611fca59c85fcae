"""Run history: ``.gxo/runs/<run>/`` keeps a finished run's report and log, and
``gxo ui --replay`` shows one again in the workbench's panels.

A run directory is named ``<UTC time>-<run id>`` (so names sort by age) and holds:

- ``report.json`` — the JSON run report (SPEC §4), secrets redacted;
- ``log.jsonl`` — one line per log line: ``{"t", "workload", "stream", "line"}``, the
  last lines each workload logged (as many as the engine keeps, redacted);
- ``meta.json`` — ``{"playbook": absolute path, "run_id", "status"}``.

``gxo ui`` keeps the last 10 runs by default (``--keep-runs N``, 0 for none);
``gxo run`` keeps none unless ``--keep-runs N`` is given. Older directories beyond N
are removed after each save.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from gxo.errors import UsageError

if TYPE_CHECKING:
    from gxo.config.loader import LoadedPlaybook
    from gxo.engine.scheduler import RunResult

__all__ = ["ReplaySession", "find_run", "load_replay", "runs_dir", "save_run"]

RUNS_DIR = Path(".gxo") / "runs"
UI_KEEP_RUNS = 10


def runs_dir(root: Path | None = None) -> Path:
    return (root or Path.cwd()) / RUNS_DIR


def save_run(
    result: RunResult, *, playbook: Path, keep: int, root: Path | None = None
) -> Path | None:
    """Keep ``result`` under ``.gxo/runs/`` and prune to the ``keep`` newest; None when
    ``keep`` is 0. An OSError (read-only directory, full disk) is the caller's to report."""
    from gxo.engine.report import build_report

    if keep <= 0:
        return None
    base = runs_dir(root)
    stamp = result.started_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    folder = base / f"{stamp}-{result.run_id}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(
        json.dumps(build_report(result), indent=2, default=str, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    lines: list[tuple[float, str, str, str]] = []
    for name, state in result.states.items():
        lines.extend((t, name, stream, line) for t, stream, line in (state._logs or ()))
    lines.sort(key=lambda entry: entry[0])
    with (folder / "log.jsonl").open("w", encoding="utf-8") as out:
        for t, name, stream, line in lines:
            record = {"t": t, "workload": name, "stream": stream, "line": line}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    meta = {"playbook": str(playbook.resolve()), "run_id": result.run_id, "status": result.status}
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    _prune(base, keep)
    return folder


def _prune(base: Path, keep: int) -> None:
    folders = sorted(p for p in base.iterdir() if p.is_dir() and (p / "report.json").exists())
    for old in folders[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def find_run(ref: str, root: Path | None = None) -> Path:
    """The report of ``ref``: a report file, a run directory, or a run id (or the start
    of one) under ``.gxo/runs/``. UsageError naming the choices when none matches."""
    path = Path(ref)
    if path.is_file():
        return path
    if path.is_dir() and (path / "report.json").is_file():
        return path / "report.json"
    base = runs_dir(root)
    folders = sorted(base.iterdir()) if base.is_dir() else []
    matches = [f for f in folders if f.name.partition("-")[2].startswith(ref)]
    if len(matches) == 1 and (matches[0] / "report.json").is_file():
        return matches[0] / "report.json"
    if len(matches) > 1:
        raise UsageError(
            f"--replay {ref}: several runs match: {', '.join(m.name for m in matches)}"
        )
    recent = ", ".join(f.name.partition("-")[2] for f in folders[-5:]) or "none kept yet"
    raise UsageError(f"--replay {ref}: no such report file or run id (runs in {base}: {recent})")


class ReplaySession:
    """Stands where a RunSession stands for the run screen: a finished run, read back."""

    def __init__(
        self, loaded: LoadedPlaybook, report: dict[str, Any], logs: list[dict[str, Any]]
    ) -> None:
        from gxo.engine.context import Status, WorkloadState
        from gxo.tui.model import LogLine, RunModel

        self.loaded = loaded
        self.report_data = report
        self.cancelling = False
        self.running = False
        self.result = None
        self.error = None
        self.crash = None
        self.report_error = None
        self.only = None
        self.approvals = None
        states: dict[str, WorkloadState] = {}
        entries = report.get("workloads") or {}
        for workload in loaded.playbook.workloads:
            entry = entries.get(workload.name)
            state = WorkloadState(workload)
            if isinstance(entry, dict):
                try:
                    state.status = Status(str(entry.get("status", "Pending")))
                except ValueError:
                    state.status = Status.PENDING
                state.attempts = int(entry.get("attempts") or 0)
                state.error = entry.get("error")
                state.reason = entry.get("reason")
                state.summary = entry.get("summary")
                state.records_in = int(entry.get("records_in") or 0)
                state.records_out = int(entry.get("records_out") or 0)
                state.iterations = list(entry.get("iterations") or [])
                if entry.get("duration_ms") is not None:
                    state.started_at, state.finished_at = 0.0, float(entry["duration_ms"]) / 1000
            states[workload.name] = state
        self.engine = SimpleNamespace(states=states, run_id=report.get("run_id"))
        model = RunModel.from_loaded(loaded)
        model.keep_outcomes(states)
        model.run_status = str(report.get("status", "Completed"))
        model.run_id = report.get("run_id")
        model.run_duration_ms = report.get("duration_ms")
        model.started_at = 0.0
        for record in logs:
            name = str(record.get("workload", ""))
            if name in model.logs:
                model.log_seq += 1
                stream = str(record.get("stream", "log"))
                model.logs[name].append(
                    LogLine(
                        model.log_seq,
                        name,
                        stream,
                        "info",
                        str(record.get("line", "")),
                        float(record.get("t") or 0.0),
                    )
                )
        model.warnings = list(report.get("warnings") or [])
        model.version += 1
        self.model = model

    @property
    def exit_code(self) -> int:
        return {"Completed": 0, "Failed": 1, "Interrupted": 130}.get(self.model.run_status, 1)


def load_replay(
    ref: str, playbook: Path | None
) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    """(playbook, report, log lines) of ``ref`` (see :func:`find_run`). The playbook is
    the one given, else the one the run directory's meta.json names."""
    report_path = find_run(ref)
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--replay {ref}: cannot read {report_path}: {exc}") from None
    if not isinstance(report, dict) or not isinstance(report.get("workloads"), dict):
        raise UsageError(f"--replay {ref}: {report_path} is not a gxo run report")
    folder = report_path.parent
    if playbook is None:
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
            playbook = Path(meta["playbook"])
        except (OSError, ValueError, KeyError, TypeError):
            raise UsageError(
                f"--replay {ref}: which playbook? give it: gxo ui PLAYBOOK --replay {ref}"
            ) from None
    logs: list[dict[str, Any]] = []
    log_file = folder / "log.jsonl"
    if log_file.is_file():
        for line in log_file.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                logs.append(record)
    return playbook, report, logs
