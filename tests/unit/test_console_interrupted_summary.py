"""The summary line of an interrupted run: cancelled workloads are not "failed" (issue 18)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

from rich.console import Console

from gxo.api import Engine, load_playbook
from gxo.console import print_summary

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: interrupted
workloads:
  - name: quick
    process: { module: control:identity, params: { x: 1 } }
  - name: broken
    process: { module: control:assert, params: { condition: "false" } }
  - name: slow_a
    process: { module: exec, params: { command: sleep, args: ["30"] } }
  - name: slow_b
    process: { module: exec, params: { command: sleep, args: ["30"] } }
  - name: after
    depends_on: [slow_a]
    process: { module: control:identity, params: {} }
"""


async def test_interrupted_summary_counts_cancelled_apart(
    write_playbook: Any, tmp_path: Path
) -> None:
    loaded = load_playbook(write_playbook(PLAYBOOK))
    engine = Engine(loaded, workspace=str(tmp_path))
    task = asyncio.create_task(engine.run())
    for _ in range(500):
        if all(engine.states[n].status.value == "Running" for n in ("slow_a", "slow_b")):
            break
        await asyncio.sleep(0.01)
    engine.cancel()
    result = await task
    assert result.status == "Interrupted"
    out = io.StringIO()
    print_summary(Console(file=out, width=200, color_system=None), result)
    line = out.getvalue()
    assert line.startswith("Interrupted interrupted")
    assert "1 completed, 1 failed, 2 cancelled, 1 skipped" in line, line
