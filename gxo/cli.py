"""The ``gxo`` command line: one thin function per command.

Commands import what they need when they run, so ``gxo --help`` stays fast and
never loads Textual, prompt-toolkit, httpx or networkx.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from gxo.entry import check_report as _check_report
from gxo.entry import report_failure, run_command
from gxo.entry import third_party as _third_party
from gxo.entry import variables as _variables
from gxo.errors import GxoError, UsageError


def _polish_help() -> None:
    """Two fixes to what Typer/Click print: a flag shows no ``<bool>`` value (it takes
    none), and an unknown option suggests only options that look like it (Click's
    default compares with the ``--`` prefix included, so ``--bogus`` got ``--verbose``)."""
    from difflib import get_close_matches

    from typer._click.exceptions import NoSuchOption  # Typer's own copy of Click
    from typer.core import TyperOption

    if getattr(TyperOption, "_gxo_polished", False):
        return
    display_type_rich = TyperOption.display_type_rich

    def flag_without_type(self: TyperOption, ctx: Any) -> str | None:
        if self.is_flag and not self.count:
            return None
        return display_type_rich(self, ctx)

    no_such_option = NoSuchOption.__init__

    def close_options_only(
        self: NoSuchOption,
        option_name: str,
        message: str | None = None,
        possibilities: Any = None,
        ctx: Any = None,
    ) -> None:
        no_such_option(self, option_name, message, None, ctx)
        by_bare = {str(p).lstrip("-"): str(p) for p in possibilities or ()}
        close = get_close_matches(option_name.lstrip("-"), list(by_bare), n=3, cutoff=0.7)
        self.possibilities = [by_bare[c] for c in close] or None

    TyperOption.display_type_rich = flag_without_type  # type: ignore[method-assign]
    NoSuchOption.__init__ = close_options_only  # type: ignore[method-assign]
    TyperOption._gxo_polished = True  # type: ignore[attr-defined]


_polish_help()


def _no_adapter_for_absent_options() -> None:
    """An option the command line does not give needs no coercion (issue 19: start-up).

    Typer builds a pydantic ``TypeAdapter`` for every parameter as it processes it,
    given or not, only for its ``coerce`` to return ``None`` (``()`` for a repeatable
    one) when the value is absent: 20 adapters, ~10 M instructions of each ``gxo run``.
    An absent value of an optional parameter without a callback gets that result
    directly; a given value, a required parameter or one with a callback goes the
    usual way (same values, same errors)."""
    from typer.core import _TyperParameter

    if getattr(_TyperParameter, "_gxo_lazy_coercion", False):
        return
    process_value = _TyperParameter.process_value

    def absent_is_absent(self: _TyperParameter, ctx: Any, value: Any) -> Any:
        if value is None and not self.required and self.callback is None:
            return () if (self.multiple or self.nargs == -1) else None
        return process_value(self, ctx, value)

    _TyperParameter.process_value = absent_is_absent  # type: ignore[method-assign]
    _TyperParameter._gxo_lazy_coercion = True  # type: ignore[attr-defined]


_no_adapter_for_absent_options()

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

# Third-party modules (docs/module-signing.md): run, validate, modules, daemon.
ModulesDir = Annotated[
    list[Path] | None,
    typer.Option(
        "--modules-dir",
        metavar="DIR",
        help="Third-party modules: each subdirectory of DIR with __init__.py (repeatable)",
    ),
]
TrustedKeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--trusted-key",
        metavar="FILE",
        help="Public key third-party modules must be signed with (repeatable)",
    ),
]
Verification = Annotated[
    str | None,
    typer.Option(
        "--module-verification",
        metavar="MODE",
        help="Third-party modules: enforce|warn|off (default: enforce with a trusted key, "
        "else warn; the daemon: enforce)",
    ),
]
UserConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="User config (default: ~/.gxo/config.yaml)")
]


def _fail(exc: GxoError) -> None:
    raise typer.Exit(report_failure(exc))


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
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="NAME",
            help="Run only these workloads and what they need (repeatable or a,b)",
        ),
    ] = None,
    skip: Annotated[
        list[str] | None,
        typer.Option("--skip", metavar="NAME", help="Leave these workloads out (repeatable)"),
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="NAME",
            help="Run NAME and everything downstream (upstream results: from --state)",
        ),
    ] = None,
    tags: Annotated[
        list[str] | None,
        typer.Option(
            "--tags",
            metavar="TAG",
            help="Run the workloads with these tags and what they need (a,b)",
        ),
    ] = None,
    skip_tags: Annotated[
        list[str] | None,
        typer.Option(
            "--skip-tags", metavar="TAG", help="Leave out the workloads with these tags (a,b)"
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Dry run: read-only modules run, the others say what they would change "
            "(docs/check-mode.md)",
        ),
    ] = False,
    diff: Annotated[
        bool,
        typer.Option(
            "--diff", help="Show what files change (or would, with --check) as unified diffs"
        ),
    ] = False,
    keep_runs: Annotated[
        int,
        typer.Option(
            "--keep-runs", min=0, help="Keep the last N runs' report and log in .gxo/runs"
        ),
    ] = 0,
    modules_dir: ModulesDir = None,
    trusted_key: TrustedKeyOpt = None,
    module_verification: Verification = None,
    config: UserConfigOpt = None,
) -> None:
    """Run a playbook headless. Exit 0 success, 1 a workload failed, 2 invalid, 130 interrupted."""
    # The body is gxo.entry.run_command, which `gxo run` of the common forms reaches
    # without Typer (issue 19: start-up).
    raise typer.Exit(
        run_command(
            playbook,
            extra_vars=extra_vars,
            vars_file=vars_file,
            report=report,
            concurrency=concurrency,
            workspace=workspace,
            confine=confine,
            allow_path=allow_path,
            verbose=verbose,
            quiet=quiet,
            resume_payload_file=resume_payload_file,
            state=state,
            state_key_file=state_key_file,
            state_key_cmd=state_key_cmd,
            only=only,
            skip=skip,
            from_=from_,
            tags=tags,
            skip_tags=skip_tags,
            check=check,
            diff=diff,
            keep_runs=keep_runs,
            modules_dir=modules_dir,
            trusted_key=trusted_key,
            module_verification=module_verification,
            config=config,
        )
    )


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
    modules_dir: ModulesDir = None,
    trusted_key: TrustedKeyOpt = None,
    module_verification: Verification = None,
    config: UserConfigOpt = None,
) -> None:
    """Load and validate playbooks without running them. Exit 0 valid, 2 invalid."""
    from gxo.config.loader import load_playbook
    from gxo.console import err_console, print_error, print_warnings

    console = err_console()
    try:
        _third_party(modules_dir, trusted_key, module_verification, config)
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
    from gxo.config.migrate import NOTES, migrate_file
    from gxo.console import err_console, print_warnings

    try:
        text, warnings = migrate_file(file)
    except GxoError as exc:
        _fail(exc)
    print_warnings(err_console(), warnings)
    if warnings or text != file.read_text(encoding="utf-8"):  # migrated: what changed
        for note in NOTES:
            typer.echo(f"note: {note}", err=True)
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
    watch: Annotated[
        bool,
        typer.Option("--watch", help="Run again when the playbook or a file it reads is saved"),
    ] = False,
    replay: Annotated[
        str | None,
        typer.Option(
            "--replay",
            metavar="RUN",
            help="Show a finished run instead: a report file or a run id kept in .gxo/runs",
        ),
    ] = None,
    keep_runs: Annotated[
        int,
        typer.Option("--keep-runs", min=0, help="Runs kept in .gxo/runs (report and log; 0: none)"),
    ] = 10,
) -> None:
    """Run a playbook in the live terminal UI (Textual), or attach to a daemon."""
    if attach:  # `--attach [SOCKET]`: the optional socket is the positional argument
        from gxo.tui.attach import run_attach

        raise typer.Exit(run_attach(str(playbook) if playbook is not None else None))
    if playbook is None and replay is None:
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
            watch=watch,
            keep_runs=keep_runs,
            replay=replay,
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
    modules_dir: ModulesDir = None,
    trusted_key: TrustedKeyOpt = None,
    module_verification: Verification = None,
    config: UserConfigOpt = None,
) -> None:
    """List modules by layer, or show one module's parameters."""
    from gxo.modules.reference import print_module, print_module_list

    try:
        _third_party(modules_dir, trusted_key, module_verification, config)
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
    require_sandbox: Annotated[
        bool,
        typer.Option(
            "--require-sandbox",
            help="Refuse playbooks with a workload without security_context (docs/sandbox.md)",
        ),
    ] = False,
    modules_dir: ModulesDir = None,
    trusted_key: TrustedKeyOpt = None,
    module_verification: Verification = None,
    config: UserConfigOpt = None,
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
    try:  # third-party modules are verified (enforce by default) before the daemon starts
        from gxo.modules.base import REGISTRY

        _third_party(modules_dir, trusted_key, module_verification, config, daemon=True)
        REGISTRY.load_third_party()
    except GxoError as exc:
        _fail(exc)
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
        require_sandbox=require_sandbox,
        modules_dirs=[str(d) for d in modules_dir or []],
        trusted_keys=list(trusted_key or []),
        module_verification=module_verification,
        user_config=str(config) if config else None,
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


def _app_for(argv: list[str]) -> typer.Typer:
    """The app with only the top-level command ``argv`` names (issue 19: start-up).

    Typer builds every command's click parameters (the type hints of ~60 functions)
    before it parses anything: ~50 ms of CPU, a fifth of a ``gxo run``. Help, options
    first, groups and unknown names get the whole app, so their output is unchanged.
    """
    if not argv or argv[0].startswith("-"):
        return app
    for info in app.registered_commands:
        callback = info.callback
        name = info.name or (callback.__name__.lower().replace("_", "-") if callback else None)
        if name == argv[0]:
            slim = copy.copy(app)
            slim.registered_commands = [info]
            slim.registered_groups = []
            return slim
    return app


def main() -> None:
    _PROCESS["entry"] = True  # this process is the gxo command: validate may skip the teardown
    try:
        _app_for(sys.argv[1:])()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
