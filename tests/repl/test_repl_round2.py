"""Issue 18 regressions: history search, help text, theme-aware colours."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from gxo.repl.app import build_prompt, repl_loop

ENTER, CTRL_R, CTRL_D = "\r", "\x12", "\x04"


async def test_ctrl_r_enter_accepts_the_match_then_enter_submits(repl, tmp_path: Path) -> None:
    with create_pipe_input() as pipe:
        prompt = build_prompt(
            repl.repl, history=tmp_path / "history", input=pipe, output=DummyOutput()
        )
        task = asyncio.create_task(repl_loop(repl.repl, prompt))
        try:
            pipe.send_text("n * 3" + ENTER + "1 + 1" + ENTER)

            async def until(condition, what: str) -> None:
                for _ in range(500):
                    if prompt.app.is_running and condition():
                        return
                    await asyncio.sleep(0.01)
                raise AssertionError(f"timed out waiting for {what}")

            await until(lambda: repl.buffer.getvalue() == "6\n2\n", "both inputs")
            pipe.send_text(CTRL_R + "n *")
            await until(lambda: prompt.app.current_buffer.text == "n *", "the search text")
            pipe.send_text(ENTER)  # accepts the match: the input holds it, search mode ends
            await until(
                lambda: (
                    prompt.default_buffer.text == "n * 3"
                    and prompt.app.current_buffer is prompt.default_buffer
                ),
                "the accepted match",
            )
            pipe.send_text(ENTER + CTRL_D)
            async with asyncio.timeout(20):
                assert await task == 0
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    assert repl.buffer.getvalue() == "6\n2\n6\n"


async def test_help_shows_one_backslash(repl) -> None:
    out = await repl(":help")
    assert "a line ends with \\;" in out
    assert "\\\\" not in out


def test_prompt_colours_come_from_the_terminal_palette() -> None:
    from prompt_toolkit.styles import Attrs

    from gxo.repl.lexer import prompt_style

    style = prompt_style()
    for token in ("pygments.name.function", "pygments.name.variable", "pygments.keyword"):
        attrs: Attrs = style.get_attrs_for_style_str(f"class:{token}")
        assert attrs.color is not None and attrs.color.startswith("ansi"), token
    # filters and names inherit from their parent token, never a fixed 256-colour blue
    attrs = style.get_attrs_for_style_str("class:pygments.name.function.magic")
    assert attrs.color == "ansigreen"
