"""``gxo run`` of the common forms skips Typer (gxo/entry.py, issue 19: start-up): it
must call the command with exactly the arguments Typer would, and leave every other
command line to Typer."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import gxo.cli
from gxo.entry import parse_fast_run, run_command

FAST = [
    ["run", "pb.yaml"],
    ["run", "-q", "pb.yaml"],
    ["run", "pb.yaml", "-q"],
    ["run", "--quiet", "--verbose", "pb.yaml"],
    ["run", "-v", "pb.yaml", "--check", "--diff"],
    ["run", "--report", "r.json", "pb.yaml"],
    ["run", "pb.yaml", "--report=out/r.json", "-q", "-q"],
    ["run", "dir/sub/pb.gxo.yaml", "--check"],
]

TO_TYPER = [
    [],
    ["--version"],
    ["run"],
    ["run", "-h"],
    ["run", "--help", "pb.yaml"],
    ["run", "a.yaml", "b.yaml"],
    ["run", "-qv", "pb.yaml"],
    ["run", "--report", "-", "pb.yaml"],
    ["run", "pb.yaml", "--report"],
    ["run", "pb.yaml", "--report="],
    ["run", "--report", "a", "--report", "b", "pb.yaml"],
    ["run", "--", "pb.yaml"],
    ["run", "-"],
    ["run", ""],
    ["run", "--no-quiet", "pb.yaml"],
    ["run", "--state", "sqlite:///x", "pb.yaml"],
    ["run", "-e", "a=1", "pb.yaml"],
    ["validate", "pb.yaml"],
]


def typer_call(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    calls: list[dict[str, Any]] = []

    def record(playbook: Path, **kwargs: Any) -> int:
        calls.append({"playbook": playbook, **kwargs})
        return 0

    monkeypatch.setattr(gxo.cli, "run_command", record)
    monkeypatch.setattr(sys, "argv", ["gxo", *argv])
    with pytest.raises(SystemExit) as exited:
        gxo.cli.main()
    assert exited.value.code == 0
    assert len(calls) == 1
    return calls[0]


@pytest.mark.parametrize("argv", FAST, ids=" ".join)
def test_fast_path_passes_what_typer_passes(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = parse_fast_run(argv)
    assert fast is not None
    defaults = {
        name: p.default
        for name, p in inspect.signature(run_command).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    typer = typer_call(argv, monkeypatch)
    assert {**defaults, **fast} == typer


@pytest.mark.parametrize("argv", TO_TYPER, ids=lambda a: " ".join(a) or "(none)")
def test_everything_else_goes_to_typer(argv: list[str]) -> None:
    assert parse_fast_run(argv) is None


def test_completion_request_goes_to_typer(tmp_path: Path) -> None:
    env = {**os.environ, "_GXO_COMPLETE": "bash_source"}
    code = "import sys; sys.argv = ['gxo', 'run', 'x.yaml']; from gxo.entry import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert "playbook not found" not in done.stderr  # Typer handled it, nothing ran


def test_gxo_run_fast_path_whole_process(tmp_path: Path) -> None:
    playbook = tmp_path / "one.gxo.yaml"
    playbook.write_text(
        'schemaVersion: "1.0.0"\nname: one\nworkloads:\n'
        "  - { name: only, process: { module: control:identity, params: { ok: true } } }\n"
    )
    code = (
        "import sys\n"
        f"sys.argv = ['gxo', 'run', '-q', {str(playbook)!r}, '--report', 'r.json']\n"
        "from gxo.entry import main\n"
        "try:\n    main()\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, 'typer' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert done.stdout.strip() == "0 False", done.stdout + done.stderr
    assert (tmp_path / "r.json").exists()
    missing = subprocess.run(
        [sys.executable, "-c", code.replace(str(playbook), str(tmp_path / "nope.yaml"))],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert missing.stdout.strip() == "2 False"
    assert "error: playbook not found" in missing.stderr
