"""``:resume`` / ``:reject`` / ``:paused``: a ``:run`` whose workload waits for a human.

The prompt comes back while the workload is paused (the run goes on in the background),
and the answer given at the prompt is checked against ``payload_schema``.
"""

from __future__ import annotations

import asyncio
import io
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from gxo.repl.app import build_prompt, plain_loop, repl_loop
from gxo.repl.commands import COMMANDS
from gxo.repl.completion import ReplCompleter

# build -> approve (paused) -> deploy; slow runs beside approve; final needs both.
APPROVAL = """
schemaVersion: "1.0.0"
name: approval
vars: { version: "1.4.2" }
workloads:
  - name: build
    process: { module: control:identity, params: { artifact: "app-{{ version }}" } }
    register: built
  - name: approve
    depends_on: [build]
    process:
      module: control:wait_for_signal
      params:
        prompt: "Deploy {{ version }}?"
        payload_schema:
          type: object
          properties:
            approved: { type: boolean }
            replicas: { type: integer, minimum: 1 }
            note: { type: string }
          required: [approved, replicas]
    register: approval
  - name: deploy
    depends_on: [approve]
    when: "_gxo.resume_payload.approved"
    process:
      module: control:identity
      params:
        artifact: "{{ built.artifact }}"
        replicas: "{{ _gxo.resume_payload.replicas }}"
        by: "{{ approval.resumed_by }}"
    register: deployed
  - name: slow
    process: { module: exec, params: { command: sleep, args: ["0.3"] } }
  - name: final
    depends_on: [deploy, slow]
    process: { module: control:identity, params: { done: true } }
  - name: quick
    process:
      module: control:wait_for_signal
      params: { prompt: "quick?", timeout: 1s, on_timeout: default, default_payload: 7 }
    register: quick_out
"""


@pytest.fixture
def approval(harness: Callable[..., Any], tmp_path: Path) -> Any:
    path = tmp_path / "approval.gxo.yaml"
    path.write_text(textwrap.dedent(APPROVAL).lstrip(), encoding="utf-8")
    h = harness()
    h.session.load(path)
    return h


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def complete(h: Any, text: str) -> dict[str, str]:
    """Completion candidates for ``text``: the completed input → meta text."""
    completer = ReplCompleter(h.session, COMMANDS)
    document = Document(text, len(text))
    return {
        text[: len(text) + c.start_position] + c.text: c.display_meta_text
        for c in completer.get_completions(document, CompleteEvent(completion_requested=True))
    }


def status(h: Any, name: str) -> str:
    return str(h.session.states[name].status.value)


async def test_run_comes_back_to_the_prompt_while_paused_and_resume_finishes_it(
    approval: Any,
) -> None:
    h = approval
    h.answers = [True]  # run build and approve first
    out = await asyncio.wait_for(h(":run deploy"), 10)
    assert "⏸ approve waits for an answer: Deploy 1.4.2?" in out
    assert "payload: approved: boolean*, replicas: integer*, note: string" in out
    assert ':resume approve {"approved": true, "replicas": 1}' in out
    assert ":reject approve REASON" in out
    assert h.session.active is not None and list(h.session.paused()) == ["approve"]
    assert status(h, "approve") == "Paused" and status(h, "deploy") == "Pending"
    # the session is usable meanwhile
    assert (await h("built.artifact")).strip() == "'app-1.4.2'"
    assert "approve" in await h(":paused") and "Deploy 1.4.2?" in await h(":paused")
    assert "Paused" in await h(":state")

    out = await asyncio.wait_for(h(':resume approve {"approved": true, "replicas": 3}'), 10)
    assert "▶ approve resumed by repl:" in out
    assert "✔ deploy Completed" in out
    assert h.session.active is None and h.session.paused() == {}
    summary = h.session.states["deploy"].summary
    assert summary["artifact"] == "app-1.4.2" and summary["replicas"] == 3
    assert summary["by"].startswith("repl:")
    assert "registered as deployed" in out
    assert h.session.store.get("approval")["payload"] == {"approved": True, "replicas": 3}


async def test_a_bad_payload_is_refused_and_the_workload_stays_paused(approval: Any) -> None:
    h = approval
    h.answers = [True]
    await asyncio.wait_for(h(":run approve"), 10)
    out = await h(':resume approve {"approved": "yes", "replicas": 3}')
    assert (
        "error: payload does not match payload_schema: approved: 'yes' is not of type "
        "'boolean' ('approve' is still paused)"
    ) in out
    out = await h(':resume approve {"approved": true, "replicas": 0}')
    assert "0 is less than the minimum of 1" in out
    out = await h(":resume approve {approved: true,")
    assert "error: the payload is not JSON:" in out
    assert list(h.session.paused()) == ["approve"] and status(h, "approve") == "Paused"
    # YAML flow style is accepted too
    out = await asyncio.wait_for(h(":resume approve {approved: false, replicas: 2}"), 10)
    assert "✔ approve Completed" in out
    assert "{'approved': False, 'replicas': 2}" in out


async def test_reject_fails_the_workload_and_skips_what_needs_it(approval: Any) -> None:
    h = approval
    h.answers = [True]
    await asyncio.wait_for(h(":run deploy"), 10)
    out = await asyncio.wait_for(h(":reject approve   not   on a Friday"), 10)
    assert "■ approve rejected: not on a Friday" in out
    assert "✘ approve Failed" in out and "rejected by repl:" in out
    assert status(h, "approve") == "Failed" and status(h, "deploy") == "Skipped"
    assert h.session.active is None


