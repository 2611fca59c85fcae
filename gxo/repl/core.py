"""The REPL core: one input in, printed output out — no terminal involved.

:class:`Repl` is what the prompt loop (:mod:`gxo.repl.app`) calls for each
submitted input, and what most tests drive directly. Every error — a
:class:`~gxo.errors.GxoError`, a template error, a failed module, even a bug —
is printed and the session goes on. Everything printed passes through the
session's secret redaction first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gxo.errors import GxoError
from gxo.repl.multiline import join_continuations

if TYPE_CHECKING:
    from rich.console import Console

    from gxo.repl.session import ReplSession

__all__ = ["Confirm", "Repl"]

#: asks a yes/no question (``:run`` offering to run missing dependencies)
Confirm = Callable[[str], Awaitable[bool]]


async def _decline(question: str) -> bool:
    return False


class Repl:
    """Evaluates inputs and runs ``:commands`` against a :class:`ReplSession`."""

    def __init__(
        self, session: ReplSession, console: Console, *, confirm: Confirm | None = None
    ) -> None:
        from gxo.repl.commands import COMMANDS

        self.session = session
        self.console = console
        self.confirm: Confirm = confirm or _decline
        self.commands = COMMANDS
        #: inputs that failed (an error printed, a :run whose run failed)
        self.failures = 0

    @property
    def exit_code(self) -> int:
        """What a script (``gxo repl < script``) exits with: 1 when any input failed."""
        return 1 if self.failures else 0

    async def handle(self, text: str) -> bool:
        """Process one submitted input; False means the user asked to quit."""
        text = join_continuations(text).strip()
        if not text:
            return True
        try:
            if text.startswith(":"):
                return await self._command(text)
            self.show(self.session.evaluate(text))
        except GxoError as exc:
            self.error(str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not end the session (and lose its state)
            self.error(f"internal error: {type(exc).__name__}: {exc}")
        return True

    async def _command(self, text: str) -> bool:
        word, _, arg = text[1:].partition(" ")
        if "\n" in word:  # ":module NAME\n  key: value" typed without a space
            word, _, rest = word.partition("\n")
            arg = "\n" + rest + (" " + arg if arg else "")
        command = self.commands.get(word)
        if command is None:
            import difflib

            names = sorted({c.name for c in self.commands.values()})
            close = difflib.get_close_matches(word, names, n=1)
            hint = f" (did you mean ':{close[0]}'?)" if close else ""
            self.error(f"unknown command ':{word}'{hint}; ':help' lists the commands")
            return True
        return await command.handler(self, arg.strip()) is not False

    # -- output ----------------------------------------------------------------------

    def show(self, value: Any) -> None:
        """Pretty-print a value (redacted). Multi-line strings print as text."""
        from rich.pretty import Pretty

        value = self.session.redact(value)
        if isinstance(value, str) and "\n" in value.strip("\n"):
            self.console.print(value, markup=False, highlight=False)
        else:
            self.console.print(Pretty(value))

    def error(self, message: str) -> None:
        from gxo.console import print_error

        self.failures += 1
        print_error(self.console, self.session.secrets.redact_str(message))

    def warn(self, message: str) -> None:
        from gxo.console import print_warnings

        print_warnings(self.console, [self.session.secrets.redact_str(message)])

    def info(self, markup: str) -> None:
        self.console.print(markup)
