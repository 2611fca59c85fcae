"""``gxo ctl ...``: one thin function per subcommand.

This module is imported by ``gxo.cli`` at start-up, so it imports only typer;
grpc and the client load inside the commands (``gxo run`` never pays for them).
Exit codes: 0 ok, 1 the daemon answered an error (permission denied included), 2 usage
or invalid playbook, 3 the daemon cannot be reached (a refused TLS handshake included).

The daemon is its unix socket (``--socket``), or ``--server HOST:PORT`` over mutual
TLS with ``--cert``/``--key``/``--ca``, or a named ``--context`` of
``~/.gxo/contexts.yaml`` (:mod:`gxo.ctl.contexts`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["ctl_app"]

ctl_app = typer.Typer(
    name="ctl",
    help="Control a running gxo daemon (apply, status, runs, logs, events, stop, start, "
    "remove, paused, resume, reject).",
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
            help="Daemon socket (default: GXO_SOCKET, $XDG_RUNTIME_DIR/gxo/daemon.sock, "
            "~/.gxo/daemon.sock)",
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option("--server", help="HOST:PORT of a daemon's --listen (mutual TLS)"),
    ] = None,
    cert: Annotated[
        str | None, typer.Option("--cert", help="--server: this client's certificate (PEM)")
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="--server: this client's private key (PEM)")
    ] = None,
    ca: Annotated[
        str | None, typer.Option("--ca", help="--server: CA of the daemon's certificate (PEM)")
    ] = None,
    context: Annotated[
        str | None,
        typer.Option("--context", help="A named daemon of ~/.gxo/contexts.yaml (GXO_CONTEXTS)"),
    ] = None,
) -> None:
    ctx.obj = {
        "socket": socket,
        "server": server,
        "cert": cert,
        "key": key,
        "ca": ca,
        "context": context,
    }


def _connect(obj: dict[str, Any]) -> Any:
    """The client for the global options: a socket, --server with TLS files, --context."""
    from gxo.ctl.client import Client, CtlError, TlsTarget

    server, cert, key, ca = obj.get("server"), obj.get("cert"), obj.get("key"), obj.get("ca")
    socket = obj.get("socket")
    if obj.get("context"):
        from gxo.ctl.contexts import ContextError, load_context

        try:
            found = load_context(obj["context"])
        except ContextError as exc:
            raise CtlError(str(exc), 2) from None
        if not socket and not server and found.socket:
            socket = found.socket
        elif not socket:
            server, cert = server or found.server, cert or found.cert
            key, ca = key or found.key, ca or found.ca
    if server and socket:
        raise CtlError("give --socket or --server, not both", 2)
    if not server:
        stray = [f for f, v in (("--cert", cert), ("--key", key), ("--ca", ca)) if v]
        if stray:
            raise CtlError(f"{', '.join(stray)} only apply with --server HOST:PORT", 2)
        return Client(socket)
    if not cert or not key:
        raise CtlError(
            f"--server {server} needs this client's --cert and --key "
            "(the daemon requires a client certificate: gxo admin pki issue-client)",
            2,
        )
    return Client(tls=TlsTarget(server, cert, key, ca))


def _run(ctx: typer.Context, output: str, body: Callable[[Any, bool], None]) -> None:
    """Connect, run ``body(client, as_json)``, turn errors into messages and exit codes."""
    from gxo.console import err_console, print_error

    if output not in ("table", "json"):
        print_error(err_console(), f"-o/--output must be table or json, not {output!r}")
        raise typer.Exit(2)
    from gxo.ctl.client import CtlError

    client = None
    try:
        client = _connect(ctx.obj or {})
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


# -- paused workloads (control:wait_for_signal) -------------------------------------------

Token = Annotated[
    str, typer.Option("--token", help="The resume token (from the workload_paused event)")
]
Run = Annotated[str, typer.Option("--run", help="Run id of the paused workload (with --workload)")]
Workload = Annotated[
    str,
    typer.Option("--workload", help="WORKLOAD or PLAYBOOK/WORKLOAD (an authorised identity)"),
]


def _selector(token: str, run: str, workload: str) -> dict[str, str]:
    """--token, or --workload (with --run when it paused in several runs): usage errors."""
    from gxo.ctl.client import CtlError

    if token and (run or workload):
        raise CtlError("give --token, or --run/--workload, not both", 2)
    if not token and not workload:
        raise CtlError("give --token T, or --workload NAME (with --run RUN)", 2)
    return {"token": token, "run_id": run, "workload": workload}


@ctl_app.command()
def paused(ctx: typer.Context, output: Output = "table") -> None:
    """Paused workloads waiting for an answer (never their tokens)."""

    def body(client: Any, as_json: bool) -> None:
        from gxo.ctl import render
        from gxo.ctl.client import pb

        reply = client.call("ListPaused", pb.ListPausedRequest())
        render.paused(list(reply.paused), as_json)

    _run(ctx, output, body)


@ctl_app.command()
def resume(
    ctx: typer.Context,
    token: Token = "",
    run: Run = "",
    workload: Workload = "",
    payload: Annotated[str | None, typer.Option("--payload", help="The payload (JSON)")] = None,
    payload_file: Annotated[
        Path | None, typer.Option("--payload-file", help="The payload from a JSON or YAML file")
    ] = None,
    output: Output = "table",
) -> None:
    """Resume a paused workload with a payload, checked against its payload_schema."""
    import json

    from gxo.console import err_console, print_error

    if payload is not None and payload_file is not None:
        print_error(err_console(), "give --payload or --payload-file, not both")
        raise typer.Exit(2)
    text = "null"
    if payload is not None:
        try:
            json.loads(payload)
        except ValueError as exc:
            print_error(err_console(), f"--payload is not JSON: {exc}")
            raise typer.Exit(2) from None
        text = payload
    elif payload_file is not None:
        from gxo.engine.signals import NoAnswer, load_payload_file

        try:
            value = load_payload_file(payload_file)
        except NoAnswer as exc:
            print_error(err_console(), str(exc).replace("--resume-payload-file", "--payload-file"))
            raise typer.Exit(2) from None
        text = json.dumps(value, default=str)

    def body(client: Any, as_json: bool) -> None:
        from gxo.ctl import render
        from gxo.ctl.client import pb

        request = pb.ResumeWorkloadRequest(payload_json=text, **_selector(token, run, workload))
        render.decision(client.call("ResumeWorkload", request), as_json)

    _run(ctx, output, body)


@ctl_app.command()
def reject(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option("--reason", help="Why (the workload fails with it)")],
    token: Token = "",
    run: Run = "",
    workload: Workload = "",
    output: Output = "table",
) -> None:
    """Reject a paused workload: it fails with the reason, what depends on it is skipped."""

    def body(client: Any, as_json: bool) -> None:
        from gxo.ctl import render
        from gxo.ctl.client import pb

        request = pb.RejectWorkloadRequest(reason=reason, **_selector(token, run, workload))
        render.decision(client.call("RejectWorkload", request), as_json)

    _run(ctx, output, body)