async def test_while_paused_run_and_load_are_refused(approval: Any, tmp_path: Path) -> None:
    h = approval
    h.answers = [True]
    await asyncio.wait_for(h(":run approve"), 10)
    message = (
        "':run approve' is still in progress (paused: approve): answer it with :resume or "
        ":reject first (:paused lists the pauses)"
    )
    assert message in await h(":run slow")
    assert message in await h(f":load {tmp_path / 'approval.gxo.yaml'}")
    assert list(h.session.paused()) == ["approve"]
    await h(":reject approve")
    assert status(h, "approve") == "Failed"
    assert "rejected in gxo repl" in (h.session.states["approve"].error or "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (":resume", "usage: :resume WORKLOAD [PAYLOAD as JSON]"),
        (":reject", "usage: :reject WORKLOAD [REASON]"),
        (":resume approve {}", "'approve' is not paused: no workload is"),
    ],
)
async def test_resume_errors_without_a_pause(approval: Any, text: str, message: str) -> None:
    assert message in await approval(text)
    assert "no workload is paused" in await approval(":paused")


async def test_unknown_paused_workload_suggests_the_paused_one(approval: Any) -> None:
    h = approval
    h.answers = [True]
    await asyncio.wait_for(h(":run approve"), 10)
    out = await h(":resume aprove {}")
    assert "'aprove' is not paused (did you mean 'approve'?); paused: approve" in out
    await h(":reject approve")


async def test_independent_branches_run_while_the_prompt_waits(approval: Any) -> None:
    h = approval
    h.answers = [True]
    await asyncio.wait_for(h(":run final"), 10)
    assert list(h.session.paused()) == ["approve"]
    # slow (exec sleep) is not behind the pause: it finishes while we are at the prompt
    await until(lambda: status(h, "slow") == "Completed", "slow to complete in the background")
    assert status(h, "approve") == "Paused" and status(h, "final") == "Pending"
    out = await asyncio.wait_for(h(':resume approve {"approved": true, "replicas": 1}'), 10)
    assert "✔ final Completed" in out and "{'done': True}" in out


async def test_a_timeout_ends_the_run_in_the_background(approval: Any) -> None:
    h = approval
    out = await asyncio.wait_for(h(":run quick"), 10)
    assert "⏸ quick waits for an answer: quick?" in out
    assert "(timeout 1s: default)" in out and ":resume quick PAYLOAD" in out
    await until(lambda: h.session.active is None, "the timeout to end the run")
    assert h.session.store.get("quick_out")["payload"] == 7
    assert h.session.store.get("quick_out")["timed_out"] is True
    # the watcher printed the outcome though no command was waiting
    assert "registered as quick_out" in h.buffer.getvalue()
    assert "'quick' is not paused" in await h(":resume quick 1")


async def test_closing_the_session_cancels_a_paused_run(approval: Any) -> None:
    h = approval
    h.answers = [True]
    await asyncio.wait_for(h(":run approve"), 10)
    await asyncio.wait_for(h.session.close(), 10)
    assert h.session.active is None
    assert status(h, "approve") not in ("Paused", "Running", "Pending")


async def test_completion_offers_paused_workloads_and_payload_keys(approval: Any) -> None:
    h = approval
    assert complete(h, ":resume ") == {}
    h.answers = [True]
    await asyncio.wait_for(h(":run approve"), 10)
    assert complete(h, ":resume a") == {":resume approve": "paused — Deploy 1.4.2?"}
    assert complete(h, ":reject ") == {":reject approve": "paused — Deploy 1.4.2?"}
    assert complete(h, ":resume approve {") == {
        ':resume approve {"approved": ': "boolean (required)",
        ':resume approve {"replicas": ': "integer (required)",
        ':resume approve {"note": ': "string",
    }
    assert complete(h, ':resume approve {"approved": true, "re') == {
        ':resume approve {"approved": true, "replicas": ': "integer (required)"
    }
    assert {":resume", ":reject", ":paused"} <= set(complete(h, ":"))
    await h(":reject approve")


async def test_a_script_answers_a_pause_on_the_next_line(approval: Any) -> None:
    h = approval
    script = io.StringIO(
        ':run deploy\n:resume approve {"approved": true,\n  "replicas": 2}\ndeployed.replicas\n'
    )
    assert await asyncio.wait_for(plain_loop(h.repl, script), 15) == 0
    out = h.buffer.getvalue()
    assert (
        out.index("⏸ approve waits")
        < out.index("▶ approve resumed")
        < out.index("✔ deploy Completed")
    )
    assert out.rstrip().endswith("2")


async def test_a_script_that_ends_while_paused_cancels_the_run(approval: Any) -> None:
    h = approval
    assert await asyncio.wait_for(plain_loop(h.repl, io.StringIO(":run approve\n")), 15) == 0
    assert h.session.active is None and status(h, "approve") != "Paused"


async def test_at_the_prompt_the_pause_is_answered_while_the_run_waits(
    approval: Any, tmp_path: Path
) -> None:
    h = approval
    with create_pipe_input() as pipe:
        prompt = build_prompt(
            h.repl, history=tmp_path / "history", input=pipe, output=DummyOutput()
        )
        task = asyncio.create_task(repl_loop(h.repl, prompt))
        pipe.send_text(":run deploy\ry\r")  # and yes, run build and approve first
        await until(lambda: bool(h.session.paused()), "approve to pause")
        await until(lambda: prompt.app.is_running, "the prompt to come back")
        pipe.send_text(':resume approve {"approved": true, "replicas": 4}\r')
        await until(lambda: status(h, "deploy") == "Completed", "deploy to complete")
        pipe.send_text(":quit\r")
        assert await asyncio.wait_for(task, 10) == 0
    assert h.session.states["deploy"].summary["replicas"] == 4
