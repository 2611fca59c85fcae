"""Snapshot-like transcripts of the REPL's completion menus (issue 18).

Each case types into the real prompt (prompt_toolkit pipe input), presses Tab and
records the menu: one line per entry (``>`` marks the highlighted one), its text and
its meta column. Baselines are ``snapshots/repl/<case>.txt``; after a deliberate
change, regenerate them with ``GXO_UPDATE_TRANSCRIPTS=1`` and review the diff.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from gxo.repl.app import build_prompt, repl_loop

BASELINES = Path(__file__).resolve().parents[2] / "snapshots" / "repl"
TAB, CTRL_C, CTRL_D = "\t", "\x03", "\x04"

CASES = {
    "commands": ":",
    "command_prefix": ":r",
    "run_workloads": ":run ",
    "run_prefix": ":run a",
    "help_topics": ":help ru",
    "expression_names": "{{ a_",
}


def _transcript(typed: str, state) -> str:
    lines = [f"gxo> {typed}"]
    current = state.current_completion
    for completion in state.completions:
        mark = ">" if completion is current else " "
        meta = completion.display_meta_text
        lines.append(f"{mark} {completion.display_text:<24} {meta}".rstrip())
    return "\n".join(lines) + "\n"


async def _menu(repl, tmp_path: Path, typed: str) -> str:
    await repl(":run a")  # a_out exists: names complete from the session
    with create_pipe_input() as pipe:
        prompt = build_prompt(repl.repl, history=tmp_path / "h", input=pipe, output=DummyOutput())
        task = asyncio.create_task(repl_loop(repl.repl, prompt))
        try:
            pipe.send_text(typed + TAB)
            for _ in range(500):
                buffer = prompt.app.current_buffer if prompt.app.is_running else None
                state = buffer.complete_state if buffer is not None else None
                # the menu of the whole text typed, not of a prefix still being completed
                if (
                    state is not None
                    and state.completions
                    and state.original_document.text == typed
                ):
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError(f"no completion menu for {typed!r}")
            shown = _transcript(typed, state)
            pipe.send_text(CTRL_C + CTRL_D)
            async with asyncio.timeout(20):
                assert await task == 0
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    return shown


@pytest.mark.parametrize("case", list(CASES))
async def test_completion_menu_transcript(repl, tmp_path: Path, case: str) -> None:
    shown = await _menu(repl, tmp_path, CASES[case])
    baseline = BASELINES / f"{case}.txt"
    if os.environ.get("GXO_UPDATE_TRANSCRIPTS") or not baseline.exists():
        baseline.parent.mkdir(parents=True, exist_ok=True)
        baseline.write_text(shown, encoding="utf-8")
        if not os.environ.get("GXO_UPDATE_TRANSCRIPTS"):
            pytest.fail(f"no baseline yet: wrote {baseline}; review it and commit")
    assert shown == baseline.read_text(encoding="utf-8")
