"""The REPL's ``:commands``: one async function each, and the table that names them.

A command gets the :class:`~gxo.repl.core.Repl` and the text after its name; it
raises :class:`~gxo.errors.GxoError` for bad input (the core prints it) and
returns False only to end the session.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gxo.errors import UsageError

if TYPE_CHECKING:
    from gxo.engine.events import Event
    from gxo.repl.core import Repl

__all__ = ["COMMANDS", "Command"]

MAX_RECORDS_SHOWN = 20
_MODULE = re.compile(r"(\S+)[ \t]*\n?(.*)", re.DOTALL)
_SET = re.compile(r"([^=\s]+)\s*=\s*(.+)", re.DOTALL)


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    summary: str
    handler: Callable[[Repl, str], Awaitable[bool | None]]
    aliases: tuple[str, ...] = ()


async def cmd_help(repl: Repl, arg: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    if arg:
        command = COMMANDS.get(arg.lstrip(":"))
        if command is None:
            raise UsageError(f"no command ':{arg.lstrip(':')}'; ':help' lists the commands")
        repl.info(f"[bold]{escape(command.usage)}[/]")
        repl.info(escape(command.summary))
        if command.aliases:
            repl.info(f"[dim]also: {', '.join(':' + a for a in command.aliases)}[/]")
        return
    table = Table(show_header=False, box=None, padding=(0, 2))
    for command in _unique_commands():
        table.add_row(f"[bold]{escape(command.usage)}[/]", escape(command.summary))
    repl.console.print(table)
    repl.info(
        "Anything else is an expression: [bold]{{ users | length }}[/] or [bold]users | length[/], "
        "evaluated against vars, -e overrides, registered results and _gxo.\n"
        "Tab completes; Enter continues the input while brackets or {% blocks %} are open or a line "
        "ends with \\\\; Esc+Enter submits; Ctrl-C cancels; Ctrl-D quits."
    )


async def cmd_load(repl: Repl, arg: str) -> None:
    if not arg:
        raise UsageError("usage: :load FILE")
    warnings = repl.session.load(arg)
    for warning in warnings:
        repl.warn(warning)
    _print_loaded(repl)


def _print_loaded(repl: Repl) -> None:
    from rich.markup import escape

    loaded = repl.session.loaded
    assert loaded is not None
    names = repl.session.workload_names
    repl.info(
        f"loaded [bold]{escape(loaded.playbook.name)}[/] from {escape(loaded.source)}: "
        f"{len(names)} workload{'s' if len(names) != 1 else ''} ({escape(', '.join(names))})"
    )


async def cmd_vars(repl: Repl, arg: str) -> None:
    from rich.markup import escape
    from rich.pretty import Pretty
    from rich.table import Table

    session = repl.session
    variables = session.redact(session.variables)
    if not variables:
        repl.info("[dim]no variables (load a playbook, pass -e, or :set name = expr)[/]")
        return
    table = Table(show_header=True, box=None, padding=(0, 2))
    for column in ("name", "value", "from"):
        table.add_column(column)
    for name, value in variables.items():
        source = "-e / :set" if name in session.overrides else "playbook"
        table.add_row(escape(name), Pretty(value), source)
    repl.console.print(table)


async def cmd_state(repl: Repl, arg: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    session = repl.session
    registered = session.store.snapshot()
    if registered:
        repl.info("[bold]registered results[/]")
        repl.show(registered)
    else:
        repl.info("[dim]no registered results yet (:run a workload)[/]")
    if session.loaded is None:
        return
    graph = session.loaded.graph
    table = Table(title="workloads", title_justify="left", box=None, padding=(0, 2))
    for column in ("name", "module", "status", "register", "needs", "note"):
        table.add_column(column)
    for name, state in session.states.items():
        workload = state.workload
        note = state.error or state.reason or ""
        table.add_row(
            escape(name),
            escape(workload.process.module),
            state.status.value,
            escape(workload.register_key or ""),
            escape(", ".join(sorted(graph.all_deps(name)))),
            escape(session.secrets.redact_str(note)),
        )
    repl.console.print(table)


async def cmd_modules(repl: Repl, arg: str) -> None:
    from gxo.modules.reference import print_module, print_module_list

    if arg:
        print_module(arg, console=repl.console)
    else:
        print_module_list(console=repl.console)


async def cmd_run(repl: Repl, arg: str) -> None:
    from rich.markup import escape

    from gxo.console import ProgressPrinter
    from gxo.engine.events import EventBus

    if not arg or len(arg.split()) != 1:
        raise UsageError("usage: :run WORKLOAD")
    session = repl.session
    plan = session.plan(arg)
    selected = set(plan.base)
    if plan.missing:
        names = ", ".join(plan.missing)
        them = "it" if len(plan.missing) == 1 else "them"
        question = (
            f"'{plan.target}' needs {names}, not run in this session. Run {them} first? [Y/n] "
        )
        if not await repl.confirm(question):
            repl.warn(f"'{plan.target}' not run: it needs {names}")
            return
        selected |= set(plan.missing)

    printer = ProgressPrinter(repl.console, verbose=True)

    def progress(event: Event) -> None:
        if event.workload is None or event.workload in selected:
            printer(event)

    bus = EventBus()
    bus.add_listener(progress)
    result = await session.run_workloads(selected, bus=bus)
    loaded_warnings = session.loaded.warnings if session.loaded else []
    for warning in result.warnings:
        if warning not in loaded_warnings:
            repl.warn(warning)
    state = session.states[plan.target]
    if state.summary not in (None, {}, []):
        repl.show(state.summary)
    key = state.workload.register_key
    if key and key in session.store:
        repl.info(f"[dim]registered as [bold]{escape(key)}[/][/]")


async def cmd_module(repl: Repl, arg: str) -> None:
    from rich.markup import escape

    from gxo.config.loader import parse_yaml
    from gxo.modules.base import REGISTRY

    if not arg:
        raise UsageError("usage: :module NAME {params as YAML or JSON}")
    match = _MODULE.fullmatch(arg)
    assert match is not None  # arg is non-empty and stripped
    name, text = match.group(1), textwrap.dedent(match.group(2))  # block YAML may be indented
    spec, deprecation = REGISTRY.resolve(name)
    if spec is None:
        hint = REGISTRY.suggest(name)
        suffix = f" (did you mean {' or '.join(hint)}?)" if hint else "; ':modules' lists them"
        raise UsageError(f"unknown module '{name}'{suffix}")
    if deprecation:
        repl.warn(deprecation)
    params, _ = parse_yaml(text, "<params>") if text.strip() else ({}, None)
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise UsageError(
            f"module params must be a mapping like {{key: value}}, got {type(params).__name__}"
        )
    outcome = await repl.session.run_module(spec.name, params)
    redact = repl.session.redact
    for stream, line in outcome.logs:
        style = "red" if stream == "stderr" else "dim"
        repl.info(f"[{style}]{escape(stream)} | {escape(str(redact(line)))}[/]")
    if outcome.records:
        shown = outcome.records[:MAX_RECORDS_SHOWN]
        more = len(outcome.records) - len(shown)
        repl.info(f"[bold]records[/] ({len(outcome.records)})")
        repl.show(shown)
        if more:
            repl.info(f"[dim]… and {more} more[/]")
    if outcome.summary not in (None, {}) or outcome.ok:
        repl.show(outcome.summary)
    if outcome.ok:
        repl.info(f"[green]✔ {escape(spec.name)}[/] [dim]Completed[/]")
    else:
        repl.error(f"{spec.name} {outcome.status}: {outcome.error or outcome.state.reason or ''}")


async def cmd_set(repl: Repl, arg: str) -> None:
    from rich.markup import escape

    match = _SET.fullmatch(arg)
    if match is None:
        raise UsageError("usage: :set NAME = EXPRESSION")
    name, expression = match.groups()
    value = repl.session.set_variable(name, expression)
    repl.info(f"[bold]{escape(name)}[/] =")
    repl.show(value)
    session = repl.session
    if name in session.store or name in session.declared_registers():
        repl.warn(f"'{name}' is also a register key: the registered result wins over the variable")


async def cmd_quit(repl: Repl, arg: str) -> bool:
    return False


def _table(*commands: Command) -> dict[str, Command]:
    table: dict[str, Command] = {}
    for command in commands:
        for key in (command.name, *command.aliases):
            table[key] = command
    return table


def _unique_commands() -> list[Command]:
    return list({id(c): c for c in COMMANDS.values()}.values())


COMMANDS: dict[str, Command] = _table(
    Command("help", ":help [COMMAND]", "List the commands, or explain one", cmd_help, ("h", "?")),
    Command("load", ":load FILE", "Load a playbook (clears registered results)", cmd_load),
    Command(
        "vars", ":vars", "Show the variables: playbook vars, -e overrides, :set values", cmd_vars
    ),
    Command("state", ":state", "Show registered results and each workload's status", cmd_state),
    Command(
        "modules",
        ":modules [NAME]",
        "List modules by layer, or show one module's params",
        cmd_modules,
    ),
    Command(
        "run",
        ":run WORKLOAD",
        "Run one workload; dependencies' results come from this session (offers to run missing ones)",
        cmd_run,
    ),
    Command(
        "module",
        ":module NAME {params}",
        "Run one module ad hoc, params as YAML or JSON (templates see the session)",
        cmd_module,
    ),
    Command("set", ":set NAME = EXPR", "Evaluate EXPR and store it as variable NAME", cmd_set),
    Command("quit", ":quit", "Leave the REPL (Ctrl-D too)", cmd_quit, ("q", "exit")),
)
