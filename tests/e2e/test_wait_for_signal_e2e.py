"""`gxo run` of a playbook that waits for a human: terminal, payload file, no terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import PLAYBOOKS

APPROVAL = str(PLAYBOOKS / "approval.gxo.yaml")


def test_without_a_terminal_it_fails_at_once_naming_the_ways_out(gxo: Any) -> None:
    started = time.monotonic()
    done = gxo("run", APPROVAL, timeout=30)
    assert time.monotonic() - started < 20  # not the 30 s timeout: at once
    assert done.returncode == 1, done.stderr
    assert "gxo daemon" in done.stderr and "--resume-payload-file" in done.stderr
    assert "unrelated Completed" in done.stderr.replace("✔ ", "")
    assert "Traceback" not in done.stderr


def test_payload_file_answers(gxo: Any, tmp_path: Path) -> None:
    answer = tmp_path / "answer.json"
    answer.write_text(json.dumps({"approved": True, "note": "from CI"}))
    report = tmp_path / "report.json"
    done = gxo("run", APPROVAL, "--resume-payload-file", str(answer), "--report", str(report))
    assert done.returncode == 0, done.stderr
    workloads = json.loads(report.read_text())["workloads"]
    by_name = {w["name"]: w for w in workloads} if isinstance(workloads, list) else workloads
    assert by_name["deploy"]["summary"] == {"deployed": "1.4.2", "note": "from CI"}
    assert by_name["approve"]["summary"]["resumed_by"] == f"file:{answer}"


def test_payload_file_that_fails_the_schema(gxo: Any, tmp_path: Path) -> None:
    answer = tmp_path / "answer.yaml"
    answer.write_text("approved: maybe\n")
    done = gxo("run", APPROVAL, "--resume-payload-file", str(answer))
    assert done.returncode == 1
    assert "payload does not match payload_schema: approved: 'maybe' is not of type" in done.stderr


def test_missing_payload_file_is_a_usage_error(gxo: Any, tmp_path: Path) -> None:
    done = gxo("run", APPROVAL, "--resume-payload-file", str(tmp_path / "nope.json"))
    assert done.returncode == 2
    assert "--resume-payload-file" in done.stderr and "nope.json" in done.stderr
    assert "Traceback" not in done.stderr


def _run_on_a_pty(
    args: list[str], answers: list[tuple[str, str]], timeout: float = 30
) -> tuple[int, str]:
    """Run ``gxo`` with a pty as stdin/stdout/stderr; answer each prompt when it shows."""
    main, child = pty.openpty()
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gxo.cli", *args],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        close_fds=True,
    )
    os.close(child)
    seen = b""
    pos = 0  # output before this offset has been answered already
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(main, 4096)
                except OSError:  # EIO: the child closed the pty
                    break
                if not chunk:
                    break
                seen += chunk
            if pending and (at := seen.find(pending[0][0].encode(), pos)) >= 0:
                expect, reply = pending.pop(0)
                pos = at + len(expect.encode())
                os.write(main, reply.encode() + b"\r")
            if proc.poll() is not None and not ready:
                break
        code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
    return code, re.sub(r"\x1b\[[0-9;]*m", "", seen.decode(errors="replace"))


def test_terminal_prompt_guided_by_the_schema() -> None:
    code, out = _run_on_a_pty(
        ["run", APPROVAL],
        [
            ("approved — go ahead [y/n]: ", "perhaps"),  # refused: asked again
            ("approved — go ahead [y/n]: ", "y"),
            ("note (optional): ", "by hand"),
            ("resume with", "y"),
        ],
    )
    assert code == 0, out
    assert "Deploy 1.4.2 to production?" in out
    assert "approved: answer y or n" in out
    assert "Completed approval" in out and "3 completed" in out


def test_terminal_reject_fails_the_workload() -> None:
    code, out = _run_on_a_pty(
        ["run", APPROVAL],
        [
            ("approved — go ahead [y/n]: ", "n"),
            ("note (optional): ", ""),
            ("resume with", "r"),
            ("reason: ", "freeze week"),
        ],
    )
    assert code == 1, out
    assert "rejected by terminal: freeze week" in out
    assert "Failed approval" in out and "1 completed, 1 failed, 1 skipped" in out
