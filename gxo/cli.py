"""The ``gxo`` command line: one thin function per command.

Commands import what they need when they run, so ``gxo --help`` stays fast and
never loads Textual, prompt-toolkit, httpx or networkx.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from gxo.errors import GxoError, UsageError

app = typer.Typer(
    name="gxo",
    help="GXO: a declarative automation kernel. Run YAML playbooks of workloads as a DAG.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ExtraVars = Annotated[
    list[str] | None,
    typer.Option(
        "--extra-vars",
        "-e",
        help="Variable override key=value, @file.yaml or a JSON object (repeatable)",
    ),
]
VarsFile = Annotated[Path | None, typer.Option("--vars-file", help="YAML/JSON file of variables")]
Report = Annotated[
    Path | None,
    typer.Option("--report", help="Write the JSON run report here ('-': stdout)"),
]
Concurrency = Annotated[
    int | None,
    typer.Option(
        "--concurrency",
        "-c",
        min=1,
        help="Workloads or loop iterations at a time (default: CPUs × 4)",
    ),
]
Workspace = Annotated[
    str | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Directory relative paths resolve against; 'temp' for a throw-away one",
    ),
]


def _fail(exc: GxoError) -> None:
    from gxo.console import err_console, print_error, print_warnings

    console = err_console()
    print_warnings(console, exc.warnings)
    print_error(console, str(exc))
    raise typer.Exit(exc.exit_code)


def _check_report(report: Path | None) -> None:
    """A report path that cannot be written is a usage error before the run, not a
    traceback after it."""
    if report is not None:
        from gxo.engine.report import report_target

        report_target(report)


def _variables(extra: list[str] | None, vars_file: Path | None) -> dict:
    from gxo.config.variables import load_vars_file, parse_extra_vars

    merged = load_vars_file(vars_file) if vars_file else {}
    merged.update(parse_extra_vars(extra))
    return merged


@app.command()
def run(
    playbook: Annotated[Path, typer.Argument(help="Playbook file (*.gxo.yaml)")],
    extra_vars: ExtraVars = None,
    vars_file: VarsFile = None,
    report: Report = None,
    concurrency: Concurrency = None,
    workspace: Workspace = None,
    confine: Annotated[
        bool,
        typer.Option(
            "--confine",
            help="Refuse path params outside the workspace and --allow-path dirs "
            "(as the daemon does; docs/confinement.md)",
        ),
    ] = False,
    allow_path: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-path",
            metavar="DIR",
            help="With --confine (implied): a directory path params may also reach (repeatable)",
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show each workload's output and summary")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the final line")] = False,
    resume_payload_file: Annotated[
        Path | None,
        typer.Option(
            "--resume-payload-file",
            help="Answer control:wait_for_signal from this JSON/YAML file (no terminal needed)",
        ),
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            help="Keep registered results between runs in this encrypted store "
            "(sqlite:///PATH or postgresql://...; default: memory only)",
        ),
    ] = None,
    state_key_file: Annotated[
        str | None,
        typer.Option(
            "--state-key-file",
            help="Key of the --state store (mode 0600; default ~/.gxo/state.key)",
        ),
    ] = None,
    state_key_cmd: Annotated[
        str | None,
        typer.Option("--state-key-cmd", help="Command printing the --state store's key"),
    ] = None,
) -> None:
    """Run a playbook headless. Exit 0 success, 1 a workload failed, 2 invalid, 130 interrupted."""
    from gxo.runtime import run_headless

    try:
        _check_report(report)
        code = run_headless(
            playbook,
            variables=_variables(extra_vars, vars_file),
            report=report,
            concurrency=concurrency,
            workspace=workspace,
            confine=confine or bool(allow_path),
            allow_paths=allow_path or (),
            verbose=verbose,
            quiet=quiet,
            resume_payload_file=resume_payload_file,
            state=state,
            state_key_file=state_key_file,
            state_key_cmd=state_key_cmd,
        )
    except GxoError as exc:
        _fail(exc)
    raise typer.Exit(code)


# `gxo validate` of this many workloads or more ends with os._exit (see validate).
_QUICK_EXIT_WORKLOADS = 500
_PROCESS = {"entry": False}  # set by main(): the process is the command, not a host


@app.command()
def validate(
    playbooks: Annotated[list[Path], typer.Argument(help="Playbook files")],
    extra_vars: ExtraVars = None,
    vars_file: VarsFile = None,
    graph: Annotated[
        bool,
        typer.Option(
            "--graph", help="Also print the dependency graph: levels, pipelines, critical path"
        ),
    ] = False,
) -> None:
    """Load and validate playbooks without running them. Exit 0 valid, 2 invalid."""
    from gxo.config.loader import load_playbook
    from gxo.console import err_console, print_error, print_warnings

    console = err_console()
    try:
        names = set(_variables(extra_vars, vars_file))
    except GxoError as exc:
        _fail(exc)
    from gxo.testing.discovery import TEST_VAR, is_test_file

    bad = total = 0
    for path in playbooks:
        try:
            known = names | {TEST_VAR} if is_test_file(path) else names
            loaded = load_playbook(path, extra_names=known)
        except GxoError as exc:
            bad += 1
            print_warnings(console, exc.warnings)
            print_error(console, str(exc))
            continue
        print_warnings(console, loaded.warnings)
        n = len(loaded.playbook.workloads)
        total += n
        typer.echo(f"ok: {path} ({loaded.playbook.name}, {n} workload{'s' if n != 1 else ''})")
        if graph:
            for line in loaded.graph.describe() if loaded.graph else []:
                typer.echo(line)
    if total >= _QUICK_EXIT_WORKLOADS and _PROCESS["entry"]:
        # Nothing is left to do but free the heap (~17 KB a workload, ~15 µs a workload
        # at 10,000): all output is written, so flush it and leave without the teardown.
        # Only from main() — never inside a test's CliRunner or an embedding program.
        import os

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2 if bad else 0)
    raise typer.Exit(2 if bad else 0)


@app.command()
def migrate(
    file: Annotated[Path, typer.Option("--file", "-f", help="Legacy (v0.1.2a) playbook")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the result here instead of stdout")
    ] = None,
    in_place: Annotated[bool, typer.Option("--in-place", help="Rewrite FILE itself")] = False,
) -> None:
    """Convert a legacy playbook to schemaVersion 1.0.0, keeping comments and key order."""
    if output is not None and in_place:
        _fail(UsageError("use either --output or --in-place, not both"))
    from gxo.config.migrate import migrate_file
    from gxo.console import err_console, print_warnings

    try:
        text, warnings = migrate_file(file)
    except GxoError as exc:
        _fail(exc)
    print_warnings(err_console(), warnings)
    target = file if in_place else output
    if target is None:
        sys.stdout.write(text)
        return
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(UsageError(f"cannot write {target}: {exc.strerror}"))


@app.command("test")
def test_cmd(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or directories (default: .)")
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Show each workload's status, duration and output"),
    ] = False,
    run: Annotated[
        str | None,
        typer.Option(
            "--run", help="Only test files whose path or playbook name matches this regex"
        ),
    ] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here")] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Re-run affected tests when files change")
    ] = False,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, help="Test files run in parallel")
    ] = 1,
) -> None:
    """Run playbook tests (*.test.gxo.yaml). Exit 0 all pass, 1 a test failed, 2 usage/no tests."""
    from gxo.testing.runner import main as test_main

    try:
        code = test_main(
            paths or [Path(".")], verbose=verbose, run=run, junit=junit, watch=watch, jobs=jobs
        )
    except GxoError as exc:
        _fail(exc)
    raise typer.Exit(code)


@app.command()
def ui(
    playbook: Annotated[
        Path | None, typer.Argument(help="Playbook file (with --attach: the daemon's socket)")
    ] = None,
    extra_vars: ExtraVars = None,
    vars_file: VarsFile = None,
    report: Report = None,
    concurrency: Concurrency = None,
    workspace: Workspace = None,
    attach: Annotated[
        bool,
        typer.Option(
            "--attach",
            help="Show a running daemon's workloads instead: gxo ui --attach [SOCKET]",
        ),
    ] = False,
) -> None:
    """Run a playbook in the live terminal UI (Textual), or attach to a daemon."""
    if attach:  # `--attach [SOCKET]`: the optional socket is the positional argument
        from gxo.tui.attach import run_attach

        raise typer.Exit(run_attach(str(playbook) if playbook is not None else None))
    if playbook is None:
        _fail(UsageError("missing PLAYBOOK (or --attach [SOCKET] to watch a daemon)"))
    from gxo.tui import run_ui

    try:
        if report is not None and str(report) == "-":
            raise UsageError("--report -: the terminal UI owns stdout; give a file name")
        _check_report(report)
        code = run_ui(
            playbook,
            variables=_variables(extra_vars, vars_file),
            report=report,
            concurrency=concurrency,
            workspace=workspace,
        )
    except GxoError as exc:
        _fail(exc)
    raise typer.Exit(code)


@app.command()
def repl(
    playbook: Annotated[Path | None, typer.Argument(help="Playbook to load")] = None,
    extra_vars: ExtraVars = None,
    vars_file: VarsFile = None,
    history: Annotated[
        Path | None, typer.Option("--history", help="History file (default: ~/.gxo_history)")
    ] = None,
) -> None:
    """Interactive REPL: evaluate templates, inspect state, run workloads and modules."""
    from gxo.repl import run_repl

    try:
        code = run_repl(playbook, variables=_variables(extra_vars, vars_file), history=history)
    except GxoError as exc:
        _fail(exc)
    raise typer.Exit(code)


@app.command()
def schema() -> None:
    """Print the playbook JSON Schema (v1.0.0)."""
    from gxo.config.schema import schema_text

    sys.stdout.write(schema_text())


@app.command()
def modules(
    name: Annotated[
        str | None, typer.Argument(help="Show this module's parameters and example")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """List modules by layer, or show one module's parameters."""
    from gxo.modules.reference import print_module, print_module_list

    try:
        print_module_list(as_json=as_json) if name is None else print_module(name, as_json=as_json)
    except GxoError as exc:
        _fail(exc)


