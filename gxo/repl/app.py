"""The interactive loop: a prompt_toolkit ``PromptSession`` around :class:`Repl`.

Enter submits a complete input and continues an incomplete one (open brackets,
an open ``{% block %}``, a trailing backslash); Esc+Enter always submits. Ctrl-C
clears the input at the prompt and cancels a running command (a ``:run`` is
cancelled cleanly, its child processes killed); Ctrl-D or ``:quit`` leave with
exit code 0.

Without a terminal (``gxo repl < script``) the same inputs are read line by line
and nothing prompt-related is drawn, so a session can be scripted.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.filters import is_searching
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.patch_stdout import patch_stdout
from rich.markup import escape

from gxo.errors import GxoError
from gxo.repl.completion import ReplCompleter
from gxo.repl.core import Repl
from gxo.repl.lexer import prompt_lexer, prompt_style
from gxo.repl.multiline import is_complete
from gxo.repl.session import ReplSession

if TYPE_CHECKING:
    from prompt_toolkit.input import Input
    from prompt_toolkit.output import Output
    from rich.console import Console

__all__ = ["DEFAULT_HISTORY", "build_prompt", "plain_loop", "repl_loop", "run_repl"]

DEFAULT_HISTORY = "~/.gxo_history"
PROMPT = "gxo> "
CONTINUATION = "...  "


def _key_bindings() -> KeyBindings:
    bindings = KeyBindings()

    # Not while Ctrl-R searches history: there enter accepts the match (prompt_toolkit's
    # own binding), it must not submit or clear the input.
    @bindings.add("enter", filter=~is_searching)
    def _enter(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        state = buffer.complete_state
        if state is not None and state.current_completion is not None:
            buffer.apply_completion(state.current_completion)
        elif is_complete(buffer.text):
            buffer.validate_and_handle()
        else:
            buffer.insert_text("\n")

    @bindings.add("escape", "enter", filter=~is_searching)
    def _submit(event: KeyPressEvent) -> None:
        event.current_buffer.validate_and_handle()

    return bindings


def _history(path: Path | None, repl: Repl) -> History:
    if path is None:
        return InMemoryHistory()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    except OSError as exc:
        repl.warn(
            f"history file {path} is not writable ({exc.strerror}); history is kept in memory only"
        )
        return InMemoryHistory()
    return FileHistory(str(path))


def build_prompt(
    repl: Repl,
    *,
    history: Path | None = None,
    input: Input | None = None,
    output: Output | None = None,
) -> PromptSession[str]:
    """The prompt: highlighting, completion, history, multi-line input."""
    return PromptSession(
        message=PROMPT,
        multiline=True,
        prompt_continuation=lambda width, line_number, wrap_count: CONTINUATION.rjust(width),
        history=_history(history, repl),
        auto_suggest=AutoSuggestFromHistory(),
        completer=ReplCompleter(repl.session, repl.commands),
        complete_while_typing=True,
        lexer=prompt_lexer(),
        style=prompt_style(),
        include_default_pygments_style=False,
        key_bindings=_key_bindings(),
        enable_open_in_editor=False,
        input=input,
        output=output,
    )


async def repl_loop(repl: Repl, prompt: PromptSession[str]) -> int:
    """Read, evaluate, print until Ctrl-D or ``:quit``; returns the exit code (0)."""
    confirm_prompt: PromptSession[str] = PromptSession(input=prompt.input, output=prompt.output)

    async def confirm(question: str) -> bool:
        try:
            answer = await confirm_prompt.prompt_async(question)
        except (EOFError, KeyboardInterrupt):
            return False
        return answer.strip().lower() in ("", "y", "yes")

    repl.confirm = confirm
    # A paused :run goes on in the background: what it prints while the prompt is
    # shown goes above the prompt instead of through it.
    with patch_stdout(raw=True):
        try:
            while True:
                try:
                    text = await prompt.prompt_async()
                except KeyboardInterrupt:
                    continue  # Ctrl-C at the prompt discards the input
                except EOFError:
                    return 0
                if not await _interruptible(repl, repl.handle(text)):
                    return 0
        finally:
            await repl.session.close()  # a run still paused is cancelled cleanly


async def _interruptible(repl: Repl, work: Awaitable[bool]) -> bool:
    """Run one command; Ctrl-C (SIGINT) cancels it instead of ending the REPL."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    installed = False
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
        loop.add_signal_handler(signal.SIGINT, task.cancel)
        installed = True
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the REPL itself is being cancelled
        repl.warn("interrupted")
        return True
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGINT)


async def plain_loop(repl: Repl, stream: TextIO) -> int:
    """The loop without a terminal (``gxo repl < script``): one input per complete line.

    Lines are joined while the input is incomplete, as at the prompt. A ``:run``
    question takes its default answer (yes) without reading: the next line of the
    script is the next input, never an answer. Returns 1 when any input failed
    (an error printed, a run that failed), else 0 — so a script can be checked.
    """

    async def read_line() -> str:
        return await _read_line(stream)

    async def confirm(question: str) -> bool:
        repl.info(escape(question) + "[dim]y (the default: no terminal to ask)[/]")
        return True

    repl.confirm = confirm
    pending = ""
    try:
        while line := await read_line():
            pending += line
            if not is_complete(pending.rstrip("\n")):
                continue
            text, pending = pending.rstrip("\n"), ""
            if not await _interruptible(repl, repl.handle(text)):
                return repl.exit_code
        if pending.strip():
            await _interruptible(repl, repl.handle(pending))
        return repl.exit_code
    finally:
        await repl.session.close()  # a run still paused at the end of the script


async def _read_line(stream: TextIO) -> str:
    """``stream.readline()`` in a daemon thread: a blocked read never delays exit (Ctrl-C)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def deliver(line: str | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(line or "")

    def read() -> None:
        try:
            line, error = stream.readline(), None
        except Exception as exc:
            line, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed while we were reading
            loop.call_soon_threadsafe(deliver, line, error)

    threading.Thread(target=read, name="gxo-repl-stdin", daemon=True).start()
    return await future


def _banner(repl: Repl) -> None:
    loaded = repl.session.loaded
    where = f" — playbook '{loaded.playbook.name}'" if loaded else ""
    repl.info(
        f"[bold]gxo repl[/]{where}. [dim]:help lists commands, Tab completes, Ctrl-D quits.[/]"
    )


def run_repl(
    playbook: Path | None,
    *,
    variables: dict[str, Any],
    history: Path | None = None,
    console: Console | None = None,
    input: Input | None = None,
    output: Output | None = None,
) -> int:
    """The body of ``gxo repl``; returns the exit code."""
    from rich.console import Console

    repl = Repl(ReplSession(variables), console or Console(highlight=False, soft_wrap=True))
    if playbook is not None:
        try:
            for warning in repl.session.load(playbook):
                repl.warn(warning)
        except GxoError as exc:  # shown, and the REPL starts without a playbook
            repl.error(str(exc))
            repl.failures = 0  # not an input of the session: a script's exit code ignores it
    if input is None and not sys.stdin.isatty():
        return asyncio.run(plain_loop(repl, sys.stdin))
    _banner(repl)
    history_path = (history or Path(DEFAULT_HISTORY)).expanduser()
    prompt = build_prompt(repl, history=history_path, input=input, output=output)
    return asyncio.run(repl_loop(repl, prompt))
