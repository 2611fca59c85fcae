"""The full prompt loop, driven through prompt_toolkit's pipe input and a dummy output."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psutil
import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from gxo.repl.app import build_prompt, plain_loop, repl_loop, run_repl

ENTER, ESC_ENTER, TAB, CTRL_C, CTRL_D = "\r", "\x1b\r", "\t", "\x03", "\x04"


class Driver:
    """A running REPL loop fed keystrokes through a pipe."""

    def __init__(self, harness, history: Path | None) -> None:
        self.harness = harness
        self.history = history
        self.task: asyncio.Task[int] | None = None

    def send(self, keys: str) -> None:
        self.pipe.send_text(keys)

    @property
    def buffer(self):
        return self.prompt.app.current_buffer

    async def until(
        self, condition: Callable[[], bool], what: str, *, prompting: bool = True
    ) -> None:
        """Wait for ``condition`` (and, with ``prompting``, for the prompt to be shown)."""
        for _ in range(500):
            if (self.prompt.app.is_running or not prompting) and condition():
                return
            await asyncio.sleep(0.01)
        pytest.fail(f"timed out waiting for {what}")

    async def finish(self) -> int:
        assert self.task is not None
        async with asyncio.timeout(20):
            return await self.task

    @property
    def output(self) -> str:
        return self.harness.buffer.getvalue()


@pytest.fixture
async def driver(repl, tmp_path: Path) -> AsyncIterator[Driver]:
    d = Driver(repl, tmp_path / "history")
    with create_pipe_input() as pipe:
        d.pipe = pipe
        d.prompt = build_prompt(repl.repl, history=d.history, input=pipe, output=DummyOutput())
        d.task = asyncio.create_task(repl_loop(repl.repl, d.prompt))
        try:
            yield d
        finally:
            if not d.task.done():
                d.task.cancel()
                await asyncio.gather(d.task, return_exceptions=True)


async def test_evaluate_then_quit(driver: Driver) -> None:
    driver.send("n * 3" + ENTER + "{{ greeting }}" + ENTER + ":quit" + ENTER)
    assert await driver.finish() == 0
    assert driver.output == "6\n'hi 2'\n"


async def test_ctrl_d_exits_zero(driver: Driver) -> None:
    driver.send("extra" + ENTER + CTRL_D)
    assert await driver.finish() == 0
    assert driver.output == "7\n"


async def test_ctrl_c_discards_the_input(driver: Driver) -> None:
    driver.send("undefined_thing" + CTRL_C + "n" + ENTER + CTRL_D)
    assert await driver.finish() == 0
    assert driver.output == "2\n"


async def test_multi_line_input_continues_while_open(driver: Driver) -> None:
    driver.send(":set xs = [1," + ENTER)
    await driver.until(lambda: driver.buffer.text == ":set xs = [1,\n", "a continuation line")
    driver.send("2, 3]" + ENTER + "xs | sum" + ENTER)
    # Esc+Enter submits even an incomplete input (the error is reported, not fatal)
    driver.send("{{ n" + ESC_ENTER + "n" + ENTER + CTRL_D)
    assert await driver.finish() == 0
    out = driver.output
    assert out.startswith("xs =\n[1, 2, 3]\n6\n")
    assert "error: template syntax error" in out and out.endswith("2\n")


async def test_run_answers_the_dependency_question(driver: Driver) -> None:
    driver.send(":run c" + ENTER + "y" + ENTER + "c_out.z" + ENTER + CTRL_D)
    assert await driver.finish() == 0
    out = driver.output
    assert "✔ a Completed" in out and "✔ b Completed" in out and "✔ c Completed" in out
    assert out.endswith("registered as c_out\n50\n")


async def test_run_declined_through_the_prompt(driver: Driver) -> None:
    driver.send(":run b" + ENTER + "n" + ENTER + ":state" + ENTER + CTRL_D)
    assert await driver.finish() == 0
    assert (
        "'b' not run: it needs a" in driver.output and "no registered results yet" in driver.output
    )


async def test_error_recovery_in_one_session(driver: Driver) -> None:
    driver.send("{{ nope }}" + ENTER + ":load /nonexistent.yaml" + ENTER + ":module nosuch" + ENTER)
    driver.send("n + extra" + ENTER + CTRL_D)
    assert await driver.finish() == 0
    lines = driver.output.splitlines()
    assert lines[0].startswith("error: undefined name 'nope'")
    assert lines[1] == "error: playbook not found: /nonexistent.yaml"
    assert lines[2].startswith("error: unknown module 'nosuch'")
    assert lines[3] == "9"


async def test_tab_completes_in_the_prompt(driver: Driver) -> None:
    driver.send("gree")
    await driver.until(
        lambda: (
            driver.buffer.complete_state is not None
            and bool(driver.buffer.complete_state.completions)
        ),
        "completions",
    )
    driver.send(TAB)
    await driver.until(lambda: driver.buffer.text == "greeting", "the completion")
    driver.send(ENTER)  # first Enter accepts the selected completion
    await driver.until(
        lambda: (
            driver.buffer.complete_state is None
            or driver.buffer.complete_state.current_completion is None
        ),
        "menu closed",
    )
    driver.send(ENTER + CTRL_D)
    assert await driver.finish() == 0
    assert driver.output == "'hi 2'\n"


async def test_history_file_is_written(driver: Driver) -> None:
    driver.send("n" + ENTER + ":set q = [1,\n2]" + ESC_ENTER + CTRL_D)
    assert await driver.finish() == 0
    history = driver.history.read_text(encoding="utf-8")
    assert "+n\n" in history and "+:set q = [1,\n+2]\n" in history


async def test_history_is_recalled_with_up(repl, tmp_path: Path) -> None:
    history = tmp_path / "hist"
    history.write_text("\n# 2024-01-01\n+n * 100\n", encoding="utf-8")
    with create_pipe_input() as pipe:
        prompt = build_prompt(repl.repl, history=history, input=pipe, output=DummyOutput())
        pipe.send_text("\x1b[A" + ENTER + CTRL_D)  # Up arrow
        async with asyncio.timeout(20):
            assert await repl_loop(repl.repl, prompt) == 0
    assert repl.buffer.getvalue() == "200\n"


async def test_unwritable_history_falls_back_to_memory(repl, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with create_pipe_input() as pipe:
        prompt = build_prompt(
            repl.repl, history=blocker / "sub" / "hist", input=pipe, output=DummyOutput()
        )
        pipe.send_text("n" + ENTER + CTRL_D)
        async with asyncio.timeout(20):
            assert await repl_loop(repl.repl, prompt) == 0
    out = repl.buffer.getvalue()
    assert "history is kept in memory only" in out and out.endswith("2\n")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_ctrl_c_cancels_a_running_command(driver: Driver) -> None:
    me = psutil.Process()
    # Earlier tests of the session may have left `sleep` zombies reparented to this
    # process (exec makes it a child subreaper): only a new, live `sleep` is ours.
    before = {p.pid for p in me.children(recursive=True)}

    def ours(p: psutil.Process) -> bool:
        try:
            return p.pid not in before and p.name() == "sleep" and p.status() != "zombie"
        except psutil.NoSuchProcess:
            return False

    driver.send(":module exec {command: sleep, args: ['30']}" + ENTER)
    for _ in range(500):
        sleepers = [p for p in me.children(recursive=True) if ours(p)]
        if sleepers:
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the command never started")
    os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does while a command runs
    await driver.until(lambda: "interrupted" in driver.output, "the interruption")
    psutil.wait_procs(sleepers, timeout=5)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in sleepers)
    driver.send("n" + ENTER + CTRL_D)
    assert await driver.finish() == 0
    assert driver.output.endswith("warning: interrupted\n2\n")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_ctrl_c_cancels_a_run_and_records_it(driver: Driver, repl, tmp_path: Path) -> None:
    path = tmp_path / "slow.gxo.yaml"
    path.write_text(
        'schemaVersion: "1.0.0"\nname: slow\nworkloads:\n'
        "  - name: nap\n    process: { module: exec, params: { command: sleep, args: ['30'] } }\n",
        encoding="utf-8",
    )
    driver.send(f":load {path}" + ENTER + ":run nap" + ENTER)
    await driver.until(
        lambda: repl.session.states.get("nap") is not None and "▶ nap Running" in driver.output,
        "nap running",
        prompting=False,
    )
    await asyncio.sleep(0.1)
    os.kill(os.getpid(), signal.SIGINT)
    await driver.until(lambda: "interrupted" in driver.output, "the interruption")
    assert repl.session.states["nap"].status.value == "Failed"
    assert "interrupted" in repl.session.states["nap"].error
    driver.send(":quit" + ENTER)
    assert await driver.finish() == 0


# -- without a terminal, and the entry point ----------------------------------------------


async def test_plain_loop_reads_a_script(repl) -> None:
    script = io.StringIO(":run b\n:set xs = [1,\n  2]\nxs | sum\n{{ nope }}\nb_out.y\n")
    assert await plain_loop(repl.repl, script) == 1  # `{{ nope }}` failed
    out = repl.buffer.getvalue()
    assert "'b' needs a (not run in this session). Run it first? [Y/n] y (the default" in out
    assert "✔ b Completed" in out and "3\n" in out and "undefined name 'nope'" in out
    assert out.endswith("5\n")


async def test_plain_loop_question_takes_the_default_not_the_next_line(repl) -> None:
    # Regression: the [Y/n] question consumed the next script line as its answer.
    script = io.StringIO(":run b\nn * 100\n")
    assert await plain_loop(repl.repl, script) == 0  # nothing failed: exit 0
    out = repl.buffer.getvalue()
    assert "✔ a Completed" in out and "✔ b Completed" in out
    assert out.endswith("200\n")  # the line after :run was evaluated, not taken as an answer


async def test_plain_loop_exits_1_when_a_run_failed(repl) -> None:
    assert await plain_loop(repl.repl, io.StringIO(":run flaky\nn\n")) == 1
    assert "✘ flaky Failed" in repl.buffer.getvalue()


async def test_plain_loop_stops_at_quit_and_runs_a_trailing_input(repl) -> None:
    assert await plain_loop(repl.repl, io.StringIO("n\n:quit\nextra\n")) == 0
    assert repl.buffer.getvalue() == "2\n"
    repl.buffer.truncate(0)
    repl.buffer.seek(0)
    assert await plain_loop(repl.repl, io.StringIO("[1,\n 2")) == 1  # EOF inside a bracket
    assert "error:" in repl.buffer.getvalue()


def test_run_repl_with_a_bad_playbook_still_starts(tmp_path: Path) -> None:
    from rich.console import Console

    buffer = io.StringIO()
    with create_pipe_input() as pipe:
        pipe.send_text("1 + 1" + ENTER + ":quit" + ENTER)
        code = run_repl(
            tmp_path / "missing.yaml",
            variables={},
            history=tmp_path / "h",
            console=Console(file=buffer, color_system=None, soft_wrap=True),
            input=pipe,
            output=DummyOutput(),
        )
    assert code == 0
    out = buffer.getvalue()
    assert (
        out.startswith("error: playbook not found:") and "gxo repl." in out and out.endswith("2\n")
    )
    assert (tmp_path / "h").exists()