@app.command()
def daemon(
    socket: Annotated[
        str | None,
        typer.Option(
            "--socket",
            help="Unix socket (default: GXO_SOCKET, $XDG_RUNTIME_DIR/gxo/daemon.sock, ~/.gxo/daemon.sock)",
        ),
    ] = None,
    state: Annotated[
        str, typer.Option("--state", help="State store: sqlite:///PATH or postgresql://...")
    ] = "sqlite:///~/.gxo/state.db",
    listen: Annotated[
        str | None, typer.Option("--listen", help="HOST:PORT: TCP with mutual TLS 1.3")
    ] = None,
    grace: Annotated[
        str, typer.Option("--grace", help="On SIGTERM: time instances get to stop (e.g. 10s)")
    ] = "10s",
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug|info|warning|error")
    ] = "info",
    log_format: Annotated[str, typer.Option("--log-format", help="text or json")] = "text",
    history: Annotated[
        int,
        typer.Option("--history", min=1, help="Runs kept per workload in the state's history"),
    ] = 100,
    fleet: Annotated[
        str | None,
        typer.Option("--fleet", help="Join fleet NAME: daemons sharing one postgresql:// state"),
    ] = None,
    member: Annotated[
        str | None,
        typer.Option("--member", help="This member's id (default: hostname-pid-random)"),
    ] = None,
    lease_ttl: Annotated[
        str, typer.Option("--lease-ttl", help="Fleet: supervise lease lifetime (e.g. 10s)")
    ] = "10s",
    tls_cert: Annotated[
        str | None, typer.Option("--tls-cert", help="--listen: server certificate (PEM)")
    ] = None,
    tls_key: Annotated[
        str | None, typer.Option("--tls-key", help="--listen: server private key (PEM)")
    ] = None,
    client_ca: Annotated[
        str | None,
        typer.Option("--client-ca", help="--listen: CA bundle client certs must chain to"),
    ] = None,
    tls_dir: Annotated[
        str | None,
        typer.Option("--tls-dir", help="--listen: DIR with server.pem, server-key.pem, ca.pem"),
    ] = None,
    client_allowlist: Annotated[
        str | None,
        typer.Option(
            "--client-allowlist", help="--listen: file of allowed client cert SHA-256 fingerprints"
        ),
    ] = None,
    rbac: Annotated[
        str | None, typer.Option("--rbac", help="RBAC policy (YAML): subjects -> roles -> methods")
    ] = None,
    audit_log: Annotated[
        str | None,
        typer.Option("--audit-log", help="Append every RPC decision as a JSON line here"),
    ] = None,
    local_identity: Annotated[
        str, typer.Option("--local-identity", help="Identity of unix-socket clients")
    ] = "local-admin",
    state_key_file: Annotated[
        str | None, typer.Option("--state-key-file", help="Key of the encrypted state (mode 0600)")
    ] = None,
    state_key_cmd: Annotated[
        str | None, typer.Option("--state-key-cmd", help="Command printing the state key on stdout")
    ] = None,
    http: Annotated[
        str | None, typer.Option("--http", help="HOST:PORT of the listener for webhook: sources")
    ] = None,
    allow_path: Annotated[
        list[str] | None,
        typer.Option("--allow-path", help="A directory daemon playbooks may reach (repeatable)"),
    ] = None,
) -> None:
    """Run the long-running kernel: gRPC control plane (gxo.daemon.v1) on a unix socket."""
    from gxo.config.durations import parse_duration
    from gxo.daemon.options import DaemonOptions
    from gxo.daemon.server import run_daemon  # grpc loads here, never on `gxo run`

    try:
        grace_s = parse_duration(grace)
    except (GxoError, ValueError) as exc:
        _fail(UsageError(f"--grace {grace!r}: {exc}"))
    try:
        lease_ttl_s = parse_duration(lease_ttl)
    except (GxoError, ValueError) as exc:
        _fail(UsageError(f"--lease-ttl {lease_ttl!r}: {exc}"))
    if lease_ttl_s <= 0:
        _fail(UsageError(f"--lease-ttl {lease_ttl!r}: must be more than 0"))
    options = DaemonOptions(
        socket=socket,
        state=state,
        listen=listen,
        grace=grace_s,
        log_level=log_level,
        log_format=log_format,
        history=history,
        fleet=fleet,
        member=member,
        lease_ttl=lease_ttl_s,
        tls_cert=tls_cert,
        tls_key=tls_key,
        client_ca=client_ca,
        tls_dir=tls_dir,
        client_allowlist=client_allowlist,
        rbac=rbac,
        audit_log=audit_log,
        local_identity=local_identity,
        state_key_file=state_key_file,
        state_key_cmd=state_key_cmd,
        http=http,
        allow_paths=list(allow_path or []),
    )
    code = run_daemon(options)
    raise typer.Exit(code)


def _add_ctl() -> None:
    from gxo.ctl.commands import ctl_app  # typer only: grpc loads inside its commands

    app.add_typer(ctl_app, name="ctl")


_add_ctl()


def _add_admin() -> None:
    from gxo.admin.commands import admin_app  # typer only: cryptography loads inside commands

    app.add_typer(admin_app, name="admin")


_add_admin()


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit")] = False,
) -> None:
    if version:
        from gxo import __version__

        typer.echo(f"gxo {__version__}")
        raise typer.Exit(0)


def main() -> None:
    _PROCESS["entry"] = True  # this process is the gxo command: validate may skip the teardown
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
