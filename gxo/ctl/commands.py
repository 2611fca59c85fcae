"""``gxo ctl ...``: one thin function per subcommand.

This module is imported by ``gxo.cli`` at start-up, so it imports only typer;
grpc and the client load inside the commands (``gxo run`` never pays for them).
Exit codes: 0 ok, 1 the daemon answered an error, 2 usage or invalid playbook,
3 the daemon cannot be reached.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["ctl_app"]

ctl_app = typer.Typer(
    name="ctl",
    help="Control a running gxo daemon (apply, status, runs, logs, events, stop, start, remove).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

Output = Annotated[str, typer.Option("--output", "-o", help="table (default) or json")]
Name = Annotated[str, typer.Argument(help="WORKLOAD or PLAYBOOK/WORKLOAD")]


@ctl_app.callback()
def _ctl(
    ctx: typer.Context,
    socket: Annotated[
        str | None,
        typer.Option(
            "--socket",
            help="Daemon socket (default: GXO_SOCKET, $XDG_RUNTIME_DIR/gxo/daemon.sock, ~/.gxo/daemon.sock)",
        ),
    ] = None,
) -> None:
    ctx.obj = {"socket": socket}


def _run(ctx: typer.Context, output: str, body: Callable[[Any, bool], None]) -> None:
    """Connect, run ``body(client, as_json)``, turn errors into messages and exit codes."""
    from gxo.console import err_console, print_error

    if output not in ("table", "json"):
        print_error(err_console(), f"-o/--output must be table or json, not {output!r}")
        raise typer.Exit(2)
    from gxo.ctl.client import Client, CtlError

    client = None
    try:
        client = Client(ctx.obj.get("socket") if ctx.obj else None)
        body(client, output == "json")
    except CtlError as exc:
        print_error(err_console(), exc.message)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    finally:
        if client is not None:
            client.close()


@ctl_app.command()
def apply(
    ctx: typer.Context,
    file: Annotated[Path, typer.Option("--file", "-f", help="Playbook file to apply")],
    extra_vars: Annotated[
        list[str] | None, typer.Option("--extra-vars", "-e", help="key=value (repeatable)")
    ] = None,
    output: Output = "table",
) -> None:
    """Validate and register (or replace) a playbook; prints what changed."""
    from gxo.config.loader import read_playbook_text
    from gxo.config.variables import parse_extra_vars
    from gxo.console import err_console, print_error
    from gxo.errors import GxoError

    try:
        source = read_playbook_text(file)
        variables = parse_extra_vars(extra_vars)
    except GxoError as exc:
        print_error(err_console(), str(exc))
        raise typer.Exit(2) from None

    def body(client: Any, as_json: bool) -> None:
        from gxo.ctl import render

        reply = client.apply(source, str(file.resolve()), variables)
        render.apply(reply, as_json)

    _run(ctx, output, body)


@ctl_app.command()
def status(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="WORKLOAD, PLAYBOOK/WORKLOAD or PLAYBOOK (default: all)")
    ] = None,
    output: Output = "table",
) -> None:
    """Workload statuses: all, one playbook's, or one workload's."""

    def body(client: Any, as_json: bool) -> None:
        from gxo.ctl import render
        from gxo.ctl.client import CtlError, pb

        if name is None:
            rows = list(client.call("ListWorkloads", pb.ListWorkloadsRequest()).workloads)
        else:
            try:
                rows = [client.call("GetWorkloadStatus", pb.GetWorkloadStatusRequest(name=name))]
            except CtlError as exc:  # not a workload: maybe a playbook
                try:
                    reply = client.call("ListWorkloads", pb.ListWorkloadsRequest(playbook=name))
                except CtlError:
                    raise exc from None
                rows = list(reply.workloads)
        render.statuses(rows, as_json)

    _run(ctx, output, body)


@ctl_app.command()
def runs(
    ctx: typer.Context,
    name: Name,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Newest N runs")] = 50,
    output: Output = "table",
) -> None:
    """A workload's run history, newest first."""

    def body(client: Any, as_json: bool) -> None:
        from gxo.ctl import render
        from gxo.ctl.client import pb

        reply = client.call("ListRuns", pb.ListRunsRequest(name=name, limit=limit))
        render.runs(list(reply.runs), as_json)

    _run(ctx, output, body)


@ctl_app.command()
def logs(
    ctx: typer.Context,
    name: Name,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines")] = False,
    tail: Annotated[int, typer.Option("--tail", min=0, help="Last N lines first")] = 100,
    output: Output = "table",
) -> None:
    """A workload's log lines (the daemon keeps the last 1,000 per workload)."""

    def body(client: Any, as_json: bool) -> None:
        from gxo.ctl import render
        from gxo.ctl.client import pb

        request = pb.GetLogsRequest(name=name, tail=tail if tail else -1, follow=follow)
        for line in client.stream("GetLogs", request):
            render.log_line(line, as_json)

    _run(ctx, output, body)


@ctl_app.command()
def events(
    ctx: typer.Context,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events")
    ] = False,
    playbook: Annotated[str, typer.Option("--playbook", help="Only this playbook's")] = "",
    workload: Annotated[str, typer.Option("--workload", help="Only this workload's")] = "",
    tail: Annotated[int, typer.Option("--tail", min=0, help="Last N events first")] = 200,
    output: Output = "table",
) -> None:
    """The engine's events (redacted): the recent ones, then live ones with -f."""

    def body(client: Any, as_json: bool) -> None:
        from gxo.ctl import render
        from gxo.ctl.client import pb

        request = pb.StreamEventsRequest(
            playbook=playbook, workload=workload, follow=follow, tail=tail if tail else -1
        )
        for event in client.stream("StreamEvents", request):
            render.event(event, as_json)

    _run(ctx, output, body)


def _action(ctx: typer.Context, method: str, name: str, output: str) -> None:
    def body(client: Any, as_json: bool) -> None:
        from gxo.ctl import render
        from gxo.ctl.client import pb

        reply = client.call(method, pb.WorkloadRequest(name=name))
        render.action(reply, as_json)

    _run(ctx, output, body)


@ctl_app.command()
def stop(ctx: typer.Context, name: Name, output: Output = "table") -> None:
    """Stop a workload (cancel its instance or its reconciler)."""
    _action(ctx, "StopWorkload", name, output)


@ctl_app.command()
def start(ctx: typer.Context, name: Name, output: Output = "table") -> None:
    """Start a workload again (a run_once workload runs once more)."""
    _action(ctx, "StartWorkload", name, output)


@ctl_app.command()
def remove(
    ctx: typer.Context,
    playbook: Annotated[str, typer.Argument(help="Playbook name")],
    output: Output = "table",
) -> None:
    """Remove an applied playbook: its workloads stop, its state and history are deleted."""

    def body(client: Any, as_json: bool) -> None:
        from gxo.ctl import render
        from gxo.ctl.client import pb

        reply = client.call("RemovePlaybook", pb.RemovePlaybookRequest(playbook=playbook))
        render.removed(reply, as_json)

    _run(ctx, output, body)
