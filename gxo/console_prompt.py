"""``gxo run`` on a terminal: a paused workload asks its question on the terminal.

Fields are guided by ``payload_schema``: an object schema asks one field at a time
(boolean → yes/no, number/integer → a number, ``enum`` → one of the choices, string →
text, anything else → JSON); another schema, or none, asks for the JSON payload. The
payload is validated before the confirmation; ``reject`` fails the workload.

Prompts run in a daemon thread so the event loop keeps running the other branches,
and an abandoned prompt (timeout, Ctrl-C) never keeps the process alive.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape

from gxo.engine.payload_form import coerce_text
from gxo.engine.signals import (
    Announce,
    InvalidPayload,
    PauseRequest,
    Rejected,
    Resolution,
    check_payload,
)

__all__ = ["TerminalBroker", "ask_payload"]


class _Reject(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _field_prompt(
    name: str, spec: Mapping[str, Any], required: bool, ask: Callable[[str], str]
) -> tuple[bool, Any]:
    """(given, value) for one property; ``given`` False when an optional field is left empty."""
    kind = spec.get("type")
    choices = spec.get("enum")
    label = name + ("" if required else " (optional)")
    if spec.get("description"):
        label += f" — {spec['description']}"
    if choices:
        label += f" [{'/'.join(str(c) for c in choices)}]"
    elif kind == "boolean":
        label += " [y/n]"
    elif kind in ("integer", "number"):
        label += f" ({kind})"
    elif kind not in (None, "string"):
        label += " (JSON)"
    while True:
        text = ask(f"{label}: ").strip()
        if text == "":
            if "default" in spec:
                return True, spec["default"]
            if not required:
                return False, None
            print_hint(f"{name} is required")
            continue
        try:
            return True, coerce_text(text, kind, choices)
        except ValueError as exc:
            print_hint(f"{name}: {exc}")


def print_hint(message: str) -> None:
    _HINT[0](message)


_HINT: list[Callable[[str], None]] = [lambda message: None]


def ask_payload(
    request: PauseRequest, ask: Callable[[str], str], say: Callable[[str], None]
) -> Any:
    """Ask until a payload passes the schema and is confirmed; :class:`_Reject` on reject."""
    _HINT[0] = say
    schema = dict(request.schema or {})
    properties = schema.get("properties") if schema.get("type", "object") == "object" else None
    while True:
        if isinstance(properties, dict) and properties:
            required = set(schema.get("required") or ())
            payload: Any = {}
            for name, spec in properties.items():
                given, value = _field_prompt(name, spec or {}, name in required, ask)
                if given:
                    payload[name] = value
        else:
            text = ask("payload (JSON, empty for null): ").strip()
            try:
                payload = json.loads(text) if text else None
            except ValueError as exc:
                say(f"not JSON: {exc}")
                continue
        try:
            check_payload(request.schema, payload)
        except InvalidPayload as exc:
            say(str(exc))
            continue
        answer = ask(f"resume with {json.dumps(payload)}? [y]es / [n]o, ask again / [r]eject: ")
        answer = answer.strip().lower()
        if answer in ("y", "yes"):
            return payload
        if answer in ("r", "reject"):
            reason = ask("reason: ").strip()
            raise _Reject(reason or "rejected on the terminal")


class TerminalBroker:
    """Answers pauses on the terminal, one question at a time."""

    def __init__(
        self, console: Console, *, stdin: TextIO | None = None, identity: str = "terminal"
    ) -> None:
        self.console = console
        self.stdin = stdin
        self.identity = identity
        self._turn = asyncio.Lock()

    def _ask(self, text: str) -> str:
        self.console.print(escape(text), end="")
        line = self.stdin.readline() if self.stdin is not None else input()
        if line == "" and self.stdin is not None:
            raise EOFError
        return line.rstrip("\n")

    def _say(self, text: str) -> None:
        self.console.print(f"[yellow]{escape(text)}[/]")

    async def wait(self, request: PauseRequest, announce: Announce) -> Resolution:
        async with self._turn:  # two paused branches do not ask at once
            announce()
            loop = asyncio.get_running_loop()
            future: asyncio.Future[Any] = loop.create_future()

            def settle(fn: Callable[..., None], *args: Any) -> None:
                if not future.done():
                    fn(*args)

            def body() -> None:
                try:
                    payload = ask_payload(request, self._ask, self._say)
                except BaseException as exc:
                    loop.call_soon_threadsafe(settle, future.set_exception, exc)
                else:
                    loop.call_soon_threadsafe(settle, future.set_result, payload)

            self.console.print(
                f"[bold magenta]⏸ {escape(request.workload)}[/] waits for an answer: "
                f"{escape(request.prompt)}"
            )
            threading.Thread(target=body, name="gxo-prompt", daemon=True).start()
            try:
                async with asyncio.timeout(request.timeout):
                    payload = await future
            except TimeoutError:
                self.console.print(f"[yellow]{escape(request.workload)}: no answer in time[/]")
                return Resolution(None, resumed_by=None, timed_out=True)
            except _Reject as exc:
                raise Rejected(exc.reason, self.identity) from None
            except EOFError:
                raise Rejected("the terminal closed (end of input)", self.identity) from None
            return Resolution(payload, resumed_by=self.identity)
