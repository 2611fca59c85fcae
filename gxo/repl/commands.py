"""The REPL's ``:commands``: one async function each, and the table that names them.

A command gets the :class:`~gxo.repl.core.Repl` and the text after its name; it
raises :class:`~gxo.errors.GxoError` for bad input (the core prints it) and
returns False only to end the session.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gxo.errors import GxoError, UsageError

if TYPE_CHECKING:
    from gxo.engine.events import Event
    from gxo.engine.signals import Pending
    from gxo.repl.core import Repl
    from gxo.repl.session import ActiveRun, ReplSession

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
        "ends with \\; Esc+Enter submits; Ctrl-C cancels; Ctrl-D quits."
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
    assert graph is not None  # load_playbook validated it
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
    """``:run WORKLOAD``: the engine run is a task (:meth:`ReplSession.start_run`).

    The command waits for it in the foreground — Ctrl-C cancels it — until it ends or
    one of its workloads pauses (``control:wait_for_signal``). Then the prompt comes
    back while the run goes on in the background: independent branches keep running,
    the paused workload waits for ``:resume`` / ``:reject`` (which wait in the
    foreground again). A watcher task prints each pause once, with how to answer it,
    and the run's outcome when it ends, whenever that happens.
    """
    from gxo.console import ProgressPrinter
    from gxo.engine.events import EventBus

    if not arg or len(arg.split()) != 1:
        raise UsageError("usage: :run WORKLOAD")
    session = repl.session
    session.require_idle()
    plan = session.plan(arg)
    selected = set(plan.base)
    if plan.missing:
        names = ", ".join(plan.missing)
        them = "it" if len(plan.missing) == 1 else "them"
        question = (
            f"'{plan.target}' needs {_why_missing(session, plan.missing)}. Run {them} first? [Y/n] "
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
    active = session.start_run(plan, selected, bus=bus)
    active.watcher = asyncio.create_task(_watch(repl, active), name="gxo-repl:watch")
    await _until_settled(active)


def _why_missing(session: ReplSession, names: list[str]) -> str:
    """``a, b (not run in this session); c (Failed in this session)``: what each lacks."""
    groups: dict[str, list[str]] = {}
    for name in names:
        state = session.states.get(name)
        status = state.status.value if state is not None else "Pending"
        why = "not run in this session" if status == "Pending" else f"{status} in this session"
        groups.setdefault(why, []).append(name)
    return "; ".join(f"{', '.join(group)} ({why})" for why, group in groups.items())


async def _until_settled(active: ActiveRun) -> None:
    """Wait in the foreground until the run ends or waits for an answer; Ctrl-C (the
    command's cancellation) cancels the run, paused workloads included."""
    try:
        await active.settled.wait()
    except asyncio.CancelledError:
        await active.cancel()
        raise


async def _watch(repl: Repl, active: ActiveRun) -> None:
    """Print each pause once, with how to answer it, then the outcome when the run ends."""
    try:
        await _watch_loop(repl, active)
    except Exception as exc:  # a bug here must not leave the prompt waiting forever
        repl.error(f"internal error: {type(exc).__name__}: {exc}")
    finally:
        active.settled.set()


async def _watch_loop(repl: Repl, active: ActiveRun) -> None:
    broker = active.broker
    while True:
        for name, pending in active.open_pauses().items():
            if pending.future not in active.announced:
                active.announced.add(pending.future)
                _announce(repl, name, pending)
        if active.task.done():
            _report_end(repl, active)
            active.settled.set()
            return
        if active.open_pauses():
            active.settled.set()  # the prompt comes back
        broker.changed.clear()
        changed = asyncio.ensure_future(broker.changed.wait())
        try:
            await asyncio.wait({active.task, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()


def _announce(repl: Repl, name: str, pending: Pending) -> None:
    import json

    from rich.markup import escape

    from gxo.engine.payload_form import example_payload, schema_summary

    request = pending.request
    repl.info(
        f"[bold magenta]⏸ {escape(name)}[/] waits for an answer: "
        f"{escape(repl.session.secrets.redact_str(request.prompt))}"
    )
    line = f"  payload: {escape(schema_summary(request.schema, width=200))}"
    if request.timeout is not None:
        line += f"  [dim](timeout {request.timeout:g}s: {request.on_timeout})[/]"
    repl.info(line)
    example = example_payload(request.schema)
    payload = "PAYLOAD" if example is None else json.dumps(example)
    repl.info(
        f"  answer: [bold]:resume {escape(name)} {escape(payload)}[/]"
        f"  or  [bold]:reject {escape(name)} REASON[/]"
    )


def _report_end(repl: Repl, active: ActiveRun) -> None:
    """What ``:run`` prints when its run ends: warnings, the target's summary, its key."""
    from rich.markup import escape

    task = active.task
    if task.cancelled():
        return  # Ctrl-C or the end of the session: "interrupted" is said by the loop
    error = task.exception()
    if isinstance(error, GxoError):
        repl.error(str(error))
        return
    if error is not None:
        repl.error(f"internal error: {type(error).__name__}: {error}")
        return
    session = repl.session
    result = task.result()
    if result.exit_code != 0:
        repl.failures += 1  # a script exits 1 (gxo repl < script)
    loaded_warnings = session.loaded.warnings if session.loaded else []
    for warning in result.warnings:
        if warning not in loaded_warnings:
            repl.warn(warning)
    state = session.states[active.plan.target]
    if state.summary not in (None, {}, []):
        repl.show(state.summary)
    key = state.workload.register_key
    if key and key in session.store:
        repl.info(f"[dim]registered as [bold]{escape(key)}[/][/]")


_NAME_AND_REST = re.compile(r"(\S+)\s*(.*)", re.DOTALL)


def _parse_payload(text: str) -> Any:
    """The payload of ``:resume``: JSON (YAML flow style too); empty means null."""
    import json

    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        error = exc
    from gxo.config.loader import parse_yaml

    try:
        value, _ = parse_yaml(text, "<payload>")
    except GxoError:
        raise UsageError(f"the payload is not JSON: {error}") from None
    return value


async def cmd_resume(repl: Repl, arg: str) -> None:
    from rich.markup import escape

    from gxo.engine.signals import InvalidPayload

    match = _NAME_AND_REST.fullmatch(arg)
    if match is None:
        raise UsageError("usage: :resume WORKLOAD [PAYLOAD as JSON]")
    name, text = match.groups()
    active, _ = repl.session.pause_of(name)
    payload = _parse_payload(text)
    try:
        resolution = active.broker.resume(name, payload, by=repl.session.identity)
    except InvalidPayload as exc:
        raise InvalidPayload(f"{exc} ('{name}' is still paused)") from None
    repl.info(
        f"[green]▶ {escape(name)}[/] resumed [dim]by {escape(resolution.resumed_by or '')}[/]"
    )
    await _carry_on(active)


async def cmd_reject(repl: Repl, arg: str) -> None:
    from rich.markup import escape

    match = _NAME_AND_REST.fullmatch(arg)
    if match is None:
        raise UsageError("usage: :reject WORKLOAD [REASON]")
    name, reason = match.groups()
    active, _ = repl.session.pause_of(name)
    reason = " ".join(reason.split()) or "rejected in gxo repl"
    active.broker.reject(name, reason, by=repl.session.identity)
    repl.info(f"[red]■ {escape(name)}[/] rejected: {escape(reason)}")
    await _carry_on(active)


async def _carry_on(active: ActiveRun) -> None:
    """After an answer: the run continues in the foreground until it ends or waits again."""
    if not active.open_pauses():
        active.settled.clear()
        if active.task.done() and active.watcher is not None:  # already ended
            await active.watcher
            return
    await _until_settled(active)


async def cmd_paused(repl: Repl, arg: str) -> None:
    import time

    from rich.markup import escape
    from rich.table import Table

    from gxo.engine.payload_form import schema_summary

    paused = repl.session.paused()
    if not paused:
        repl.info("[dim]no workload is paused[/]")
        return
    table = Table(box=None, padding=(0, 2))
    for column in ("workload", "prompt", "payload", "waiting", "timeout"):
        table.add_column(column)
    now = time.time()
    for name, pending in paused.items():
        request = pending.request
        table.add_row(
            escape(name),
            escape(repl.session.secrets.redact_str(request.prompt)),
            escape(schema_summary(request.schema)),
            f"{now - pending.since:.0f}s",
            "-" if request.timeout is None else f"{request.timeout:g}s ({request.on_timeout})",
        )
    repl.console.print(table)


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
        "resume",
        ":resume WORKLOAD {payload}",
        "Answer a paused workload of the :run in progress (payload as JSON, checked "
        "against its payload_schema)",
        cmd_resume,
    ),
    Command(
        "reject",
        ":reject WORKLOAD [REASON]",
        "Reject a paused workload: it fails with REASON",
        cmd_reject,
    ),
    Command("paused", ":paused", "List the workloads waiting for an answer", cmd_paused),
    Command(
        "module",
        ":module NAME {params}",
        "Run one module ad hoc, params as YAML or JSON (templates see the session)",
        cmd_module,
    ),
    Command("set", ":set NAME = EXPR", "Evaluate EXPR and store it as variable NAME", cmd_set),
    Command("quit", ":quit", "Leave the REPL (Ctrl-D too)", cmd_quit, ("q", "exit")),
)
