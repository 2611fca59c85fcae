"""The ``gxo`` command's entry point (issue 19: start-up).

``gxo run PLAYBOOK`` with only ``-q/--quiet``, ``-v/--verbose``, ``--check``,
``--diff`` and ``--report FILE`` — the common forms — runs here without importing
Typer (whose import and per-parameter set-up cost ~10 % of such a run's start-up).
Every other command line, and anything this parser is not sure to read exactly as
Typer does (another option, a repeated ``--report``, a value starting with ``-``,
an empty value, ``--``, a shell-completion request), goes to :mod:`gxo.cli`, the
Typer app, which gives the same result or the same error as always. The body of
``gxo run`` is :func:`run_command`, shared by both ways in.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any

from gxo.errors import GxoError

__all__ = ["check_report", "main", "parse_fast_run", "report_failure", "run_command", "variables"]

_FLAGS = {
    "-q": "quiet",
    "--quiet": "quiet",
    "-v": "verbose",
    "--verbose": "verbose",
    "--check": "check",
    "--diff": "diff",
}


def parse_fast_run(argv: list[str]) -> dict[str, Any] | None:
    """The arguments of ``gxo run`` as Typer would pass them, or None: let Typer parse."""
    if not argv or argv[0] != "run":
        return None
    args: dict[str, Any] = {"quiet": False, "verbose": False, "check": False, "diff": False}
    playbook: str | None = None
    report: str | None = None
    rest = iter(argv[1:])
    for arg in rest:
        if arg in _FLAGS:
            args[_FLAGS[arg]] = True
        elif arg == "--report" or arg.startswith("--report="):
            value = arg[len("--report=") :] if "=" in arg else next(rest, None)
            if report is not None or not value or value.startswith("-"):
                return None
            report = value
        elif arg.startswith("-") or not arg or playbook is not None:
            return None  # another option, "-", "--", an empty or a second argument
        else:
            playbook = arg
    if playbook is None:
        return None
    args["playbook"] = Path(playbook)
    args["report"] = Path(report) if report is not None else None
    return args


def _completion_requested() -> bool:
    """Click's shell completion runs when ``_<PROG>_COMPLETE`` is set."""
    return any(name.startswith("_") and name.endswith("_COMPLETE") for name in os.environ)


def main() -> None:
    parsed = None if _completion_requested() else parse_fast_run(sys.argv[1:])
    if parsed is None:
        from gxo.cli import main as typer_main

        typer_main()
        return
    # What Typer's standalone mode does around a command (typer.core._main).
    try:
        code = run_command(**parsed)
    except KeyboardInterrupt:
        sys.exit(130)
    except EOFError:
        from typer._click import echo
        from typer.core import DEFAULT_MARKUP_MODE, HAS_RICH

        echo(file=sys.stderr)
        if HAS_RICH and DEFAULT_MARKUP_MODE is not None:
            from typer.rich_utils import rich_abort_error

            rich_abort_error()
        else:
            echo("Aborted!", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        from typer._click.utils import PacifyFlushWrapper

        sys.stdout = PacifyFlushWrapper(sys.stdout)  # type: ignore[assignment]
        sys.stderr = PacifyFlushWrapper(sys.stderr)  # type: ignore[assignment]
        sys.exit(1)
    sys.exit(code)


def report_failure(exc: GxoError) -> int:
    """Print a GxoError (its warnings, then the error) and return its exit code."""
    from gxo.console import err_console, print_error, print_warnings

    console = err_console()
    print_warnings(console, exc.warnings)
    print_error(console, str(exc))
    return exc.exit_code


def third_party(
    modules_dir: list[Path] | None,
    trusted_key: list[str] | None,
    verification: str | None,
    config: Path | None,
    *,
    daemon: bool = False,
) -> None:
    """Install the third-party module policy (flags over the user config); the modules
    themselves load when first needed (docs/module-signing.md)."""
    from gxo.modules.base import REGISTRY

    def policy() -> Any:
        from gxo.console import err_console, print_warnings
        from gxo.modules.thirdparty import resolve_policy
        from gxo.userconfig import load_user_config

        resolved = resolve_policy(
            config=load_user_config(config),
            modules_dirs=modules_dir or (),
            trusted_keys=trusted_key or (),
            mode=verification,
            daemon=daemon,
        )
        resolved.warn = lambda message: print_warnings(err_console(), [message])
        return resolved

    configured = modules_dir or trusted_key or verification or config or daemon
    if configured or Path("~/.gxo/config.yaml").expanduser().exists():
        from gxo.modules.thirdparty import install

        install(policy())  # bad flags or config: a usage error now, not when first needed
    else:  # only entry points: `gxo run` of built-ins pays nothing for them

        def load() -> None:
            from gxo.modules.thirdparty import load_all

            load_all(policy())

        REGISTRY.use_third_party(load)


def check_report(report: Path | None) -> None:
    """A report path that cannot be written is a usage error before the run, not a
    traceback after it."""
    if report is not None:
        from gxo.engine.report import report_target

        report_target(report)


def variables(extra: list[str] | None, vars_file: Path | None) -> dict:
    from gxo.config.variables import load_vars_file, parse_extra_vars

    merged = load_vars_file(vars_file) if vars_file else {}
    merged.update(parse_extra_vars(extra))
    return merged


def run_command(
    playbook: Path,
    extra_vars: list[str] | None = None,
    vars_file: Path | None = None,
    report: Path | None = None,
    concurrency: int | None = None,
    workspace: str | None = None,
    confine: bool = False,
    allow_path: list[str] | None = None,
    verbose: bool = False,
    quiet: bool = False,
    resume_payload_file: Path | None = None,
    state: str | None = None,
    state_key_file: str | None = None,
    state_key_cmd: str | None = None,
    only: list[str] | None = None,
    skip: list[str] | None = None,
    from_: str | None = None,
    tags: list[str] | None = None,
    skip_tags: list[str] | None = None,
    check: bool = False,
    diff: bool = False,
    keep_runs: int = 0,
    modules_dir: list[Path] | None = None,
    trusted_key: list[str] | None = None,
    module_verification: str | None = None,
    config: Path | None = None,
) -> int:
    """``gxo run``: the exit code (a GxoError is printed and gives its own)."""
    from gxo.config.select import Selection
    from gxo.runtime import run_headless

    try:
        third_party(modules_dir, trusted_key, module_verification, config)
        check_report(report)
        return run_headless(
            playbook,
            variables=variables(extra_vars, vars_file),
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
            selection=Selection(only or (), skip or (), from_, tags or (), skip_tags or ()),
            check=check,
            diff=diff,
            keep_runs=keep_runs,
        )
    except GxoError as exc:
        return report_failure(exc)
